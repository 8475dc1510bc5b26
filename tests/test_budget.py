"""Runs that could make no gradient update are refused before they start, with the keys to
change and values that work; the count of guaranteed updates is exact for episodes that last
their time limit."""

from __future__ import annotations

import pytest

import xwq
from xwq.agents.budget import guaranteed_updates


def runner_on(env_class, name: str, run_dirs: dict, **overrides):
    xwq.register_env(name, env_class)
    settings = dict(parallels=4, vectorize="serial", batch_size=4, training_frequency=3,
                    running_steps=200) | overrides
    return xwq.get_runner("qmix", name, "x", **run_dirs, **settings)


@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=64, buffer_size=32),
     r"'batch_size' = 64 is larger than 'buffer_size' = 32.*at most 32.*at least 64"),
    (dict(start_training=200), r"'start_training' = 200 is not below 'running_steps' = 200"),
    (dict(running_steps=0), r"'running_steps' = 0.*e\.g\. \d+"),
    (dict(training_frequency=500), r"fewer than 'training_frequency' = 500.*raise "
                                   r"'running_steps' to at least 5\d\d; or lower "
                                   r"'training_frequency' to at most 200"),
])
def test_certain_zero_update_configs_are_refused_before_anything_is_built(
        overrides, message, counting_env_class, run_dirs):
    class NeverBuilt(counting_env_class):
        def __init__(self, *args, **kwargs):
            raise AssertionError("the env was built")

    with pytest.raises(xwq.ConfigError, match=message):
        runner_on(NeverBuilt, "never_built", run_dirs, **overrides)
    xwq.get_runner("qmix", "never_built", "x", is_test=True, **run_dirs, **overrides)  # tests ok


def test_too_few_episodes_at_the_time_limit_warns_with_values_that_work(
        counting_env_class, run_dirs, caplog):
    # time limit 6, 2 envs, 20 env steps: episodes that last their limit end only 2, fewer
    # than a batch of 8; shorter episodes could still fill one, so this warns, not refuses
    settings = dict(parallels=2, running_steps=20, batch_size=8, training_frequency=2)
    runner = runner_on(counting_env_class, "too_short", run_dirs, **settings)
    runner.run()
    assert runner.agents.learner.updates == 0
    message = caplog.text
    assert "may make no gradient update" in message and "end only 2 episodes" in message
    assert "'batch_size' = 8" in message
    suggested = int(message.split("'running_steps' to at least ")[1].split(";")[0].split()[0])
    runner = runner_on(counting_env_class, "too_short", run_dirs,
                       **settings | {"running_steps": suggested})
    runner.run()
    assert runner.agents.learner.updates >= 1
    batch = int(message.split("'batch_size' to at most ")[1].split()[0].rstrip("."))
    runner = runner_on(counting_env_class, "too_short", run_dirs,
                       **settings | {"batch_size": batch})
    runner.run()
    assert runner.agents.learner.updates >= 1


def test_a_run_whose_episodes_end_early_is_not_refused(counting_env_class, run_dirs):
    class Quick(counting_env_class):
        """Time limit 60, but every episode ends after 2 steps (a battle won at once)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "length": 2})
            self.max_episode_steps = 60

    runner = runner_on(Quick, "quick", run_dirs, parallels=1, running_steps=40, batch_size=4,
                       training_frequency=2)
    runner.run()
    assert runner.agents.learner.updates > 0


@pytest.mark.parametrize("parallels, batch_size, start_training, frequency, unit", [
    (2, 4, 0, 3, "steps"), (3, 5, 20, 2, "steps"), (4, 1, 0, 7, "steps"),
    (2, 4, 0, 3, "episodes"), (3, 5, 20, 2, "episodes"), (4, 1, 0, 1, "episodes")])
def test_episodes_at_the_time_limit_make_exactly_the_guaranteed_updates(
        parallels, batch_size, start_training, frequency, unit, counting_env_class, run_dirs):
    runner = runner_on(counting_env_class, "fixed_length", run_dirs, parallels=parallels,
                       batch_size=batch_size, start_training=start_training,
                       training_frequency=frequency, training_unit=unit, running_steps=61,
                       env_kwargs={"length": 6})  # every episode ends at the time limit, 6
    runner.run()
    expected = guaranteed_updates(61, parallels, batch_size, start_training, frequency, 6, unit)
    assert runner.agents.learner.updates == expected > 0


def test_training_unit_episodes_makes_one_update_per_episode_ended(counting_env_class,
                                                                   run_dirs):
    """pymarl's ratio: an update after every episode (once a batch is stored), however long
    the episodes; counting env steps instead gives episodes that end early fewer updates."""
    updates = {}
    for unit, frequency in (("episodes", 1), ("steps", 6)):  # 6 = the time limit
        runner = runner_on(counting_env_class, f"short_{unit}", run_dirs, parallels=1,
                           batch_size=2, training_frequency=frequency, training_unit=unit,
                           running_steps=60, env_kwargs={"length": 2})  # episodes of 2 steps
        runner.run()
        assert runner.agents.episodes == 30
        updates[unit] = runner.agents.learner.updates
    # a batch of 2 is stored at env step 4 (the 2nd episode's end): episodes 2..30, one update
    # each; env steps 4..60, one update per 6 of them
    assert updates == {"episodes": 29, "steps": 57 // 6}


def test_too_few_episodes_for_training_frequency_in_episodes_is_refused(counting_env_class,
                                                                        run_dirs):
    with pytest.raises(xwq.ConfigError, match=r"leaves \d+ episodes, fewer than "
                                              r"'training_frequency' = 500 per update"):
        runner_on(counting_env_class, "few_episodes", run_dirs, training_frequency=500,
                  training_unit="episodes")
