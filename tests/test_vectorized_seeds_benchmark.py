"""benchmarks/vectorized_seeds.py measures every row it promises and writes them (no timing
assertions), and gives the test process its cores and threads back."""

import json
import os

import torch


def test_vectorized_seeds_benchmark_reports_each_size(tmp_path, benchmark_script):
    module = benchmark_script("vectorized_seeds")
    out = tmp_path / "vectorized_seeds.json"
    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    rows = module.main(["--methods", "qmix", "--envs", "spread", "--sizes", "1", "2",
                        "--steps", "48", "--repeats", "1", "--chunks", "2",
                        "--set", "batch_size=4", "parallels=2", "--out", str(out)])
    assert os.sched_getaffinity(0) == affinity and torch.get_num_threads() == threads
    report = json.loads(out.read_text())
    assert report["rows"] == rows and [row["seeds"] for row in rows] == [1, 2]
    for row in rows:
        assert row["plain_update_ms"] > 0 and row["stacked_update_ms"] > 0
        assert row["group_steps_per_s_per_seed"] > 0 and row["alone_steps_per_s"] > 0
        assert row["timed_env_steps_per_seed"] == 48 and row["updates_per_seed"] > 0
    assert [row["seeds"] for row in report["gru"]] == [1, 2]
    assert all(value > 0 for row in report["gru"] for value in row.values())
    assert report["versions"]["xwq"]
