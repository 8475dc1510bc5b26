"""The one-step matrix game: payoffs, one-step episodes, autoreset, custom games, the PettingZoo
face, the serial path and the packaged configs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import xwq
from xwq.environment.envs.matrix_game import (
    NONMONOTONIC_PAYOFF,
    MatrixGameParallelEnv,
    MatrixGameVecEnv,
    make_matrix_game,
)
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV, UnknownNameError

METHODS = ("iql", "vdn", "qmix", "wqmix", "cw_qmix", "ow_qmix")
PAPER = [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]
JOINT = np.array(list(itertools.product(range(3), range(3))))  # all 9 joint actions


def test_spec_and_first_observation():
    env = MatrixGameVecEnv("nonmonotonic", 4)
    obs, state, avail = env.reset(seed=0)
    assert env.spec == xwq.environment.EnvSpec(("agent_0", "agent_1"), 5, 5, 3, 1,
                                               obs_low=0, obs_high=1, state_low=0, state_high=1)
    np.testing.assert_array_equal(obs, np.ones((4, 2, 5), dtype=np.float32))
    np.testing.assert_array_equal(state, np.ones((4, 5), dtype=np.float32))
    assert obs.dtype == np.float32 and state.dtype == np.float32
    assert avail.dtype == bool and avail.shape == (4, 2, 3) and avail.all()


def test_every_joint_action_pays_the_paper_matrix():
    np.testing.assert_array_equal(np.array(NONMONOTONIC_PAYOFF), PAPER)
    env = MatrixGameVecEnv("nonmonotonic", 9)
    env.reset(seed=0)
    result = env.step(JOINT)
    expected = [PAPER[a][b] for a, b in JOINT]  # rows: agent 1
    np.testing.assert_array_equal(result.reward, expected)
    assert result.reward.dtype == np.float32
    assert result.reward[JOINT.tolist().index([0, 1])] == -12  # agent 1 row 0, agent 2 col 1


def test_every_step_terminates_and_autoresets_into_separate_arrays():
    env = MatrixGameVecEnv("nonmonotonic", 3)
    env.reset(seed=0)
    for _ in range(3):
        result = env.step(np.zeros((3, 2), dtype=np.int64))
        assert result.terminated.all() and not result.truncated.any()
        np.testing.assert_array_equal(result.final_obs, np.ones((3, 2, 5)))
        np.testing.assert_array_equal(result.obs, np.ones((3, 2, 5)))
        assert not np.shares_memory(result.obs, result.final_obs)
        assert not np.shares_memory(result.state, result.final_state)
        assert result.final_avail.all() and result.avail.all()


def test_custom_square_payoff_sets_the_number_of_actions():
    env = MatrixGameVecEnv("nonmonotonic", 4, payoff=[[1, 0], [0, 2]])
    env.reset()
    assert env.spec.n_actions == 2
    result = env.step(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    np.testing.assert_array_equal(result.reward, [1, 0, 0, 2])
    with pytest.raises(ValueError, match="n×n"):
        MatrixGameVecEnv("nonmonotonic", 1, payoff=[[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="nested list"):
        MatrixGameVecEnv("nonmonotonic", 1, payoff=[[1, "a"], [0, 1]])


def test_bad_actions_and_env_ids_are_errors():
    env = MatrixGameVecEnv("nonmonotonic", 2)
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        env.step(np.array([[0, 3], [0, 0]]))
    with pytest.raises(UnknownNameError, match="nonmonotonic"):
        MatrixGameVecEnv("nonmonotonik", 1)
    with pytest.raises(UnknownNameError, match="nonmonotonic"):
        make_matrix_game("climbing")


def test_parallel_env_passes_the_pettingzoo_api_test():
    parallel_api_test(MatrixGameParallelEnv(), num_cycles=10)
    parallel_api_test(make_matrix_game("nonmonotonic", payoff=[[1, 0], [0, 1]]), num_cycles=10)


def test_parallel_env_one_game():
    env = make_matrix_game("nonmonotonic")
    obs, infos = env.reset(seed=0)
    assert env.agents == ["agent_0", "agent_1"]
    np.testing.assert_array_equal(obs["agent_0"], np.ones(5))
    assert infos["agent_1"]["action_mask"].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(env.state(), np.ones(5))
    _, rewards, terminated, truncated, _ = env.step({"agent_0": 0, "agent_1": 0})
    assert rewards == {"agent_0": 8.0, "agent_1": 8.0}
    assert all(terminated.values()) and not any(truncated.values())
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": 0, "agent_1": 0})


def test_registered_and_serial_path_equals_native():
    assert REGISTRY_NATIVE_ENV["matrix_game"] is MatrixGameVecEnv
    assert REGISTRY_ENV["matrix_game"] is make_matrix_game
    config = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                             overrides={"parallels": 9})
    native = xwq.make_envs(config)
    serial = xwq.make_envs(xwq.get_configs(
        method="qmix", env="matrix_game", env_id="nonmonotonic",
        overrides={"parallels": 9, "vectorize": "serial"}))
    assert isinstance(native, MatrixGameVecEnv)
    assert isinstance(serial, xwq.environment.SerialVecEnv)
    assert native.spec == serial.spec
    for a, b in zip(native.reset(seed=1), serial.reset(seed=1)):
        np.testing.assert_array_equal(a, b)
    for _ in range(2):
        x, y = native.step(JOINT), serial.step(JOINT)
        for field in ("obs", "state", "avail", "reward", "terminated", "truncated",
                      "final_obs", "final_state", "final_avail"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)


@pytest.mark.parametrize("method", METHODS)
def test_packaged_matrix_game_configs(method):
    config = xwq.get_configs(method=method, env="matrix_game", env_id="nonmonotonic")
    assert config.start_greedy == 1.0 and config.end_greedy == 1.0  # uniform exploration
    assert config.representation == "Basic_MLP"
    assert config.training_frequency == 1  # one update per one-step episode
    envs = xwq.make_envs(config)
    assert isinstance(envs, MatrixGameVecEnv) and envs.num_envs == config.parallels


def test_config_time_limit_does_not_lengthen_the_game():
    config = xwq.get_configs(method="qmix", env="matrix_game", env_id="nonmonotonic",
                             overrides={"max_episode_steps": 5})
    envs = xwq.make_envs(config)
    assert envs.spec.max_episode_steps == 1
    envs.reset(seed=0)
    assert envs.step(np.zeros((config.parallels, 2), dtype=np.int64)).terminated.all()
