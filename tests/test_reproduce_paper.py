"""benchmarks/reproduce_paper.py on tiny budgets: the files it writes and their structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml


@pytest.fixture(scope="module")
def paper(benchmark_script):
    return benchmark_script("reproduce_paper")


def _check_meta(meta, budget, seeds):
    assert meta["budget"] == budget and meta["seeds"] == seeds
    assert meta["command"].startswith("python benchmarks/reproduce_paper.py")
    assert meta["date"] and "torch" in meta["versions"] and "numpy" in meta["versions"]
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40


def test_matrix_game_writes_tables_counts_and_markdown(paper, tmp_path):
    # 0.05 × 2000 = 100 env steps (4 vectorised steps of 32 one-step games)
    argv = ["matrix", "--budget", "0.05", "--seeds", "2", "--out", str(tmp_path)]
    result = paper.main(argv)["matrix"]
    data = json.loads((tmp_path / "matrix_game.json").read_text())
    assert data["summary"] == json.loads(json.dumps(result["summary"]))
    _check_meta(data["meta"], 0.05, [1, 2])
    assert data["meta"]["command"].endswith(" ".join(argv))
    assert set(data["runs"]) == set(data["summary"]) == {"qmix", "cw_qmix", "ow_qmix"}
    for method, runs in data["runs"].items():
        assert [r["seed"] for r in runs] == [1, 2]
        for r in runs:
            assert np.shape(r["q_tot"]) == (3, 3)
            assert ("q_star" in r) == (method != "qmix")
            assert r["optimal"] == (r["greedy_test_return"] == 8.0)
            assert r["env_steps"] >= 100 and r["updates"] > 0 and r["wall_time_s"] > 0
        summary = data["summary"][method]
        count = summary["optimal_count"]
        assert isinstance(count, int) and 0 <= count <= 2
        assert count == sum(r["optimal"] for r in runs)
        median = np.median([r["q_tot"] for r in runs], axis=0)
        np.testing.assert_allclose(summary["median_q_tot"], median, atol=1e-3)
        if method != "qmix":
            assert np.shape(summary["median_q_star"]) == (3, 3)
    md = (tmp_path / "matrix_game.md").read_text()
    for label in ("QMIX", "CW-QMIX", "OW-QMIX", "optimal seeds", "median Q̂*"):
        assert label in md
    assert not (tmp_path / "predator_prey.json").exists()


def test_predator_prey_writes_curves_plot_and_markdown(paper, tmp_path):
    # 0.0004 × 1M = 400 env steps on 2 envs of 25-step episodes; small batches so that
    # updates happen; ≥ 5 evaluations of 2 greedy episodes.
    # --set takes several pairs after one flag, and the flag repeated
    argv = ["predator_prey", "--budget", "0.0004", "--seeds", "1", "--out", str(tmp_path),
            "--methods", "qmix", "cw_qmix", "--set", "parallels=2", "test_parallels=2",
            "test_episode=2", "--set", "max_episode_steps=25",
            "--set", "batch_size=4", "training_frequency=1"]
    paper.main(argv)
    data = json.loads((tmp_path / "predator_prey.json").read_text())
    _check_meta(data["meta"], 0.0004, [1])
    assert data["meta"]["running_steps"] == 400
    assert data["meta"]["overrides"] == {"parallels": 2, "test_parallels": 2,
                                         "test_episode": 2, "max_episode_steps": 25,
                                         "batch_size": 4, "training_frequency": 1}
    assert set(data["runs"]) == set(data["aggregate"]) == {"qmix", "cw_qmix"}
    for runs in data["runs"].values():
        (run,) = runs
        assert run["env_steps"] >= 400 and run["updates"] > 0 and run["wall_time_s"] > 0
        steps = [s for s, _ in run["curve"]]
        assert steps[0] == 0 and steps == sorted(steps) and len(steps) >= 6  # step 0 + ≥ 5
        assert all(-2 * 8 * 25 <= r <= 40 for _, r in run["curve"])  # p = -2, 8 agents
        assert run["final_test_return"] == run["curve"][-1][1]
        assert run["best_test_return"] == max(r for _, r in run["curve"])
        # the episode statistics of the same evaluation: return = 10 captures - 2 punishments
        assert run["final_test_captures"] >= 0 and run["final_test_punishments"] >= 0
        assert run["final_test_return"] == pytest.approx(
            10 * run["final_test_captures"] - 2 * run["final_test_punishments"], abs=0.01)
        assert (tmp_path / run["run_dir"] / "metrics.jsonl").exists()
        assert run["running_steps"] == 400
        assert run["eval_interval"] == data["meta"]["eval_interval"]
    for agg in data["aggregate"].values():
        n = len(agg["env_steps"])
        assert n >= 6 and agg["env_steps"][0] == 0 and agg["env_steps"][-1] == 400
        assert len(agg["median"]) == len(agg["q25"]) == len(agg["q75"]) == n
        assert all(lo <= m <= hi for lo, m, hi in zip(agg["q25"], agg["median"], agg["q75"]))
    png = (tmp_path / "predator_prey.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (tmp_path / "predator_prey.md").read_text()
    assert "QMIX" in md and "CW-QMIX" in md and "predator_prey.png" in md
    assert "final captures / episode" in md and "n/a" not in md
    (tmp_path / "predator_prey.png").unlink()
    paper.main(["plot", "--out", str(tmp_path)])  # redraws from the JSON, no training
    assert (tmp_path / "predator_prey.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "predator_prey.json").read_text()) == data


def test_seeds_run_apart_merge_into_one_result(paper, tmp_path):
    argv = ["predator_prey", "--budget", "0.0002", "--methods", "qmix", "--set", "parallels=2",
            "test_parallels=2", "test_episode=2", "max_episode_steps=25", "batch_size=4"]
    paper.main([*argv, "--seed-list", "1", "--out", str(tmp_path / "a")])
    paper.main([*argv, "--seed-list", "3", "2", "--out", str(tmp_path / "b")])
    parts = [json.loads((tmp_path / part / "predator_prey.json").read_text()) for part in "ab"]
    assert parts[1]["meta"]["seeds"] == [3, 2]
    merged = paper.main(["merge", "--from", str(tmp_path / "a"), str(tmp_path / "b"),
                         "--out", str(tmp_path / "all")])["predator_prey"]
    assert merged["meta"]["seeds"] == [1, 2, 3]
    runs = merged["runs"]["qmix"]
    assert [run["seed"] for run in runs] == [1, 2, 3]
    by_seed = {run["seed"]: run for part in parts for run in part["runs"]["qmix"]}
    for run in runs:  # each run as it was, its folder found from the merged result
        assert run["curve"] == by_seed[run["seed"]]["curve"]
        assert (tmp_path / "all" / run["run_dir"] / "metrics.jsonl").exists()
    finals = sorted(run["curve"][-1][1] for run in runs)
    assert merged["aggregate"]["qmix"]["median"][-1] == pytest.approx(finals[1], abs=1e-3)
    md = (tmp_path / "all" / "predator_prey.md").read_text()
    assert md.count("Merged from") == 2 and "--seed-list 3 2" in md
    assert (tmp_path / "all" / "predator_prey.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="seed 1 of qmix is in two sources"):
        paper.main(["merge", "--from", str(tmp_path / "a"), str(tmp_path / "a"),
                    "--out", str(tmp_path / "again")])


def test_set_values_are_read_like_config_files(paper, tmp_path):
    # 1e-3 is a float in a config file (PyYAML alone reads it as the string "1e-3")
    argv = ["predator_prey", "--budget", "0.0002", "--seeds", "1", "--out", str(tmp_path),
            "--methods", "qmix", "--set", "learning_rate=1e-3", "batch_size=16",
            "--set", "parallels=2", "test_parallels=2", "test_episode=2", "max_episode_steps=5",
            "training_frequency=5"]
    data = paper.main(argv)["predator_prey"]
    assert data["meta"]["overrides"]["learning_rate"] == 0.001
    assert data["meta"]["overrides"]["batch_size"] == 16
    (run,) = data["runs"]["qmix"]
    with open(tmp_path / run["run_dir"] / "config.yaml") as handle:
        config = yaml.safe_load(handle)
    assert config["learning_rate"] == 0.001 and isinstance(config["learning_rate"], float)
    assert config["batch_size"] == 16 and config["seed"] == 1 and config["running_steps"] == 200


def test_eval_interval_is_the_papers_and_keeps_five_points(paper):
    assert paper.scaled_eval_interval(10000, 1_000_000) == 10000
    assert paper.scaled_eval_interval(10000, 100_000) == 10000  # not scaled with the budget
    assert paper.scaled_eval_interval(10000, 5000) == 1000  # at least 5 evaluations
    assert paper.scaled_eval_interval(10000, 20) == 4


def test_bad_arguments_are_refused(paper, tmp_path):
    with pytest.raises(SystemExit):
        paper.main(["matrix", "--budget", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        paper.main(["nonsense"])
    with pytest.raises(SystemExit):
        paper.main(["matrix", "--set", "novalue", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        paper.main(["matrix", "--set", "batch_size=4", "=3", "--out", str(tmp_path)])
    assert not (tmp_path / "matrix_game.json").exists()
