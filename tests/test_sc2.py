"""Env "sc2" (SMAC / SMACv2) against a fake ``smac`` that follows oxwhirl's API contract:
``StarCraft2Env(map_name=..., seed=..., continuing_episode=..., ...)``, ``get_env_info()``,
``reset()``, ``step(actions) -> (reward, terminated, info)`` with ``battle_won``,
``dead_allies``, ``dead_enemies`` and ``episode_limit`` (only on a timeout, only with
``continuing_episode=True``), ``(0, True, {})`` after a protocol error, ``get_obs()``,
``get_state()``, ``get_avail_actions()`` (lists of 0/1) and ``close()``."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

import xwq
from xwq.environment.adapters.array_env import ArrayEnv
from xwq.environment.envs.sc2 import SC2Env, check_sc2_env_id
from xwq.errors import MissingPackageError, UnknownNameError

MAPS = {"3m": (3, 3, 60), "5m_vs_6m": (5, 6, 70), "10gen_protoss": (10, 10, 200)}
OBS, STATE = 6, 9


class FakeStarCraft2Env:
    """Scripted SMAC: ``plan`` (class attribute) says how each episode ends and when:
    ``("win", k)``, ``("loss", k)``, ``("protocol", k)`` or ``("timeout", None)``. Allies die
    one per step in a loss, enemies one per step in a win; reward 0.5 per step (+ 10 on a win).
    """

    plan: tuple[str, int | None] = ("timeout", None)
    instances: list[FakeStarCraft2Env] = []

    def __init__(self, map_name="8m", seed=None, continuing_episode=False, step_mul=8,
                 difficulty="7", reward_win=200, episode_config=None, **others):
        self.n_agents, self.n_enemies, self.episode_limit = MAPS[map_name]
        self.map_name, self.seed_value, self.continuing_episode = map_name, seed, continuing_episode
        self.n_actions = 6 + self.n_enemies
        self.launched = False
        self.closed = False
        self.last_actions = None
        FakeStarCraft2Env.instances.append(self)

    def get_env_info(self):
        return {"state_shape": STATE, "obs_shape": OBS, "n_actions": self.n_actions,
                "n_agents": self.n_agents, "episode_limit": self.episode_limit}

    def reset(self):
        self.launched = True
        self.t = 0
        self.dead_allies = self.dead_enemies = 0
        return self.get_obs(), self.get_state()

    def step(self, actions):
        assert len(actions) == self.n_agents
        self.last_actions = list(actions)
        kind, at = self.plan
        self.t += 1
        if kind == "protocol" and self.t == at:
            return 0, True, {}
        if kind == "win" and self.t <= at:
            self.dead_enemies = min(self.n_enemies, self.dead_enemies + 1)
        if kind == "loss" and self.t <= at:
            self.dead_allies = min(self.n_agents, self.dead_allies + 1)
        info = {"battle_won": False, "dead_allies": self.dead_allies,
                "dead_enemies": self.dead_enemies}
        reward, terminated = 0.5, False
        if kind in ("win", "loss") and self.t == at:
            terminated = True
            if kind == "win":
                info["battle_won"] = True
                reward += 10
        elif self.t >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
        return reward, terminated, info

    def get_obs(self):
        return [[float(self.t), float(i), 0.0, 0.0, 0.0, 1.0] if i >= self.dead_allies
                else [0.0] * OBS for i in range(self.n_agents)]

    def get_state(self):
        return [float(self.t)] * STATE

    def get_avail_actions(self):
        return [[1, 0] + [0] * (self.n_actions - 2) if i < self.dead_allies
                else [0, 1, 1, 1, 1, 1] + [1] * self.n_enemies for i in range(self.n_agents)]

    def close(self):
        self.closed = True


class FakeCapabilityWrapper(FakeStarCraft2Env):
    """SMACv2's wrapper: the same contract plus ``capability_config``."""

    def __init__(self, capability_config=None, **kwargs):
        assert capability_config is not None, "SMACv2 needs a capability_config"
        self.capability_config = capability_config
        super().__init__(**kwargs)


