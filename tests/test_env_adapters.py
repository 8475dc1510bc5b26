"""The dict-API adapters: PettingZoo envs unchanged, padding, masks, agents leaving, check_env."""

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

import xwq
from xwq.environment import ArrayEnv, EnvMismatchError, PettingZooEnv, as_multi_agent_env


class ToyParallel(ParallelEnv):
    """A third-party-style ParallelEnv: heterogeneous agents, image observations for one,
    action masks in infos for another, agent 'c' leaves after 2 steps, no state()."""

    metadata = {"name": "toy_v0"}

    def __init__(self, dict_obs: bool = False, max_cycles: int = 5):
        self.possible_agents = ["a", "b", "c"]
        self.max_cycles = max_cycles
        self.dict_obs = dict_obs
        self._obs_spaces = {
            "a": spaces.Box(0, 1, (2, 3, 2), dtype=np.float32),  # image-shaped: 12 values
            "b": spaces.Box(-1, 1, (4,), dtype=np.float32),
            "c": spaces.Box(-1, 1, (1,), dtype=np.float32),
        }
        self._act_spaces = {"a": spaces.Discrete(2), "b": spaces.Discrete(4),
                            "c": spaces.Discrete(3)}

    def observation_space(self, agent):
        space = self._obs_spaces[agent]
        if self.dict_obs and agent == "b":
            return spaces.Dict({"observation": space,
                                "action_mask": spaces.Box(0, 1, (4,), dtype=np.int8)})
        return space

    def action_space(self, agent):
        return self._act_spaces[agent]

    def _obs(self):
        out = {}
        for agent in self.agents:
            value = np.full(self._obs_spaces[agent].shape, self.t + 0.5, dtype=np.float32)
            if self.dict_obs and agent == "b":
                value = {"observation": value, "action_mask": np.array([0, 1, 1, 0], np.int8)}
            out[agent] = value
        return out

    def _infos(self):
        infos = {agent: {} for agent in self.agents}
        if not self.dict_obs and "b" in infos:
            infos["b"]["action_mask"] = np.array([1, 0, 0, 1], np.int8)
        return infos

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), self._infos()

    def step(self, actions):
        assert set(actions) == set(self.agents), "actions sent for agents not in the episode"
        self.t += 1
        rewards = {agent: float(actions[agent]) for agent in self.agents}
        terminated = {agent: agent == "c" and self.t >= 2 for agent in self.agents}
        truncated = {agent: self.t >= self.max_cycles for agent in self.agents}
        obs, infos = self._obs(), self._infos()
        self.agents = [a for a in self.agents if not (terminated[a] or truncated[a])]
        return obs, rewards, terminated, truncated, infos


def test_pettingzoo_env_padding_masks_and_image_observations():
    env = ArrayEnv(as_multi_agent_env(ToyParallel()))
    assert env.spec.agents == ("a", "b", "c")
    assert env.spec.obs_dim == 12 and env.spec.n_actions == 4
    assert env.spec.state_dim == 12 + 4 + 1  # no state(): concatenated observations
    assert env.spec.max_episode_steps == 5  # from max_cycles
    obs, state, avail = env.reset(seed=0)
    assert obs.shape == (3, 12) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[1], [0.5] * 4 + [0.0] * 8)  # 'b' padded with zeros
    np.testing.assert_array_equal(obs[2], [0.5] + [0.0] * 11)
    np.testing.assert_array_equal(avail, [[1, 1, 0, 0], [1, 0, 0, 1], [1, 1, 1, 0]])
    assert state.shape == (17,)


def test_action_mask_from_dict_observations():
    env = ArrayEnv(as_multi_agent_env(ToyParallel(dict_obs=True)))
    obs, _, avail = env.reset()
    np.testing.assert_array_equal(avail[1], [0, 1, 1, 0])
    np.testing.assert_array_equal(obs[1, :4], [0.5] * 4)


