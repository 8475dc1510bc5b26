"""benchmarks/parallel_seeds.py reports both wall times and checks the two ways agree (no
timing assertions)."""

import json


def test_parallel_seeds_benchmark_reports_and_agrees(tmp_path, benchmark_script):
    module = benchmark_script("parallel_seeds")
    out = tmp_path / "parallel_seeds.json"
    report = module.main(["--method", "cw_qmix", "--env", "matrix_game", "--env-id",
                          "nonmonotonic", "--seeds", "1", "2", "--steps", "64",
                          "--eval-interval", "32", "--set", "parallels=8", "batch_size=8",
                          "--set", "test_parallels=4", "test_episode=4", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["same_results"] is True
    assert report["one_by_one_s"] > 0 and report["parallel_s"] > 0 and report["speedup"] > 0
    assert len(report["final_test_returns"]) == 2 and report["workers"] == 2
    assert "--seeds 1 2" in report["command"] and report["versions"]["xwq"]
