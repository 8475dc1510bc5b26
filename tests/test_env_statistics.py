"""Episode statistics from the env's ``info``: read at the boundary, carried as ``[K]`` arrays,
kept per episode (last reported value), logged in training and evaluation, and usable as the
benchmark's headline metric (``eval_metric``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import xwq
from xwq.environment.adapters.array_env import episode_statistics


def won_env_class(counting_env_class):
    class Won(counting_env_class):
        """The counting env (reward = agents choosing 1) with two statistics: ``won`` (top
        level, reported only at the last step: 1.0 when both agents chose 0 there) and
        ``moves`` (PettingZoo style, per agent: t for 'a' and t + 2 for 'b', so t + 1 on
        average, a cumulative count)."""

        def step(self, actions):
            obs, rewards, terminated, truncated, _ = super().step(actions)
            info = {"a": {"moves": self.t, "action_mask": np.ones(3)}, "b": {"moves": self.t + 2}}
            if terminated["a"]:
                info["won"] = all(int(u) == 0 for u in actions.values())
            return obs, rewards, terminated, truncated, info

    return Won


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_statistics_from_one_info_dict():
    agents = ["a", "b", "c"]
    info = {"battle_won": True, "dead": np.int64(2), "score": np.float32(1.5),
            "a": {"kills": 1, "action_mask": np.ones(3)}, "b": {"kills": 4.0, "tag": "x"},
            "return": 7.0, "length": 3, "name": "map", "grid": np.zeros(3),
            "c": {"dead": 100.0}}
    assert episode_statistics(info, agents) == {
        "battle_won": 1.0, "dead": 2.0, "score": 1.5, "kills": 2.5}  # top level wins for dead
    assert episode_statistics(None, agents) == {}


def test_check_env_lists_the_statistics(counting_env_class):
    assert xwq.check_env(won_env_class(counting_env_class)())["statistics"] == ["moves", "won"]
    assert xwq.check_env(counting_env_class())["statistics"] == []


def test_vec_env_carries_statistics_per_env_with_the_final_value_of_an_ended_episode(
        counting_env_class):
    xwq.register_env("won_vec", won_env_class(counting_env_class))
    config = xwq.get_configs(method="qmix", env="won_vec", env_id="x",
                             overrides={"parallels": 2, "vectorize": "serial"})
    envs = xwq.make_envs(config)
    envs.reset(seed=0)
    for t in range(1, 4):
        result = envs.step(np.zeros((2, 2), dtype=int))
        assert "won" not in result.info  # no env reports it before the last step
        np.testing.assert_array_equal(result.info["moves"], [t + 1, t + 1])
    result = envs.step(np.array([[0, 0], [0, 1]]))  # the 4th and last step: both envs end
    assert result.done.all() and (result.obs[:, :, 0] == 0).all()  # already reset
    np.testing.assert_array_equal(result.info["won"], [1.0, 0.0])
    np.testing.assert_array_equal(result.info["moves"], [5.0, 5.0])  # the ended episode's
    envs.close()


def test_statistics_reach_the_training_log_metrics_and_summary(counting_env_class, run_dirs):
    xwq.register_env("won_logs", won_env_class(counting_env_class))
    runner = xwq.get_runner("qmix", "won_logs", "x", parallels=2, batch_size=2,
                            training_frequency=2, running_steps=64, eval_interval=32,
                            log_interval=16, test_parallels=2, test_episode=3, **run_dirs)
    summary = runner.benchmark()
    run_dir = Path(summary["run_dir"])
    train = read(run_dir / "train.jsonl")
    assert all("episode_won" in row and row["episode_moves"] == 5.0 for row in train)
    assert all(0.0 <= row["episode_won"] <= 1.0 for row in train)
    assert "episode_won" in (run_dir / "train.csv").read_text().splitlines()[0].split(",")
    metrics = read(run_dir / "metrics.jsonl")
    assert [row["env_step"] for row in metrics] == [0, 32, 64]
    for row in metrics:
        assert row["test_moves_mean"] == 5.0 and row["test_moves_std"] == 0.0
        assert row["test_won_mean"] in (0.0, 1 / 3, 2 / 3, 1.0)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["env_step", "test_return_mean", "test_return_std", "test_return_min",
                          "test_return_max"] and "test_won_mean" in header
    assert summary["test_won_mean"] == metrics[-1]["test_won_mean"]
    assert summary["test_moves_mean"] == 5.0
    # the default headline is the return: today's fields, nothing renamed
    assert "eval_metric" not in summary and "final_test_won" not in summary
    assert summary["final_test_return"] == metrics[-1]["test_return_mean"]
    assert summary["best_test_return"] == max(row["test_return_mean"] for row in metrics)


def test_eval_metric_is_the_headline_of_the_benchmark_and_its_aggregate(counting_env_class,
                                                                        run_dirs):
    xwq.register_env("won_metric", won_env_class(counting_env_class))
    runner = xwq.get_runner("qmix", "won_metric", "x", parallels=2, batch_size=2,
                            training_frequency=2, running_steps=96, eval_interval=16,
                            test_parallels=2, test_episode=3, eval_metric="won", **run_dirs)
    result = runner.benchmark(seeds=[1, 2])
    for summary in result["runs"]:
        metrics = read(Path(summary["run_dir"]) / "metrics.jsonl")
        won = [row["test_won_mean"] for row in metrics]
        assert summary["eval_metric"] == "won"
        assert summary["final_test_won"] == won[-1]
        assert summary["final_test_won_std"] == metrics[-1]["test_won_std"]
        assert summary["best_test_won"] == max(won)
        assert summary["best_env_step"] == metrics[int(np.argmax(won))]["env_step"]
        assert summary["final_test_return"] == metrics[-1]["test_return_mean"]
    aggregate = result["aggregate"]
    assert "| final won mean [95% CI] |" in aggregate["table"]
    assert "best won IQM" in aggregate["table"]
    assert aggregate["final_test_won"]["values"] == [r["final_test_won"] for r in result["runs"]]
    assert "final_test_return" not in aggregate
    with open(aggregate["files"]["csv"]) as handle:
        assert {row["quantity"] for row in csv.DictReader(handle)} == {
            "final_test_won", "best_test_won"}


def test_an_eval_metric_the_env_does_not_report_names_those_it_does(counting_env_class,
                                                                   run_dirs):
    xwq.register_env("won_unknown", won_env_class(counting_env_class))
    runner = xwq.get_runner("qmix", "won_unknown", "x", parallels=2, batch_size=2,
                            running_steps=64, eval_metric="battle_won", **run_dirs)
    with pytest.raises(xwq.ConfigError, match=r"'eval_metric' = 'battle_won'.*reports 'moves', "
                                              r"'won'; use eval_metric: return or one of"):
        runner.benchmark()


@pytest.mark.parametrize("env, env_id, overrides, names", [
    ("matrix_game", "nonmonotonic", dict(parallels=8, batch_size=8), ("action_0", "action_1")),
    ("predator_prey", "punishment",
     dict(parallels=2, batch_size=2, training_frequency=10,
          env_kwargs={"grid_size": 5, "n_agents": 4, "n_prey": 2, "max_episode_steps": 10}),
     ("captures", "punishments")),
])
def test_built_in_envs_report_their_statistics(env, env_id, overrides, names, run_dirs):
    runner = xwq.get_runner("qmix", env, env_id, running_steps=64, eval_interval=64,
                            test_parallels=2, test_episode=2, **overrides, **run_dirs)
    summary = runner.benchmark()
    metrics = read(Path(summary["run_dir"]) / "metrics.jsonl")
    train = read(Path(summary["run_dir"]) / "train.jsonl")
    for name in names:
        assert f"test_{name}_mean" in summary
        assert all(f"test_{name}_mean" in row for row in metrics)
        assert any(f"episode_{name}" in row for row in train)