def test_agent_leaving_early_is_kept_with_zeros_and_only_action_zero():
    env = ArrayEnv(as_multi_agent_env(ToyParallel()), team_reward="sum")
    env.reset()
    obs, _, avail, reward, term, trunc = env.step(np.array([1, 3, 2]))
    assert reward == 6.0 and not term and not trunc
    obs, _, avail, reward, term, trunc = env.step(np.array([1, 3, 2]))  # 'c' terminates here
    assert obs[2, 0] == 2.5  # its last observation is still real on the step it leaves
    obs, _, avail, reward, term, trunc = env.step(np.array([0, 0, 2]))  # 'c' gone: not sent
    assert reward == 0.0
    np.testing.assert_array_equal(obs[2], np.zeros(12))
    np.testing.assert_array_equal(avail[2], [1, 0, 0, 0])
    env.step(np.array([0, 0, 0]))
    *_, term, trunc = env.step(np.array([0, 0, 0]))
    assert trunc and not term  # the time limit is a truncation


def test_team_reward_mean_vs_sum():
    mean_env = ArrayEnv(as_multi_agent_env(ToyParallel()), team_reward="mean")
    mean_env.reset()
    assert mean_env.step(np.array([1, 3, 2]))[3] == pytest.approx(2.0)


def test_register_pettingzoo_env_and_step_through_make_envs():
    xwq.register_env("toy_pz", lambda env_id, **kwargs: ToyParallel(**kwargs))
    config = xwq.get_configs(method="qmix", env="toy_pz", env_id="any",
                             overrides={"parallels": 3, "env_kwargs": {"max_cycles": 4}})
    envs = xwq.make_envs(config)
    obs, state, avail = envs.reset(seed=1)
    assert obs.shape == (3, 3, 12) and state.shape == (3, 17) and avail.shape == (3, 3, 4)
    for _ in range(4):
        result = envs.step(np.zeros((3, 3), dtype=int))
    assert result.truncated.all() and not result.terminated.any()
    assert (result.final_obs[:, 0, 0] == 4.5).all() and (result.obs[:, 0, 0] == 0.5).all()
    envs.close()


def test_third_party_pettingzoo_env_without_subclassing():
    from pettingzoo.classic import rps_v2

    xwq.register_env("rps", lambda env_id, **kwargs: rps_v2.parallel_env(**kwargs))
    config = xwq.get_configs(method="vdn", env="rps", env_id="default",
                             overrides={"parallels": 2})
    envs = xwq.make_envs(config)
    assert envs.spec.obs_dim == 4 and envs.spec.n_actions == 3  # Discrete obs -> one-hot
    obs, state, _ = envs.reset(seed=0)
    np.testing.assert_array_equal(obs[0, 0], [0, 0, 0, 1])
    assert state.shape == (2, 8)
    result = envs.step(np.array([[0, 1], [2, 2]]))
    np.testing.assert_array_equal(result.reward, [0.0, 0.0])  # zero-sum: mean is 0
    envs.close()


def test_pettingzoo_env_is_a_multi_agent_env():
    env = as_multi_agent_env(ToyParallel())
    assert isinstance(env, PettingZooEnv) and isinstance(env, xwq.MultiAgentEnv)
    assert env.num_agents == 3
    with pytest.raises(xwq.EnvMismatchError, match="must return an xwq MultiAgentEnv"):
        as_multi_agent_env(object())


def test_custom_multi_agent_env_subclass(counting_env_class):
    xwq.register_env("counting", counting_env_class)
    config = xwq.get_configs(method="qmix", env="counting", env_id="x",
                             overrides={"parallels": 2, "env_kwargs": {"length": 3}})
    envs = xwq.make_envs(config)
    assert envs.spec.state_dim == 4 and envs.spec.max_episode_steps == 6
    _, _, avail = envs.reset(seed=3)
    np.testing.assert_array_equal(avail[0], [[1, 1, 1], [1, 1, 0]])
    for _ in range(3):
        result = envs.step(np.ones((2, 2), dtype=int))
    assert result.terminated.all() and not result.truncated.any()
    np.testing.assert_array_equal(result.reward, [2.0, 2.0])


# --- check_env ----------------------------------------------------------------------------
def test_check_env_accepts_good_envs(counting_env_class):
    summary = xwq.check_env(counting_env_class())
    assert summary["n_actions"] == 3 and summary["episodes"] > 10
    assert xwq.check_env(ToyParallel())["obs_dim"] == 12


