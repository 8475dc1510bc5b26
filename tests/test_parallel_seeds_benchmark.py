"""benchmarks/parallel_seeds.py reports both wall times and checks the two ways agree (no
timing assertions)."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "parallel_seeds.py"


def test_parallel_seeds_benchmark_reports_and_agrees(tmp_path):
    spec = importlib.util.spec_from_file_location("parallel_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "parallel_seeds.json"
    report = module.main(["--method", "cw_qmix", "--env", "matrix_game", "--env-id",
                          "nonmonotonic", "--seeds", "1", "2", "--steps", "64",
                          "--eval-interval", "32", "--set", "parallels=8", "--set",
                          "batch_size=8", "--set", "test_parallels=4", "--set",
                          "test_episode=4", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["same_results"] is True
    assert report["one_by_one_s"] > 0 and report["parallel_s"] > 0 and report["speedup"] > 0
    assert len(report["final_test_returns"]) == 2 and report["workers"] == 2
    assert "--seeds 1 2" in report["command"] and report["versions"]["xwq"]
