"""Continuous collection: every env step is kept, per-env episode seeds, the stop at
running_steps, checkpoints that end the episodes in flight, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import xwq
import xwq.runners.experiment as experiment_module
from xwq.agents.rollout import Rollout
from xwq.common.checkpoint import safe_load
from xwq.common.seeding import TRAIN_EPISODES, episode_seed


def runner_on(env_class, name: str, run_dirs: dict, **overrides):
    xwq.register_env(name, env_class)
    settings = dict(parallels=4, vectorize="serial", batch_size=4, training_frequency=3,
                    running_steps=200) | overrides
    return xwq.get_runner("qmix", name, "x", **run_dirs, **settings)


# --- every env step is used ----------------------------------------------------------------------
def test_one_real_env_step_per_counted_env_step_on_uneven_episodes(random_length_env_class,
                                                                   run_dirs):
    runner = runner_on(random_length_env_class, "uneven", run_dirs)
    agents = runner.agents
    random_length_env_class.calls = 0
    agents.train(until_env_steps=200)
    assert agents.env_steps == 200
    assert random_length_env_class.calls == agents.env_steps  # 1.00 env.step per counted step
    stored = agents.buffer.data["filled"][:agents.buffer.size].sum()
    in_flight = int(agents.rollout.t.sum())
    assert stored + in_flight == agents.env_steps  # each step is in an episode, none twice
    assert agents.episodes == agents.buffer.size == int(agents.env_episodes.sum())
    lengths = agents.buffer.data["filled"][:agents.buffer.size].sum(1)
    assert set(lengths.tolist()) == {1, 2, 3, 4, 5}
    runner.finish()


@pytest.mark.parametrize("parallels, running_steps", [(4, 30), (3, 100), (8, 64)])
def test_training_stops_within_one_vectorised_step(parallels, running_steps,
                                                   random_length_env_class, run_dirs):
    runner = runner_on(random_length_env_class, "stop", run_dirs, parallels=parallels,
                       running_steps=running_steps, batch_size=2)
    runner.run()
    steps = runner.agents.env_steps
    assert running_steps <= steps < running_steps + parallels
    assert steps == -(-running_steps // parallels) * parallels


def test_benchmark_evaluates_at_each_eval_interval(random_length_env_class, run_dirs):
    runner = runner_on(random_length_env_class, "evals", run_dirs, running_steps=30,
                       eval_interval=10, batch_size=2, test_parallels=2, test_episode=3)
    summary = runner.benchmark()
    rows = [json.loads(line) for line in
            (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    # 4 envs: the first vectorised steps that reach 10, 20 and 30 env steps
    assert [row["env_step"] for row in rows] == [0, 12, 20, 32]
    assert summary["env_steps"] == 32 and summary["evaluations"] == 4


# --- seeds ---------------------------------------------------------------------------------------
def collected(env_class, vectorize: str, run_dirs: dict, steps: int = 40):
    runner = runner_on(env_class, f"collect_{vectorize}", run_dirs, vectorize=vectorize,
                       start_greedy=1.0, end_greedy=1.0)
    agents = runner.agents
    episodes = [agents.collect() for _ in range(steps)]
    data = {key: value[:agents.buffer.size].copy() for key, value in agents.buffer.data.items()}
    runner.finish()
    return episodes, data


def test_serial_and_subprocess_collect_identical_data(random_length_env_class, run_dirs):
    serial, serial_data = collected(random_length_env_class, "serial", run_dirs)
    subprocess, subprocess_data = collected(random_length_env_class, "subprocess", run_dirs)
    assert serial_data.keys() == subprocess_data.keys()
    for key in serial_data:
        np.testing.assert_array_equal(serial_data[key], subprocess_data[key], err_msg=key)
    for a, b in zip(serial, subprocess):
        np.testing.assert_array_equal(a.envs, b.envs)
        np.testing.assert_array_equal(a.returns, b.returns)


def test_each_episode_is_seeded_by_run_seed_env_and_episode_count(random_length_env_class,
                                                                  run_dirs):
    """Env k's e-th episode replays exactly as a lone env reset with episode_seed(seed, k, e)
    and given the same actions: it depends on nothing else (other envs, timing)."""
    batches, _ = collected(random_length_env_class, "serial", run_dirs)
    seen = set()
    for batch in batches:
        for i in range(len(batch)):
            k, e = int(batch.envs[i]), int(batch.numbers[i])
            seen.add((k, e))
            single = random_length_env_class()
            obs, _ = single.reset(seed=episode_seed(1, TRAIN_EPISODES, k, e))
            np.testing.assert_array_equal(batch.data["obs"][i, 0, 0], obs["a"])
            for t in range(int(batch.lengths[i])):
                actions = dict(zip(["a", "b"], batch.data["actions"][i, t].tolist()))
                obs, *_ = single.step(actions)
                np.testing.assert_array_equal(batch.data["obs"][i, t + 1, 0], obs["a"])
    assert {e for k, e in seen if k == 0} == set(range(len({e for k, e in seen if k == 0})))
    assert len({k for k, _ in seen}) == 4


def test_each_env_starts_each_episode_with_fresh_memory(random_length_env_class):
    """Whenever env k starts an episode, the actor sees no previous action and a zero hidden
    state for it, while the other envs keep theirs."""
    xwq.register_env("memory", random_length_env_class)
    config = xwq.get_configs(method="qmix", env="memory", env_id="x",
                             overrides={"parallels": 3, "vectorize": "serial"})
    envs = xwq.make_envs(config)
    rng = np.random.default_rng(0)
    seen = []

    def actor(obs, avail, prev_actions, hidden):
        seen.append((obs[:, 0, 0].copy(), prev_actions.clone(), hidden.clone()))
        actions = np.stack([[rng.choice(np.flatnonzero(m)) for m in env] for env in avail])
        return actions, hidden + 1.0  # every step leaves a mark in the memory

    rollout = Rollout(envs, actor, lambda rows: torch.zeros(rows, 4),
                      lambda k, e: 1000 * k + e)
    for _ in range(30):
        rollout.step()
    starts = 0
    for t_obs, prev_actions, hidden in seen:  # obs[..., 0] is the env's step count t
        for k in range(3):
            first = t_obs[k] == 0
            starts += first
            assert (prev_actions[k] == -1).all() == first
            assert (hidden.view(3, 2, 4)[k] == 0).all() == first
    assert starts > 3 + 3  # many episodes began after the first ones
    envs.close()


def test_same_seed_same_run(random_length_env_class, run_dirs):
    def losses():
        runner = runner_on(random_length_env_class, "repeat", run_dirs)
        stats = runner.agents.train(until_env_steps=120)
        params = torch.cat([p.flatten() for p in runner.agents.policy.parameters()])
        runner.finish()
        return stats["loss"], params

    (loss_a, params_a), (loss_b, params_b) = losses(), losses()
    assert loss_a == loss_b and torch.equal(params_a, params_b)


# --- checkpoints end the episodes in flight -----------------------------------------------------
class Killed(BaseException):
    """A crash right after a checkpoint is written."""


def test_checkpoint_mid_episode_truncates_and_resumes_exactly(counting_env_class, run_dirs,
                                                              tmp_path, monkeypatch):
    """Episodes of 5 steps, checkpoints every 14 env steps (7 per env): every checkpoint falls
    2 steps into an episode. Both runs store those truncated episodes; the resumed run ends
    identically."""
    settings = dict(parallels=2, running_steps=60, save_interval=14, save_buffer=True,
                    batch_size=2, training_frequency=2, log_interval=8,
                    env_kwargs={"length": 5})

    def dirs(name):
        return run_dirs | {key: str(tmp_path / name / key) for key in
                           ("log_dir", "model_dir", "results_dir")}

    reference = runner_on(counting_env_class, "midway", dirs("a"), **settings)
    reference_model = reference.run()
    buffer = reference.agents.buffer
    lengths = buffer.data["filled"][:buffer.size].sum(1)
    assert set(lengths.tolist()) == {2, 5}  # truncated after 2 steps, and whole
    truncated = buffer.data["terminated"][:buffer.size].sum(1) == 0
    assert (lengths[truncated] < 5).all() and (lengths[~truncated] == 5).all()

    original, written = experiment_module.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        written.append(original(*args, **kwargs))
        if len(written) == 2:
            raise Killed
        return written[-1]

    monkeypatch.setattr(experiment_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        runner_on(counting_env_class, "midway", dirs("b"), **settings).run()
    monkeypatch.undo()
    resumed = runner_on(counting_env_class, "midway", dirs("b"), **settings)
    resumed_model = resumed.run(resume="auto")

    def rows(runner):
        return [{k: v for k, v in json.loads(line).items() if k != "steps_per_second"}
                for line in (runner.run_dir / "train.jsonl").read_text().splitlines()]

    summary = json.loads((resumed.run_dir / "summary.json").read_text())
    assert summary["resumed_from"][0].endswith("ckpt_28.pth")
    assert rows(resumed) == rows(reference)
    a, b = safe_load(reference_model)["policy"], safe_load(resumed_model)["policy"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert resumed.agents.episodes == reference.agents.episodes
    np.testing.assert_array_equal(resumed.agents.env_episodes, reference.agents.env_episodes)


# --- evaluation ------------------------------------------------------------------------------
def test_evaluation_plays_exactly_the_same_episodes_whatever_the_envs(random_length_env_class,
                                                                      run_dirs):
    runner = runner_on(random_length_env_class, "evaluate", run_dirs)
    agents = runner.agents
    agents.train(until_env_steps=40)
    before = (agents.env_steps, agents.rng.bit_generator.state, agents.episodes)
    config = runner.config
    results = []
    for parallels in (1, 3, 7):
        config.test_parallels = parallels
        envs = xwq.make_envs(config, test=True)
        assert envs.num_envs == min(parallels, config.test_episode)
        episodes = agents.evaluate(envs, 7)
        envs.close()
        assert len(episodes) == 7
        results.append((episodes.returns.tolist(), episodes.lengths.tolist()))
    assert results[0] == results[1] == results[2]
    assert (agents.env_steps, agents.rng.bit_generator.state, agents.episodes) == before
    runner.finish()
