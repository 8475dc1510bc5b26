"""benchmarks/acting_loop.py measures the tree it is asked to (this one and a git revision, in
their own processes) and reports every figure it promises; no timing assertions."""

import json


def test_acting_loop_benchmark_measures_both_trees(tmp_path, benchmark_script):
    module = benchmark_script("acting_loop")
    out = tmp_path / "acting_loop.json"
    report = module.main(["--cases", "qmix:simple_spread_v3", "--steps", "160", "--repeats",
                          "1", "--baseline", "HEAD", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    (row,) = report["rows"]
    for tree in ("this", "baseline"):
        for part in ("collect", "env", "act", "train"):
            for key in ("steps_per_s", "cpu_steps_per_s"):
                assert row[f"{tree}_{part}_{key}"] > 0
                assert row[f"ratio_{part}_{key}"] > 0
    (this,), (baseline,) = report["raw"]["qmix:simple_spread_v3"].values()
    assert this["xwq"] != baseline["xwq"] and this["torch_threads"] == 1


def test_acting_loop_benchmark_without_train_part(tmp_path, benchmark_script):
    module = benchmark_script("acting_loop")
    report = module.main(["--cases", "qmix:simple_spread_v3", "--steps", "80", "--repeats", "1",
                          "--no-train", "--out", str(tmp_path / "a.json")])
    (row,) = report["rows"]
    assert row["parts"] == ["collect", "env", "act"] and row["this_act_steps_per_s"] > 0
    assert "train" not in report["raw"]["qmix:simple_spread_v3"]["this"][0]
