"""Vectorisation: serial and subprocess envs agree; autoreset keeps episodes apart; MPE."""

import numpy as np
import pytest
from gymnasium import spaces as gym_spaces

import xwq
from xwq.environment import SerialVecEnv, SubprocVecEnv


def _roll(envs, steps, seed):
    rng = np.random.default_rng(seed)
    record = [envs.reset(seed=seed)]
    for _ in range(steps):
        actions = np.stack([[rng.choice(np.flatnonzero(mask)) for mask in env_avail]
                            for env_avail in record[-1][2]])
        result = envs.step(actions)
        record.append((result.obs, result.state, result.avail, result.reward,
                       result.terminated, result.truncated, result.final_obs,
                       result.final_state))
    return record


def test_serial_and_subprocess_give_identical_data_across_episode_boundaries():
    config = xwq.get_configs(method="qmix", env="mpe", env_id="simple_spread_v3",
                             overrides={"parallels": 3, "vectorize": "serial",
                                        "env_kwargs": {"N": 3, "max_cycles": 7}})
    serial = xwq.make_envs(config)
    config.vectorize = "subprocess"
    subprocess = xwq.make_envs(config)
    assert isinstance(serial, SerialVecEnv) and isinstance(subprocess, SubprocVecEnv)
    assert serial.spec == subprocess.spec
    a, b = _roll(serial, 300, seed=5), _roll(subprocess, 300, seed=5)
    episode_ends = sum(int(step[5].sum()) for step in a[1:])
    assert episode_ends == 3 * (300 // 7)  # many autoresets happened
    for step_a, step_b in zip(a, b):
        for x, y in zip(step_a, step_b):
            np.testing.assert_array_equal(x, y)
    serial.close()
    subprocess.close()


def test_autoreset_keeps_final_observation_apart_from_the_next_first(counting_env_class):
    xwq.register_env("counting_vec", counting_env_class)
    config = xwq.get_configs(method="qmix", env="counting_vec", env_id="x",
                             overrides={"parallels": 2, "vectorize": "serial",
                                        "env_kwargs": {"length": 3}})
    envs = xwq.make_envs(config)
    envs.reset(seed=0)
    for _ in range(3):
        result = envs.step(np.zeros((2, 2), dtype=int))
    assert result.terminated.all()
    assert (result.final_obs[:, :, 0] == 3).all()  # t=3: the episode's last observation
    assert (result.obs[:, :, 0] == 0).all()  # t=0: the next episode's first
    assert (result.final_state[:, 0] == 3).all() and (result.state[:, 0] == 0).all()
    assert result.final_obs[0, 0, 2] != result.final_obs[1, 0, 2]  # each env its own stream


def test_reset_seed_gives_env_k_seed_plus_k(counting_env_class):
    xwq.register_env("counting_seed", counting_env_class)
    config = xwq.get_configs(method="qmix", env="counting_seed", env_id="x",
                             overrides={"parallels": 3})
    obs, _, _ = xwq.make_envs(config).reset(seed=10)
    config.parallels = 1
    single = xwq.make_envs(config)
    for k in range(3):
        np.testing.assert_array_equal(single.reset(seed=10 + k)[0][0], obs[k])


def test_subprocess_worker_error_is_reported():
    def factory():
        raise RuntimeError("boom in the worker")

    with pytest.raises(RuntimeError, match="boom in the worker"):
        SubprocVecEnv([factory])


def test_subprocess_worker_passes_on_the_one_line_env_error():
    """An env that breaks its contract in a worker gives the same EnvMismatchError (not a
    worker traceback) as it would in the serial vec env."""
    def factory():
        from xwq.environment.adapters.array_env import ArrayEnv

        class NaNReward(xwq.MultiAgentEnv):
            def __init__(self):
                self.agents = ["a"]
                self.observation_space = {"a": gym_spaces.Box(0, 1, (2,))}
                self.action_space = {"a": gym_spaces.Discrete(2)}
                self.max_episode_steps = 5

            def reset(self, seed=None):
                return {"a": np.zeros(2, np.float32)}, {}

            def step(self, actions):
                return ({"a": np.zeros(2, np.float32)}, {"a": float("nan")}, {"a": False},
                        {"a": False}, {})

        return ArrayEnv(NaNReward())

    envs = SubprocVecEnv([factory])
    envs.reset(seed=0)
    with pytest.raises(xwq.errors.EnvMismatchError, match="agent 'a': reward is nan"):
        envs.step(np.zeros((1, 1), dtype=int))


@pytest.mark.parametrize("env_id, n_agents, obs_dim, n_actions", [
    ("simple_spread_v3", 3, 18, 5),
    ("simple_reference_v3", 2, 21, 50),
    ("simple_speaker_listener_v4", 2, 11, 5),
])
def test_mpe_scenarios_through_make_envs(env_id, n_agents, obs_dim, n_actions):
    config = xwq.get_configs(method="wqmix", env="mpe", env_id=env_id,
                             overrides={"parallels": 2, "vectorize": "serial"})
    envs = xwq.make_envs(config)
    spec = envs.spec
    assert (spec.n_agents, spec.obs_dim, spec.n_actions) == (n_agents, obs_dim, n_actions)
    assert spec.max_episode_steps == 25
    obs, state, avail = envs.reset(seed=0)
    assert obs.shape == (2, n_agents, obs_dim) and state.shape == (2, spec.state_dim)
    if env_id == "simple_speaker_listener_v4":  # speaker has 3 actions, listener 5
        np.testing.assert_array_equal(avail[0], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
        assert (obs[:, 0, 3:] == 0).all()  # speaker's 3 observations padded to 11
    for _ in range(25):
        result = envs.step(np.zeros((2, n_agents), dtype=int))
    assert result.truncated.all() and not result.terminated.any()
    envs.close()


def test_mpe_kwargs_reach_the_env_and_bad_kwargs_are_named():
    config = xwq.get_configs(method="qmix", env="mpe", env_id="simple_spread_v3",
                             overrides={"parallels": 1, "vectorize": "serial",
                                        "env_kwargs": {"N": 4, "max_cycles": 10}})
    envs = xwq.make_envs(config)
    assert envs.spec.n_agents == 4 and envs.spec.max_episode_steps == 10
    config.env_kwargs = {"N": 3, "colour": "red"}
    with pytest.raises(xwq.ConfigError, match="env 'mpe', env_id 'simple_spread_v3': bad "):
        xwq.make_envs(config)


def test_native_only_and_unknown_vectorize_choices():
    config = xwq.get_configs(method="qmix", env="mpe", env_id="simple_reference_v3",
                             overrides={"vectorize": "native"})
    with pytest.raises(ValueError, match="native version only for env_id"):
        xwq.make_envs(config)
