"""The native simple_spread_v3 against mpe2 itself: same seeds, same actions, same data."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

import xwq  # noqa: E402
from xwq.environment.envs.mpe import make_mpe  # noqa: E402
from xwq.environment.envs.mpe_native import SimpleSpreadVecEnv  # noqa: E402

TOL = 1e-5


def _mpe2_envs(num_envs: int, **kwargs) -> list:
    return [make_mpe("simple_spread_v3", **kwargs) for _ in range(num_envs)]


def _stack(per_agent: dict, agents: list[str]) -> np.ndarray:
    return np.stack([np.asarray(per_agent[a]) for a in agents])


@pytest.mark.parametrize("kwargs, team_reward", [
    ({"N": 3, "local_ratio": 0.5, "max_cycles": 25}, "mean"),
    ({"N": 4, "local_ratio": 0.3, "max_cycles": 12}, "sum"),
    ({"N": 3, "curriculum": True}, "mean"),  # stage 0: no collision penalty
])
def test_matches_mpe2_over_several_episodes(kwargs: dict, team_reward: str) -> None:
    num_envs, seed, episodes = 4, 123, 3
    native = SimpleSpreadVecEnv("simple_spread_v3", num_envs, team_reward=team_reward, **kwargs)
    references = _mpe2_envs(num_envs, **kwargs)
    agents = references[0].possible_agents
    n, horizon = len(agents), kwargs.get("max_cycles", 25)
    assert native.spec.n_agents == n and native.spec.max_episode_steps == horizon

    obs, state, avail = native.reset(seed=seed)
    first = [env.reset(seed=seed + k) for k, env in enumerate(references)]
    expected_obs = np.stack([_stack(o, agents) for o, _ in first])
    expected_state = np.stack([env.state() for env in references])
    assert obs.dtype == np.float32 and state.dtype == np.float32 and avail.all()
    assert np.abs(obs - expected_obs).max() <= TOL
    assert np.abs(state - expected_state).max() <= TOL
    assert np.abs(obs[0] - obs[1]).max() > 0.1  # envs start from different worlds

    rng = np.random.default_rng(0)
    worst = dict.fromkeys(["obs", "state", "reward", "team"], 0.0)
    saw_collision = False
    for t in range(episodes * horizon):
        actions = rng.integers(0, 5, (num_envs, n))
        result = native.step(actions)
        for k, env in enumerate(references):
            o, r, term, trunc, _ = env.step(dict(zip(agents, actions[k].tolist())))
            rewards = np.array([r[a] for a in agents])
            team = rewards.mean() if team_reward == "mean" else rewards.sum()  # as ArrayEnv
            worst["obs"] = max(worst["obs"], np.abs(result.final_obs[k] - _stack(o, agents)).max())
            worst["state"] = max(worst["state"], np.abs(result.final_state[k] - env.state()).max())
            worst["reward"] = max(worst["reward"],
                                  np.abs(result.info["agent_rewards"][k] - rewards).max())
            worst["team"] = max(worst["team"], abs(float(result.reward[k]) - team))
            saw_collision |= np.ptp(rewards) > 0  # only collision penalties differ per agent
            assert bool(result.truncated[k]) == all(trunc.values()) == ((t + 1) % horizon == 0)
            assert not result.terminated[k] and not any(term.values())
            if result.truncated[k]:
                o, _ = env.reset()  # the next episode continues the env's own random stream
                assert np.abs(result.obs[k] - _stack(o, agents)).max() <= TOL
                assert np.abs(result.state[k] - env.state()).max() <= TOL
    assert max(worst.values()) <= TOL, worst
    assert saw_collision == (not kwargs.get("curriculum", False))


def test_agrees_with_the_serial_pettingzoo_path() -> None:
    config = xwq.get_configs(method="qmix", env="mpe", env_id="simple_spread_v3",
                             overrides={"parallels": 4})
    native = xwq.make_envs(config)
    config.vectorize = "serial"
    serial = xwq.make_envs(config)
    assert isinstance(native, SimpleSpreadVecEnv)
    assert not isinstance(serial, SimpleSpreadVecEnv)
    assert native.spec == serial.spec and native.num_envs == serial.num_envs == 4

    for a, b in zip(native.reset(seed=7), serial.reset(seed=7)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert np.abs(a.astype(float) - b.astype(float)).max() <= TOL
    rng = np.random.default_rng(1)
    for _ in range(2 * native.spec.max_episode_steps + 3):
        actions = rng.integers(0, 5, (4, native.n_agents))
        x, y = native.step(actions), serial.step(actions)
        for field in ("obs", "state", "avail", "reward", "final_state"):
            assert np.abs(getattr(x, field).astype(float)
                          - getattr(y, field).astype(float)).max() <= TOL, field
        np.testing.assert_array_equal(x.terminated, y.terminated)
        np.testing.assert_array_equal(x.truncated, y.truncated)
        # ArrayEnv reports zero observations for agents that have just finished, so compare
        # final_obs only where the episode goes on (mpe2's own final obs is checked above).
        going_on = ~x.done
        np.testing.assert_allclose(x.final_obs[going_on], y.final_obs[going_on], atol=TOL)
    serial.close()


def test_autoreset_keeps_final_and_first_observations_apart() -> None:
    env = SimpleSpreadVecEnv("simple_spread_v3", 3, max_cycles=5)
    obs, _, _ = env.reset(seed=0)
    for t in range(5):
        result = env.step(np.zeros((3, 3), dtype=np.int64))
        if t < 4:
            assert not result.done.any()
            np.testing.assert_array_equal(result.final_obs, result.obs)
            assert result.final_obs is not result.obs
    assert result.truncated.all() and not result.terminated.any()
    # final_obs: the agents have drifted with zero velocity from their reset positions ...
    np.testing.assert_allclose(result.final_obs[:, :, 2:4], obs[:, :, 2:4], atol=0.05)
    # ... while the new episode starts from fresh positions with zero velocity.
    assert np.abs(result.obs[:, :, 2:4] - result.final_obs[:, :, 2:4]).max() > 0.1
    assert (result.obs[:, :, 0:2] == 0).all()
    np.testing.assert_array_equal(result.state, result.obs.reshape(3, -1))
    np.testing.assert_array_equal(result.final_state, result.final_obs.reshape(3, -1))
    assert (env.t == 0).all()


def test_seeds_reproduce() -> None:
    env = SimpleSpreadVecEnv("simple_spread_v3", 2, max_cycles=3)
    first, _, _ = env.reset(seed=5)
    again, _, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    single = SimpleSpreadVecEnv("simple_spread_v3", 1, max_cycles=3)
    np.testing.assert_array_equal(single.reset(seed=6)[0][0], first[1])  # env k gets seed + k


def test_terminate_on_success_matches_mpe2() -> None:
    native = SimpleSpreadVecEnv("simple_spread_v3", 1, terminate_on_success=True)
    reference = make_mpe("simple_spread_v3", terminate_on_success=True)
    native.reset(seed=3)
    reference.reset(seed=3)
    world = reference.unwrapped.world
    for i, agent in enumerate(world.agents):  # park every agent on a landmark
        agent.state.p_pos = world.landmarks[i].state.p_pos.copy()
    native.agent_pos[0] = native.landmark_pos[0]
    result = native.step(np.zeros((1, 3), dtype=np.int64))
    _, _, terminated, truncated, _ = reference.step(dict.fromkeys(reference.possible_agents, 0))
    assert all(terminated.values()) and not any(truncated.values())
    assert result.terminated[0] and not result.truncated[0]
    assert np.abs(result.final_state[0] - reference.state()).max() <= TOL


def test_render_draws_agents_and_landmarks() -> None:
    env = SimpleSpreadVecEnv("simple_spread_v3", 2)
    env.reset(seed=0)
    frame = env.render(1)
    assert frame.shape == (300, 300, 3) and frame.dtype == np.uint8
    agent_pixels = (frame == np.array([70, 70, 170], dtype=np.uint8)).all(axis=2).sum()
    landmark_pixels = (frame == np.array([50, 50, 50], dtype=np.uint8)).all(axis=2).sum()
    assert agent_pixels > 100 and landmark_pixels > 10
    assert not np.array_equal(frame, env.render(0))


def test_native_only_for_simple_spread_and_clear_errors() -> None:
    config = xwq.get_configs(method="qmix", env="mpe", env_id="simple_reference_v3",
                             overrides={"vectorize": "native"})
    with pytest.raises(ValueError, match="simple_reference_v3"):
        xwq.make_envs(config)
    with pytest.raises(ValueError, match="vectorize: serial"):
        SimpleSpreadVecEnv("simple_spread_v3", 2, num_agent_neighbors=2)
    with pytest.raises(xwq.ConfigError, match="max_cycle"):
        SimpleSpreadVecEnv("simple_spread_v3", 2, max_cycle=10)
    env = SimpleSpreadVecEnv("simple_spread_v3", 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="0..4"):
        env.step(np.full((2, 3), 5))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((3, 2), dtype=np.int64))