def test_check_env_takes_the_time_limit_xwq_will_impose(counting_env_class):
    class NoLimit(counting_env_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.max_episode_steps = None

    with pytest.raises(xwq.EnvMismatchError, match="max_episode_steps"):
        xwq.check_env(NoLimit())
    assert xwq.check_env(NoLimit(), max_episode_steps=4)["max_episode_steps"] == 4


@pytest.mark.parametrize("breakage, pattern", [
    ("obs_shape", r"agent 'a' observation has shape \(2,\), its observation space says \(3,\)"),
    ("missing_reward", r"rewards is missing agents \['b'\]"),
    ("empty_mask", r"agent 'b' has no available action"),
    ("mask_shape", r"agent 'a' action mask has shape \(2,\), expected \(3,\)"),
    ("no_limit", r"no time limit"),
    ("box_actions", r"agent 'a': action space .* is not Discrete"),
    ("missing_obs", r"no observation for agent 'b'"),
    ("rewards_list", r"rewards must be a dict keyed by agent, got list"),
    ("nan_obs", r"agent 'a' observation has NaN"),
])
def test_check_env_explains_what_is_wrong(counting_env_class, breakage, pattern):
    class Broken(counting_env_class):
        def __init__(self):
            super().__init__()
            if breakage == "no_limit":
                self.max_episode_steps = None
            if breakage == "box_actions":
                self.action_space = dict(self.action_space, a=spaces.Box(-1, 1, (2,)))

        def _obs(self):
            obs = super()._obs()
            if breakage == "obs_shape":
                obs["a"] = obs["a"][:2]
            if breakage == "missing_obs" and self.t > 0:
                del obs["b"]
            if breakage == "nan_obs" and self.t > 1:
                obs["a"][0] = np.nan
            return obs

        def step(self, actions):
            obs, rewards, term, trunc, info = super().step(actions)
            if breakage == "missing_reward":
                del rewards["b"]
            if breakage == "rewards_list":
                rewards = list(rewards.values())
            return obs, rewards, term, trunc, info

        def avail_actions(self):
            masks = super().avail_actions()
            if breakage == "empty_mask" and self.t == 2:
                masks["b"] = np.zeros(3, bool)
            if breakage == "mask_shape":
                masks["a"] = np.ones(2, bool)
            return masks

    with pytest.raises(EnvMismatchError, match=pattern):
        xwq.check_env(Broken())


def test_array_env_errors_name_the_agent(counting_env_class):
    class WrongSize(counting_env_class):
        def _obs(self):
            obs = super()._obs()
            obs["b"] = np.zeros(5, np.float32)
            return obs

    with pytest.raises(EnvMismatchError, match="agent 'b': observation has 5 values"):
        ArrayEnv(WrongSize()).reset()


def test_missing_observation_of_a_live_agent_is_named(counting_env_class):
    class Forgetful(counting_env_class):
        def step(self, actions):
            obs, *rest = super().step(actions)
            del obs["b"]
            return (obs, *rest)

    env = ArrayEnv(Forgetful())
    env.reset()
    with pytest.raises(EnvMismatchError, match="agent 'b' is still in the episode but got no "
                                               "observation at step 1"):
        env.step(np.zeros(2, dtype=int))


def test_pettingzoo_butterfly_env_where_agents_die_trains_unchanged(run_dirs):
    """Knights-archers-zombies (PettingZoo's own code): vector observations of shape (27, 5),
    agents that die and leave, a state() of its own; registered, checked and trained."""
    from pettingzoo.butterfly import knights_archers_zombies_v11 as kaz

    xwq.register_env("kaz", lambda env_id, **kwargs: kaz.parallel_env(**kwargs))
    summary = xwq.check_env(kaz.parallel_env(max_cycles=60))
    assert len(summary["agents"]) == 4
    assert summary["obs_dim"] == 135 and summary["n_actions"] == 6
    runner = xwq.get_runner("wqmix", "kaz", "v11", parallels=2, batch_size=2, buffer_size=8,
                            env_kwargs={"max_cycles": 40}, **run_dirs)
    assert runner.envs.spec.max_episode_steps == 40
    stats = runner.agents.train(80)
    assert runner.agents.env_steps == 160 and np.isfinite(stats["loss"])
    runner.finish()
