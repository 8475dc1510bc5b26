"""Vectorised seeds end to end: ``benchmark(seeds, vectorize_seeds=S)``, the sweep backend and
the command line give each seed the run folder, results and resume of that seed run alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import xwq
from xwq.cli import main
from xwq.runners import RunSpec, Sweep, grid, vectorized
from xwq.runners.experiment import Experiment
from xwq.runners.vectorized import VectorizedBackend

SPREAD = ("qmix", "mpe", "simple_spread_v3")
MATRIX = ("cw_qmix", "matrix_game", "nonmonotonic")


def small(run_dirs: dict, **extra) -> dict:
    """A GRU benchmark of a few seconds: 2 native simple_spread envs, 4-episode batches."""
    return dict(vectorize="native", running_steps=300, eval_interval=150, parallels=2,
                batch_size=4, test_parallels=2, test_episode=2, save_interval=100,
                **run_dirs) | extra


def run_files(run_dir: str) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in Path(run_dir).rglob("*")
                  if not p.name.startswith("events.out"))


def close_models(a: str, b: str) -> bool:
    first, second = (torch.load(path, weights_only=True)["policy"] for path in (a, b))
    return first.keys() == second.keys() and all(
        torch.allclose(first[key], second[key], atol=1e-5) for key in first)


def test_vectorized_seeds_are_the_runs_of_each_seed_alone(run_dirs, tmp_path):
    config = small(run_dirs, results_dir=str(tmp_path / "alone"))
    alone = xwq.get_runner(*SPREAD, **config).benchmark(seeds=[1, 2, 3])
    config = small(run_dirs, results_dir=str(tmp_path / "together"))
    together = xwq.get_runner(*SPREAD, **config).benchmark(seeds=[1, 2, 3], vectorize_seeds=2)
    assert [run["seed"] for run in together["runs"]] == [1, 2, 3]
    for one, other in zip(alone["runs"], together["runs"]):
        assert other["run_dir"].startswith(str(tmp_path / "together"))
        assert run_files(one["run_dir"]) == run_files(other["run_dir"])
        for key in ("updates", "env_steps", "episodes", "evaluations"):
            assert one[key] == other[key], key
        assert other["final_test_return"] == pytest.approx(one["final_test_return"], abs=1e-4)
        assert close_models(one["final_model"], other["final_model"])
        rows = [Path(run["run_dir"], "metrics.jsonl").read_text().splitlines()
                for run in (one, other)]
        assert [json.loads(r)["test_return_mean"] for r in rows[0]] == pytest.approx(
            [json.loads(r)["test_return_mean"] for r in rows[1]], abs=1e-4)
    assert together["aggregate"]["dir"].startswith(str(tmp_path / "together"))
    assert together["aggregate"]["final_test_return"]["values"] == pytest.approx(
        alone["aggregate"]["final_test_return"]["values"], abs=1e-4)


def test_a_vectorized_group_resumes_each_seed_from_its_own_checkpoint(run_dirs, tmp_path,
                                                                       monkeypatch):
    real = Experiment._checkpoint

    def crash_seed_2(self, state):
        path = real(self, state)
        if self.config.seed == 2 and self.agents.env_steps >= 200:
            raise KeyboardInterrupt("seed 2 stopped")  # after its checkpoint at step 200
        return path

    monkeypatch.setattr(Experiment, "_checkpoint", crash_seed_2)
    config = small(run_dirs, results_dir=str(tmp_path / "together"), save_buffer=True)
    with pytest.raises(KeyboardInterrupt):
        xwq.get_runner(*SPREAD, **config).benchmark(seeds=[1, 2], vectorize_seeds=2)
    monkeypatch.setattr(Experiment, "_checkpoint", real)
    resumed = xwq.get_runner(*SPREAD, **config).benchmark(seeds=[1, 2], resume="auto",
                                                          vectorize_seeds=2)
    seed_1, seed_2 = resumed["runs"]
    assert seed_1["resumed_from"] == []  # finished before the crash: reported as it was
    assert seed_2["resumed_from"] and seed_2["resumed_from"][0].endswith("ckpt_200.pth")
    alone = xwq.get_runner(*SPREAD, **small(run_dirs, seed=2, save_buffer=True,
                                            results_dir=str(tmp_path / "alone"))).benchmark()
    assert seed_2["updates"] == alone["updates"] and seed_2["env_steps"] == alone["env_steps"]
    assert close_models(seed_2["final_model"], alone["final_model"])


def test_the_sweep_backend_groups_seeds_of_one_config(run_dirs, tmp_path, monkeypatch):
    overrides = dict(running_steps=64, eval_interval=32, parallels=8, batch_size=8,
                     test_parallels=4, test_episode=4, save_interval=32, **run_dirs)
    specs = grid(["cw_qmix", "qmix"], [("matrix_game", "nonmonotonic")], seeds=[1, 2, 3],
                 overrides=overrides)
    backend = VectorizedBackend(2)
    assert backend.chunks(specs) == [[0, 1], [2], [3, 4], [5]]
    groups = []
    real = vectorized.execute_group
    monkeypatch.setattr(vectorized, "execute_group",
                        lambda specs: groups.append([s.seed for s in specs]) or real(specs))
    result = Sweep(specs, backend).run()
    assert groups == [[1, 2], [1, 2]]  # seed 3 of each method alone runs as a plain run
    assert [(run.spec.method, run.spec.seed) for run in result["runs"]] == [
        (spec.method, spec.seed) for spec in specs]
    assert len(result["aggregates"]) == 2
    serial = Sweep([specs[4]]).run()["runs"][0].summary
    assert serial["updates"] == result["runs"][4].summary["updates"]
    assert serial["final_test_return"] == pytest.approx(
        result["runs"][4].summary["final_test_return"], abs=1e-4)


def test_vectorize_seeds_is_checked(run_dirs):
    runner = xwq.get_runner(*MATRIX, **run_dirs)
    with pytest.raises(xwq.UsageError, match="give seeds too"):
        runner.benchmark(vectorize_seeds=2)
    with pytest.raises(xwq.UsageError, match="does not combine"):
        runner.benchmark(seeds=[1, 2], vectorize_seeds=2, workers=2)
    with pytest.raises(xwq.UsageError, match="at least 1"):
        runner.benchmark(seeds=[1, 2], vectorize_seeds=0)
    with pytest.raises(xwq.UsageError, match="differ only in their seed"):
        from xwq.runners.vectorized import execute_group

        execute_group([RunSpec(*MATRIX, seed=1), RunSpec(*MATRIX, seed=2,
                                                         overrides={"alpha": 0.5})])


def test_command_line_vectorize_seeds(capsys, tmp_path):
    values = [f"log_dir={tmp_path / 'logs'}", f"model_dir={tmp_path / 'models'}",
              f"results_dir={tmp_path / 'results'}", "progress_bar=false", "running_steps=64",
              "eval_interval=32", "parallels=8", "batch_size=8", "test_parallels=4",
              "test_episode=4"]
    sets = [item for value in values for item in ("--set", value)]
    args = ["benchmark", "--method", "cw_qmix", "--env", "matrix_game", "--env-id",
            "nonmonotonic", *sets]
    assert main([*args, "--seeds", "1", "2", "--vectorize-seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "seed 1: final" in out and "seed 2: final" in out and "| cw_qmix | 2 |" in out
    assert main([*args, "--vectorize-seeds", "2"]) == 2
    assert "give --seeds too" in capsys.readouterr().err
    assert main([*args, "--seeds", "1", "2", "--vectorize-seeds", "2", "--workers", "2"]) == 2
    assert "does not combine" in capsys.readouterr().err