@pytest.fixture
def fake_smac(monkeypatch, tmp_path):
    """oxwhirl's smac and smacv2 replaced by the fakes; SC2PATH with the SMAC maps."""
    for name in ("smac", "smac.env", "smacv2", "smacv2.env"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    smac, smac_env = types.ModuleType("smac"), types.ModuleType("smac.env")
    smac_env.StarCraft2Env = FakeStarCraft2Env
    smac.env = smac_env
    smacv2, smacv2_env = types.ModuleType("smacv2"), types.ModuleType("smacv2.env")
    smacv2_env.StarCraftCapabilityEnvWrapper = FakeCapabilityWrapper
    smacv2.env = smacv2_env
    for name, module in (("smac", smac), ("smac.env", smac_env), ("smacv2", smacv2),
                         ("smacv2.env", smacv2_env)):
        monkeypatch.setitem(sys.modules, name, module)
    maps = tmp_path / "StarCraftII" / "Maps" / "SMAC_Maps"
    maps.mkdir(parents=True)
    for name in MAPS:
        (maps / f"{name}.SC2Map").write_bytes(b"")
    monkeypatch.setenv("SC2PATH", str(tmp_path / "StarCraftII"))
    monkeypatch.setattr(FakeStarCraft2Env, "plan", ("timeout", None))
    monkeypatch.setattr(FakeStarCraft2Env, "instances", [])
    return FakeStarCraft2Env


def play(env: SC2Env, steps: int | None = None):
    """Step with the first available action until the episode ends; the last step's returns."""
    env.reset(seed=1)
    t = 0
    while True:
        actions = {a: int(np.flatnonzero(m)[0]) for a, m in env.avail_actions().items()}
        obs, rewards, terminated, truncated, info = env.step(actions)
        t += 1
        if any(terminated.values()) or any(truncated.values()) or t == steps:
            return t, obs, rewards, terminated, truncated, info


# --- missing packages: said at get_runner time, with what to install -----------------------------
def test_missing_smac_says_what_to_install_at_get_runner(monkeypatch, run_dirs):
    for name in [m for m in sys.modules if m == "smac" or m.startswith("smac.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "smac", None)
    with pytest.raises(ImportError) as caught:
        xwq.get_runner("wqmix", "sc2", "3m", **run_dirs)
    assert isinstance(caught.value, MissingPackageError)
    message = str(caught.value)
    for needed in ("pip install git+https://github.com/oxwhirl/smac.git", "SC2PATH",
                   "SMAC_Maps", "SMAC3", "StarCraft II"):
        assert needed in message


def test_smac3_under_the_same_name_is_recognised(monkeypatch, run_dirs):
    smac3 = types.ModuleType("smac")
    smac3.facade = types.ModuleType("smac.facade")  # SMAC3's layout: no smac.env
    for name in [m for m in sys.modules if m == "smac" or m.startswith("smac.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "smac", smac3)
    with pytest.raises(MissingPackageError, match="is SMAC3"):
        xwq.get_runner("qmix", "sc2", "3m", **run_dirs)


def test_missing_starcraft_or_map_is_named(fake_smac, monkeypatch, tmp_path):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    with pytest.raises(MissingPackageError, match="no StarCraft II installation"):
        check_sc2_env_id("3m")
    monkeypatch.setenv("SC2PATH", str(tmp_path / "StarCraftII"))
    with pytest.raises(MissingPackageError, match=r"corridor\.SC2Map not found"):
        check_sc2_env_id("corridor")


def test_unknown_map_lists_choices(fake_smac, run_dirs):
    with pytest.raises(UnknownNameError, match="unknown env_id '3mm'.*Did you mean '3m'"):
        xwq.get_runner("qmix", "sc2", "3mm", **run_dirs)
    with pytest.raises(UnknownNameError, match="protoss_5_vs_5"):
        check_sc2_env_id("protoss_five")


# --- the adapter -----------------------------------------------------------------------------
def test_spaces_and_limit_come_from_env_info(fake_smac):
    env = SC2Env("5m_vs_6m")
    assert env.agents == [f"agent_{i}" for i in range(5)]
    assert env.observation_space["agent_0"].shape == (OBS,)
    assert env.action_space["agent_4"].n == 12
    assert env.state_space.shape == (STATE,)
    assert env.max_episode_steps == 70
    assert fake_smac.instances[-1].continuing_episode is True  # for the timeout flag
    xwq.check_env(env)


def test_win_is_terminal_with_battle_statistics(fake_smac, monkeypatch):
    monkeypatch.setattr(fake_smac, "plan", ("win", 3))
    t, obs, rewards, terminated, truncated, info = play(SC2Env("3m"))
    assert t == 3
    assert all(terminated.values()) and not any(truncated.values())
    assert info["battle_won"] == 1.0 and info["dead_enemies"] == 3.0
    assert info["dead_allies"] == 0.0 and info["timeout"] == 0.0
    assert all(isinstance(v, float) for v in info.values())
    assert rewards == dict.fromkeys(rewards, 10.5)  # every agent gets SMAC's team reward


def test_loss_is_terminal_not_won(fake_smac, monkeypatch):
    monkeypatch.setattr(fake_smac, "plan", ("loss", 3))
    _, _, _, terminated, truncated, info = play(SC2Env("3m"))
    assert all(terminated.values()) and not any(truncated.values())
    assert info["battle_won"] == 0.0 and info["dead_allies"] == 3.0


@pytest.mark.parametrize("continuing_episode", [True, False])
def test_time_limit_is_truncation(fake_smac, continuing_episode):
    """With SMAC's flag (the default here) or, without it, by the step count."""
    env = SC2Env("3m", continuing_episode=continuing_episode)
    t, _, _, terminated, truncated, info = play(env)
    assert t == 60
    assert all(truncated.values()) and not any(terminated.values())
    assert info["timeout"] == 1.0 and info["battle_won"] == 0.0


def test_battle_lost_on_the_last_step_is_terminal_without_the_flag(fake_smac, monkeypatch):
    monkeypatch.setattr(fake_smac, "plan", ("loss", 60))
    env = SC2Env("3m", continuing_episode=False)
    t, _, _, terminated, truncated, _ = play(env)
    assert t == 60 and all(terminated.values()) and not any(truncated.values())


def test_protocol_error_truncates_with_the_last_observation(fake_smac, monkeypatch, caplog):
    monkeypatch.setattr(fake_smac, "plan", ("protocol", 4))
    env = SC2Env("3m")
    with caplog.at_level(logging.WARNING, logger="xwq.environment.envs.sc2"):
        t, _, _, _, _, _ = play(env, steps=3)
        before = {a: o.copy() for a, o in env._last["obs"].items()}
        state_before = env.state().copy()
        obs, rewards, terminated, truncated, info = env.step(dict.fromkeys(env.agents, 1))
    assert t == 3
    assert all(truncated.values()) and not any(terminated.values())
    assert set(rewards.values()) == {0.0}
    assert info["protocol_error"] == 1.0 and info["battle_won"] == 0.0
    for agent in env.agents:
        np.testing.assert_array_equal(obs[agent], before[agent])
    np.testing.assert_array_equal(env.state(), state_before)
    assert "protocol error" in caplog.text
    env.reset()  # the next episode starts normally
    assert env.step(dict.fromkeys(env.agents, 1))[4]["protocol_error"] == 0.0


def test_dead_agents_and_masks_pass_through(fake_smac, monkeypatch):
    monkeypatch.setattr(fake_smac, "plan", ("loss", 3))
    env = SC2Env("3m")
    play(env, steps=1)
    avail = env.avail_actions()
    assert avail["agent_0"].dtype == bool
    np.testing.assert_array_equal(avail["agent_0"], [1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert avail["agent_1"][1:].all()


def test_first_reset_seed_reaches_smac_and_actions_are_ordered(fake_smac):
    env = SC2Env("3m", seed=5)
    assert fake_smac.instances[-1].seed_value == 5
    env.reset(seed=11)
    assert fake_smac.instances[-1].seed_value == 11 and fake_smac.instances[-1].launched
    env.reset(seed=12)  # the game is running: SC2 keeps its seed
    assert fake_smac.instances[-1].seed_value == 11
    env.step({"agent_2": 3, "agent_0": 1, "agent_1": 2})
    assert fake_smac.instances[-1].last_actions == [1, 2, 3]
    env.close()
    assert fake_smac.instances[-1].closed


def test_array_env_reads_truncation(fake_smac):
    array = ArrayEnv(SC2Env("3m"))
    array.reset(seed=0)
    for _ in range(59):
        *_, terminated, truncated = array.step(np.ones(3, dtype=int))
        assert not terminated and not truncated
    obs, state, avail, reward, terminated, truncated = array.step(np.ones(3, dtype=int))
    assert truncated and not terminated and reward == pytest.approx(0.5)


def test_smacv2_env_ids_build_the_capability_wrapper(fake_smac):
    env = SC2Env("protoss_5_vs_5")
    inner = fake_smac.instances[-1]
    assert isinstance(inner, FakeCapabilityWrapper)
    assert inner.map_name == "10gen_protoss"
    config = inner.capability_config
    assert config["n_units"] == 5 and config["n_enemies"] == 5
    assert config["team_gen"]["unit_types"] == ["stalker", "zealot", "colossus"]
    assert config["start_positions"]["dist_type"] == "surrounded_and_reflect"
    assert env.max_episode_steps == 200
    with pytest.raises(ValueError, match="allies"):
        SC2Env("zerg_5_vs_20")


def test_packaged_configs_for_the_paper_maps():
    from xwq.common.config import get_configs

    for env_id in ("3m", "8m", "2s3z", "3s5z", "5m_vs_6m", "3s_vs_5z", "6h_vs_8z",
                   "27m_vs_30m", "MMM2", "corridor", "3s5z_vs_3s6z"):
        config = get_configs(method="wqmix", env="sc2", env_id=env_id)
        assert (config.buffer_size, config.batch_size, config.sync_frequency) == (5000, 32, 200)
        assert (config.start_greedy, config.end_greedy, config.decay_step_greedy) == \
            (1.0, 0.05, 50000)
        assert config.eval_metric == "battle_won"


def test_training_runs_through_the_runner(fake_smac, monkeypatch, run_dirs):
    monkeypatch.setattr(fake_smac, "plan", ("win", 5))
    runner = xwq.get_runner("qmix", "sc2", "3m", running_steps=60, batch_size=2,
                            training_frequency=5, save_interval=0, **run_dirs)
    runner.run()
