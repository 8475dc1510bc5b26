"""Env "football" against a fake ``gfootball.env`` that follows its API:
``create_environment(env_name=..., representation="simple115v2",
number_of_left_players_agent_controls=N)`` returning a gym 0.25 env: ``reset() -> obs`` of shape
``(N, 115)`` (``(115,)`` when N is 1), ``step(actions) -> (obs, reward, done, info)`` with one
reward per player and ``info["score_reward"]``. A real smoke test runs where gfootball is
installed (it needs an 18-minute C++ build, so it is skipped here)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import xwq
from xwq.environment.adapters.array_env import ArrayEnv
from xwq.environment.envs.football import FootballEnv
from xwq.errors import MissingPackageError, UnknownNameError


class FakeFootball:
    """Scripted gfootball: ``plan`` = ``("goal", k)``, ``("conceded", k)``, ``("out", k)`` or
    ``("timeout", None)`` (the 400-step game duration)."""

    plan: tuple[str, int | None] = ("timeout", None)
    made: list[dict] = []

    def __init__(self, n: int) -> None:
        self.n = n
        self.seeded = None

    def _obs(self) -> np.ndarray:
        obs = np.stack([np.full(115, self.t + 0.01 * i, dtype=np.float32)
                        for i in range(self.n)])
        return obs[0] if self.n == 1 else obs

    def reset(self):
        self.t = 0
        return self._obs()

    def seed(self, seed):
        self.seeded = seed

    def step(self, actions):
        assert len(actions) == self.n and all(0 <= a < 19 for a in actions)
        self.t += 1
        kind, at = self.plan
        score = 0
        done = self.t >= 400
        if self.t == at:
            done = True
            score = {"goal": 1, "conceded": -1, "out": 0}[kind]
        reward = np.full(self.n, float(score)) + 0.1 * np.arange(self.n)  # per player
        return self._obs(), (reward[0] if self.n == 1 else reward), done, \
            {"score_reward": score}

    def close(self):
        pass


@pytest.fixture
def fake_gfootball(monkeypatch):
    def create_environment(env_name, representation="extracted",
                           number_of_left_players_agent_controls=1, **kwargs):
        FakeFootball.made.append({"env_name": env_name, "representation": representation,
                                  "n": number_of_left_players_agent_controls, **kwargs})
        return FakeFootball(number_of_left_players_agent_controls)

    package, env_module = types.ModuleType("gfootball"), types.ModuleType("gfootball.env")
    env_module.create_environment = create_environment
    package.env = env_module
    monkeypatch.setitem(sys.modules, "gfootball", package)
    monkeypatch.setitem(sys.modules, "gfootball.env", env_module)
    monkeypatch.setattr(FakeFootball, "plan", ("timeout", None))
    monkeypatch.setattr(FakeFootball, "made", [])
    return FakeFootball


def play(env: FootballEnv):
    env.reset(seed=0)
    t = 0
    while True:
        obs, rewards, terminated, truncated, info = env.step(dict.fromkeys(env.agents, 12))
        t += 1
        if any(terminated.values()) or any(truncated.values()):
            return t, obs, rewards, terminated, truncated, info


def test_missing_gfootball_gives_the_install_recipe(monkeypatch, run_dirs):
    monkeypatch.setitem(sys.modules, "gfootball", None)
    monkeypatch.delitem(sys.modules, "gfootball.env", raising=False)
    with pytest.raises(MissingPackageError) as caught:
        xwq.get_runner("qmix", "football", "academy_3_vs_1_with_keeper", **run_dirs)
    message = str(caught.value)
    for needed in ("gfootball==2.10.2", "gym==0.25.2", "--no-build-isolation", "libsdl2-dev"):
        assert needed in message
    assert isinstance(caught.value, ImportError)


def test_unknown_scenario(fake_gfootball, run_dirs):
    with pytest.raises(UnknownNameError, match="academy_3_vs_1_with_keeper"):
        xwq.get_runner("qmix", "football", "academy_3_vs_1", **run_dirs)


def test_players_are_agents_with_flat_observations(fake_gfootball):
    env = FootballEnv("academy_3_vs_1_with_keeper")
    assert fake_gfootball.made[-1] == {"env_name": "academy_3_vs_1_with_keeper",
                                       "representation": "simple115v2", "n": 3}
    assert env.agents == ["player_0", "player_1", "player_2"]
    assert env.action_space["player_1"].n == 19
    assert env.state_space.shape == (345,) and env.max_episode_steps == 400
    obs, _ = env.reset(seed=4)
    assert fake_gfootball.made and obs["player_2"].shape == (115,)
    np.testing.assert_allclose(env.state()[115:230], obs["player_1"])
    xwq.check_env(env)


def test_one_player_observation_gets_its_axis_back(fake_gfootball):
    env = FootballEnv("academy_empty_goal_close")
    obs, _ = env.reset()
    assert list(obs) == ["player_0"] and obs["player_0"].shape == (115,)
    _, rewards, *_ = env.step({"player_0": 0})
    assert set(rewards) == {"player_0"}


def test_goal_terminates_with_goal_statistics(fake_gfootball, monkeypatch):
    monkeypatch.setattr(fake_gfootball, "plan", ("goal", 7))
    t, _, rewards, terminated, truncated, info = play(FootballEnv("academy_3_vs_1_with_keeper"))
    assert t == 7 and all(terminated.values()) and not any(truncated.values())
    assert info == {"score_reward": 1.0, "goals_scored": 1.0, "goals_conceded": 0.0}
    assert rewards == pytest.approx({"player_0": 1.0, "player_1": 1.1, "player_2": 1.2})


def test_out_of_play_and_conceded_terminate(fake_gfootball, monkeypatch):
    monkeypatch.setattr(fake_gfootball, "plan", ("out", 5))
    assert all(play(FootballEnv("academy_counterattack_easy"))[3].values())
    monkeypatch.setattr(fake_gfootball, "plan", ("conceded", 400))
    t, _, _, terminated, truncated, info = play(FootballEnv("academy_counterattack_easy"))
    assert t == 400 and all(terminated.values()) and not any(truncated.values())
    assert info["goals_conceded"] == 1.0 and info["score_reward"] == -1.0


def test_game_duration_is_truncation(fake_gfootball):
    t, _, _, terminated, truncated, info = play(FootballEnv("academy_3_vs_1_with_keeper"))
    assert t == 400 and all(truncated.values()) and not any(terminated.values())
    assert info["goals_scored"] == 0.0


def test_team_reward_is_the_mean_or_sum_of_the_players(fake_gfootball, monkeypatch):
    monkeypatch.setattr(fake_gfootball, "plan", ("goal", 1))
    for team_reward, expected in (("mean", 1.1), ("sum", 3.3)):
        array = ArrayEnv(FootballEnv("academy_3_vs_1_with_keeper"), team_reward=team_reward)
        array.reset(seed=0)
        assert array.step(np.zeros(3, dtype=int))[3] == pytest.approx(expected)


def test_env_kwargs_choose_players_and_reach_gfootball(fake_gfootball):
    env = FootballEnv("academy_corner", number_of_left_players_agent_controls=2,
                      rewards="scoring,checkpoints")
    assert env.num_agents == 2 and fake_gfootball.made[-1]["rewards"] == "scoring,checkpoints"
    with pytest.raises(ValueError, match="simple115v2"):
        FootballEnv("academy_corner", representation="pixels")


def test_training_runs_through_the_runner(fake_gfootball, monkeypatch, run_dirs):
    monkeypatch.setattr(fake_gfootball, "plan", ("goal", 6))
    xwq.get_runner("vdn", "football", "academy_pass_and_shoot_with_keeper", parallels=2,
                   running_steps=48, batch_size=2, training_frequency=6, save_interval=0,
                   **run_dirs).run()


def test_real_gfootball_smoke():
    """Only where gfootball is installed (built from source; see the README)."""
    pytest.importorskip("gfootball.env", reason="gfootball is not installed (18-minute build)")
    env = FootballEnv("academy_3_vs_1_with_keeper")
    try:
        xwq.check_env(env)
        obs, _ = env.reset(seed=0)
        assert len(obs) == 3
        for _ in range(20):
            _, rewards, terminated, truncated, info = env.step(dict.fromkeys(env.agents, 0))
            assert set(info) == {"score_reward", "goals_scored", "goals_conceded"}
            if any(terminated.values()) or any(truncated.values()):
                env.reset()
    finally:
        env.close()


@pytest.mark.parametrize("env_id", sorted(xwq.common.config.available_envs()["football"]))
def test_packaged_buffer_fits_the_default_memory_budget(fake_gfootball, env_id):
    """The packaged buffer_size of every map fits buffer_memory_budget_mb (a new user's
    `xwq train --env football` must not be refused)."""
    from xwq.agents.buffer import episode_layout
    from xwq.common.config import get_configs

    config = get_configs(method="vdn", env="football", env_id=env_id)
    env = ArrayEnv(FootballEnv(env_id, **config.env_kwargs))
    per_episode = sum(int(np.prod(shape)) * dtype.itemsize
                      for shape, dtype in episode_layout(env.spec).values())
    assert config.buffer_size * per_episode / 2**20 <= config.buffer_memory_budget_mb
