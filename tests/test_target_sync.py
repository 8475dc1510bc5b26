"""When the target networks are copied: every ``sync_frequency`` episodes (the authors'
schedule, ``sync_unit: episodes``) or updates (``sync_unit: updates``)."""

import pytest
import torch

import xwq
from xwq.environment.interfaces import EnvSpec
from xwq.learners import QMIXLearner, WQMIXLearner
from xwq.policies import MixingQNetwork, WeightedMixingQNetwork

SPEC = EnvSpec(agents=("a", "b"), obs_dim=3, state_dim=4, n_actions=3, max_episode_steps=4)


def _learner(method="qmix", **overrides):
    config = xwq.get_configs(method=method, overrides=overrides)
    torch.manual_seed(0)
    if config.learner == "WQMIX_Learner":
        return WQMIXLearner(config, WeightedMixingQNetwork(config, SPEC))
    return QMIXLearner(config, MixingQNetwork(config, SPEC))


def _batch(seed):
    generator = torch.Generator().manual_seed(seed)
    B, T = 4, 3
    return {"obs": torch.randn(B, T + 1, 2, 3, generator=generator),
            "state": torch.randn(B, T + 1, 4, generator=generator),
            "avail": torch.ones(B, T + 1, 2, 3, dtype=torch.bool),
            "actions": torch.randint(0, 3, (B, T, 2), generator=generator),
            "reward": torch.randn(B, T, generator=generator),
            "terminated": torch.zeros(B, T, dtype=torch.bool),
            "filled": torch.ones(B, T, dtype=torch.bool)}


def in_sync(learner) -> bool:
    """Whether every target network equals its online network."""
    return all(torch.equal(target, online)
               for name, module in learner.targets.items()
               for target, online in zip(module.parameters(),
                                         getattr(learner.policy, name).parameters()))


def test_the_default_counts_episodes_as_the_authors_code():
    config = xwq.get_configs(method="wqmix")
    assert (config.sync_unit, config.sync_frequency) == ("episodes", 200)
    with pytest.raises(xwq.ConfigError, match=r"'sync_unit' = 'steps'.*'episodes', 'updates'"):
        xwq.get_configs(method="wqmix", overrides={"sync_unit": "steps"})


@pytest.mark.parametrize("method", ["qmix", "cw_qmix"])
def test_updates_unit_copies_after_exactly_n_updates_whatever_the_episodes(method):
    learner = _learner(method, sync_unit="updates", sync_frequency=3)
    copied_at = []
    for update in range(1, 8):
        learner.update(_batch(update), episodes=1000 * update)  # episodes do not count here
        if in_sync(learner):
            copied_at.append(update)
    assert copied_at == [3, 6]


@pytest.mark.parametrize("method", ["qmix", "ow_qmix"])
def test_episodes_unit_copies_after_n_episodes_however_many_updates(method):
    learner = _learner(method, sync_unit="episodes", sync_frequency=10)
    # episodes collected so far at each update: several updates per episode count, and
    # jumps over more than one period (25 -> 41 crosses 30 and 40: one copy)
    episodes = [4, 4, 9, 10, 10, 10, 19, 25, 41, 41, 42]
    copied = []
    for update, count in enumerate(episodes):
        learner.update(_batch(update), episodes=count)
        if in_sync(learner):
            copied.append(count)
    assert copied == [10, 25, 41]
    assert learner.synced_period == 4 and learner.updates == len(episodes)


def test_maybe_sync_reports_a_copy_only_when_a_new_period_starts():
    learner = _learner(sync_unit="episodes", sync_frequency=5)
    assert [learner.maybe_sync(n) for n in (0, 4, 5, 9, 10, 10, 16)] == [
        False, False, True, False, True, False, True]


def test_a_learner_driven_without_episodes_counts_its_updates():
    learner = _learner(sync_unit="episodes", sync_frequency=2)
    synced = []
    for update in range(4):
        learner.update(_batch(update))
        synced.append(in_sync(learner))
    assert synced == [False, True, False, True]


def test_the_sync_schedule_survives_a_checkpoint():
    learner = _learner(sync_unit="episodes", sync_frequency=10)
    learner.update(_batch(0), episodes=15)  # copies: period 1
    state = learner.state_dict()
    assert state["synced_period"] == 1
    resumed = _learner(sync_unit="episodes", sync_frequency=10)
    resumed.load_state_dict(state)
    resumed.policy.load_state_dict(learner.policy.state_dict())
    resumed.update(_batch(1), episodes=19)
    assert not in_sync(resumed)  # still period 1: no copy
    resumed.update(_batch(2), episodes=20)
    assert in_sync(resumed)

    del state["synced_period"]  # a checkpoint from before sync_unit counted updates
    older = _learner(sync_unit="updates", sync_frequency=10)
    state["updates"] = 25
    older.load_state_dict(state)
    assert older.synced_period == 2


def _copies_while_training(unit, run_dirs):
    """(updates, episodes) at every target copy of 4 rounds of the matrix game."""
    runner = xwq.get_runner("qmix", "matrix_game", "nonmonotonic", running_steps=128,
                            sync_frequency=40, sync_unit=unit, **run_dirs)
    agents, copies = runner.agents, []
    sync_targets = agents.learner.sync_targets

    def record():
        copies.append((agents.learner.updates, agents.episodes))
        sync_targets()

    agents.learner.sync_targets = record
    agents.train(until_env_steps=128)
    runner.finish()
    return copies


def test_agents_pass_the_episodes_collected_so_far(run_dirs):
    """Matrix game: 32 one-step episodes per round, then 32 updates. With sync_frequency 40
    episodes the copies come at the first update of rounds 2, 3 and 4 (64, 96, 128 episodes);
    counted in updates they come at updates 40, 80 and 120."""
    assert _copies_while_training("episodes", run_dirs) == [(33, 64), (65, 96), (97, 128)]
    assert _copies_while_training("updates", run_dirs) == [(40, 64), (80, 96), (120, 128)]
