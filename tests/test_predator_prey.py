"""Predator-prey with punishment: every rule on hand-placed grids, then vectorisation, seeding,
autoreset, the PettingZoo face and the config path."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import xwq
from xwq.environment.envs.predator_prey import (
    CATCH,
    DOWN,
    LEFT,
    RIGHT,
    STAY,
    UP,
    PredatorPreyParallelEnv,
    PredatorPreyVecEnv,
    make_predator_prey,
)
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV, UnknownNameError

METHODS = ("iql", "vdn", "qmix", "wqmix", "cw_qmix", "ow_qmix")


def small_env(n_agents: int = 2, n_prey: int = 1, num_envs: int = 1, **kwargs
              ) -> PredatorPreyVecEnv:
    env = PredatorPreyVecEnv(num_envs=num_envs, n_agents=n_agents, n_prey=n_prey,
                             grid_size=kwargs.pop("grid_size", 6), **kwargs)
    env.reset(seed=0)
    return env


def actions(env: PredatorPreyVecEnv, **chosen: int) -> np.ndarray:
    """Everyone stays except ``a<i>=action`` (same in every env)."""
    out = np.full((env.num_envs, env.n_agents), STAY)
    for name, action in chosen.items():
        out[:, int(name[1:])] = action
    return out


def window(obs: np.ndarray, agent: int) -> np.ndarray:
    """Agent's observation as [channel, row(y), col(x)]."""
    return obs[0, agent].reshape(3, 5, 5)


# --- spec, reset, observation ------------------------------------------------------------------
def test_default_spec_shapes_and_reset_layout():
    env = PredatorPreyVecEnv(num_envs=3)
    obs, state, avail = env.reset(seed=5)
    assert env.spec.n_agents == 8 and env.spec.n_actions == 6
    assert (env.spec.obs_dim, env.spec.state_dim, env.spec.max_episode_steps) == (75, 201, 200)
    assert obs.shape == (3, 8, 75) and obs.dtype == np.float32
    assert state.shape == (3, 201) and state.dtype == np.float32
    assert avail.shape == (3, 8, 6) and avail.dtype == bool
    assert env.max_return == 40.0
    for k in range(3):
        agents, prey = env.positions(k)
        cells = agents + prey
        assert len(set(cells)) == 16 and None not in cells
        grid = state[k, :200].reshape(2, 10, 10)
        assert grid[0].sum() == 8 and grid[1].sum() == 8
        for x, y in agents:
            assert grid[0, y, x] == 1
        assert state[k, 200] == 0.0
    # different envs of one reset start differently (seeds s + k)
    assert not np.array_equal(state[0], state[1])


def test_observation_window_channels_and_walls():
    env = small_env(n_agents=2, n_prey=1)
    obs, state, _ = env.set_positions(0, [(0, 0), (1, 0)], [(0, 2)])
    own = window(obs, 0)
    assert own[0, 2, 2] == 1  # the observer, at the centre
    assert own[0, 2, 3] == 1  # agent 1, one cell to the right
    assert own[0].sum() == 2
    assert own[1, 4, 2] == 1 and own[1].sum() == 1  # the prey, two cells down
    walls = np.zeros((5, 5))
    walls[:2, :] = 1  # rows above y = 0
    walls[:, :2] = 1  # columns left of x = 0
    np.testing.assert_array_equal(own[2], walls)
    other = window(obs, 1)
    assert other[0, 2, 1] == 1 and other[0, 2, 2] == 1
    grid = state[0, :72].reshape(2, 6, 6)
    assert grid[0, 0, 0] == 1 and grid[0, 0, 1] == 1 and grid[1, 2, 0] == 1
    assert grid.sum() == 3


# --- movement ----------------------------------------------------------------------------------
@pytest.mark.parametrize("action, expected", [(RIGHT, (3, 2)), (DOWN, (2, 3)), (LEFT, (1, 2)),
                                              (UP, (2, 1)), (STAY, (2, 2))])
def test_each_move_direction(action, expected):
    env = small_env(n_agents=1, n_prey=1)
    env.set_positions(0, [(2, 2)], [(5, 5)])
    env.step(actions(env, a0=action))
    assert env.positions(0)[0][0] == expected


@pytest.mark.parametrize("start, action", [((0, 0), LEFT), ((0, 0), UP), ((5, 5), RIGHT),
                                           ((5, 5), DOWN)])
def test_grid_bounds_block_moves(start, action):
    env = small_env(n_agents=1, n_prey=1)
    env.set_positions(0, [start], [(3, 3)])
    env.step(actions(env, a0=action))
    assert env.positions(0)[0][0] == start


def test_prey_blocks_agents():
    env = small_env(n_agents=1, n_prey=1)
    env.set_positions(0, [(2, 2)], [(3, 2)])
    env.step(actions(env, a0=RIGHT))
    assert env.positions(0)[0][0] == (2, 2)


def test_agents_block_each_other_in_index_order():
    env = small_env(n_agents=2, n_prey=1)
    far = [(5, 5)]
    # agent 0 moves first: agent 1 is still in the way
    env.set_positions(0, [(2, 2), (3, 2)], far)
    env.step(actions(env, a0=RIGHT, a1=RIGHT))
    assert env.positions(0)[0] == [(2, 2), (4, 2)]
    # agent 1 moves after agent 0 has left the cell
    env.set_positions(0, [(3, 2), (2, 2)], far)
    env.step(actions(env, a0=RIGHT, a1=RIGHT))
    assert env.positions(0)[0] == [(4, 2), (3, 2)]
    # two agents aiming at one cell: the lower index gets it
    env.set_positions(0, [(1, 1), (3, 1)], far)
    env.step(actions(env, a0=RIGHT, a1=LEFT))
    assert env.positions(0)[0] == [(2, 1), (3, 1)]
    # a swap is impossible
    env.set_positions(0, [(1, 1), (2, 1)], far)
    env.step(actions(env, a0=RIGHT, a1=LEFT))
    assert env.positions(0)[0] == [(1, 1), (2, 1)]


# --- catching ----------------------------------------------------------------------------------
def test_catch_available_only_next_to_a_live_prey():
    env = small_env(n_agents=4, n_prey=1)
    # adjacent, diagonal, two cells away, far
    _, _, avail = env.set_positions(0, [(3, 2), (3, 3), (4, 2), (0, 5)], [(2, 2)])
    assert avail[0, :, CATCH].tolist() == [True, False, False, False]
    assert avail[0, :, :CATCH].all()  # moves and stay are always available to live agents
    with pytest.raises(ValueError, match="agent 1: action 5 \\(catch\\) is not available"):
        env.step(actions(env, a1=CATCH))
    _, _, avail = env.set_positions(0, [(3, 2), (3, 3), (4, 2), (0, 5)], [None])
    assert not avail[0, :, CATCH].any()  # a caught prey is no reason to catch


def corner_trap(env: PredatorPreyVecEnv) -> None:
    """Prey 0 in the corner (0, 0), agents 0 and 1 on its two neighbours: it cannot flee."""
    agents = [(1, 0), (0, 1)] + [(5, j) for j in range(env.n_agents - 2)]
    prey = [(0, 0)] + [(3, 3 + j) for j in range(env.n_prey - 1)]
    env.set_positions(0, agents, prey)


@pytest.mark.parametrize("punishment", [-2.0, -0.5, 0.0])
def test_a_lone_catch_is_punished_and_captures_nothing(punishment):
    env = small_env(n_agents=3, n_prey=1, punishment=punishment)
    corner_trap(env)
    result = env.step(actions(env, a0=CATCH))
    assert result.reward[0] == punishment
    assert result.info["captures"][0] == 0 and result.info["punishments"][0] == 1
    agents, prey = env.positions(0)
    assert prey == [(0, 0)] and None not in agents
    assert not result.done[0]


def test_capture_needs_two_catchers_in_the_same_step():
    env = small_env(n_agents=3, n_prey=1)
    corner_trap(env)
    assert env.step(actions(env, a0=CATCH)).reward[0] == -2.0
    assert env.step(actions(env, a1=CATCH)).reward[0] == -2.0
    assert env.positions(0)[1] == [(0, 0)]  # two lone attempts in a row capture nothing
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.reward[0] == 10.0
    # the statistics count from the start of the episode: both lone attempts are in
    assert result.info["captures"][0] == 1 and result.info["punishments"][0] == 2


def test_capture_removes_the_prey_and_freezes_the_catchers():
    env = small_env(n_agents=3, n_prey=2)
    corner_trap(env)
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.reward[0] == 10.0 and not result.done[0]
    agents, prey = env.positions(0)
    assert agents[:2] == [None, None] and agents[2] is not None
    assert prey[0] is None and prey[1] is not None
    obs, avail = result.obs[0], result.avail[0]
    assert not obs[:2].any() and obs[2].any()  # frozen agents see nothing
    assert avail[:2].tolist() == [[False] * 4 + [True, False]] * 2  # only stay
    grid = result.state[0, :72].reshape(2, 6, 6)
    assert grid[0].sum() == 1 and grid[1].sum() == 1  # off the grid, prey gone
    with pytest.raises(ValueError, match="frozen agent may only stay"):
        env.step(actions(env, a0=RIGHT))
    # still frozen later in the episode, and out of the way: agent 2 may walk through (1, 0)
    env.set_positions(0, [None, None, (2, 0)], [None, (5, 5)])
    for _ in range(3):
        result = env.step(actions(env, a2=LEFT))
    assert env.positions(0)[0] == [None, None, (0, 0)]
    assert result.avail[0, :2, STAY].all() and not result.avail[0, :2, :STAY].any()


def test_three_catchers_capture_once_and_all_freeze():
    env = small_env(n_agents=4, n_prey=1)
    env.set_positions(0, [(0, 0), (2, 0), (1, 1), (5, 5)], [(1, 0)])
    result = env.step(actions(env, a0=CATCH, a1=CATCH, a2=CATCH))
    assert result.reward[0] == 10.0
    assert result.final_avail[0, :3, STAY].all() and not result.final_avail[0, :3, :STAY].any()
    assert result.terminated[0]  # the only prey is caught


def test_an_agent_joins_at_most_one_capture_per_step():
    # both agents are next to both prey; prey 0 is captured, prey 1 survives (max return 40)
    env = small_env(n_agents=2, n_prey=2)
    env.set_positions(0, [(0, 0), (1, 1)], [(1, 0), (0, 1)])
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.reward[0] == 10.0
    assert result.info["captures"][0] == 1 and result.info["punishments"][0] == 0
    assert result.terminated[0]  # every agent frozen (the statistics are the ended episode's)
    assert result.final_state[0, 36:72].sum() == 1  # prey 1 lives on


def test_two_captures_in_one_step_and_a_lone_attempt_elsewhere():
    env = small_env(n_agents=5, n_prey=3, grid_size=8)
    env.set_positions(0, [(1, 0), (0, 1), (6, 7), (7, 6), (4, 4)],
                      [(0, 0), (7, 7), (4, 5)])
    result = env.step(actions(env, a0=CATCH, a1=CATCH, a2=CATCH, a3=CATCH, a4=CATCH))
    assert result.reward[0] == 2 * 10.0 - 2.0
    assert env.positions(0)[0] == [None, None, None, None, (4, 4)]
    assert env.positions(0)[1][:2] == [None, None]


# --- prey movement -----------------------------------------------------------------------------
def test_prey_moves_to_its_only_free_neighbour():
    env = small_env(n_agents=3, n_prey=1)
    env.set_positions(0, [(1, 2), (3, 2), (2, 1)], [(2, 2)])
    env.step(actions(env))
    assert env.positions(0)[1] == [(2, 3)]


def test_prey_without_a_free_neighbour_stays():
    env = small_env(n_agents=1, n_prey=2)
    # prey 0 in the corner, hemmed in by prey 1 and the agent; prey 1 may flee afterwards
    env.set_positions(0, [(0, 1)], [(0, 0), (1, 0)])
    env.step(actions(env))
    prey = env.positions(0)[1]
    assert prey[0] == (0, 0)
    assert prey[1] in [(2, 0), (1, 1)]


def test_prey_move_after_the_agents():
    env = small_env(n_agents=2, n_prey=1)
    # agent 0 leaves (1, 0): the cornered prey's only way out opens during the same step
    env.set_positions(0, [(1, 0), (0, 1)], [(0, 0)])
    env.step(actions(env, a0=RIGHT))
    assert env.positions(0)[1] == [(1, 0)]


def test_prey_moves_uniformly_to_free_neighbours():
    env = small_env(n_agents=1, n_prey=1)
    counts: dict[tuple[int, int], int] = {}
    for _ in range(800):
        env.set_positions(0, [(5, 5)], [(2, 2)], t=0)  # t=0: no time-limit reset
        env.step(actions(env))
        cell = env.positions(0)[1][0]
        counts[cell] = counts.get(cell, 0) + 1
    assert set(counts) == {(3, 2), (2, 3), (1, 2), (2, 1)}  # always a move, never a stay
    assert all(150 <= c <= 250 for c in counts.values()), counts


# --- episode end -------------------------------------------------------------------------------
def test_time_limit_truncates_and_does_not_terminate():
    env = PredatorPreyVecEnv(num_envs=2)
    env.reset(seed=3)
    stay = np.full((2, 8), STAY)
    for t in range(1, 200):
        result = env.step(stay)
        assert not result.done.any(), t
        assert result.state[0, 200] == pytest.approx(t / 200)
    result = env.step(stay)
    assert result.truncated.all() and not result.terminated.any()
    assert result.final_state[0, 200] == 1.0
    assert result.state[0, 200] == 0.0  # the next episode has begun


def test_all_prey_caught_terminates():
    env = small_env(n_agents=3, n_prey=1)
    corner_trap(env)
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.terminated[0] and not result.truncated[0]


def test_capture_on_the_last_step_is_termination_not_truncation():
    env = small_env(n_agents=3, n_prey=1, max_episode_steps=5)
    corner_trap(env)
    env.set_positions(0, *env.positions(0), t=4)
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.terminated[0] and not result.truncated[0]


def test_autoreset_keeps_the_final_and_the_first_observation_apart():
    env = small_env(n_agents=3, n_prey=1, num_envs=2)
    corner_trap(env)  # env 0 ends this step, env 1 does not
    before_1 = env.positions(1)
    u = actions(env)
    u[0, :2] = CATCH
    result = env.step(u)
    assert result.done.tolist() == [True, False]
    # the ended episode, as it ended: two frozen agents, no prey
    assert not result.final_obs[0, :2].any() and result.final_obs[0, 2].any()
    final_grid = result.final_state[0, :72].reshape(2, 6, 6)
    assert final_grid[0].sum() == 1 and final_grid[1].sum() == 0
    assert not result.final_avail[0, :2, :STAY].any()
    # the next episode: everyone back on the grid
    grid = result.state[0, :72].reshape(2, 6, 6)
    assert grid[0].sum() == 3 and grid[1].sum() == 1
    assert result.obs[0].any(axis=1).all() and result.avail[0, :, :STAY].all()
    assert None not in env.positions(0)[0]
    # the env that did not end: equal values, separate arrays
    np.testing.assert_array_equal(result.obs[1], result.final_obs[1])
    np.testing.assert_array_equal(result.state[1], result.final_state[1])
    assert not np.shares_memory(result.obs, result.final_obs)
    assert env.positions(1)[0] == before_1[0]


# --- vectorisation and seeding -----------------------------------------------------------------
def random_actions(avail: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """Per env k, from rngs[k]: catch when available with probability 1/2, else uniform."""
    out = np.empty(avail.shape[:2], dtype=np.int64)
    for k, rng in enumerate(rngs):
        for i, mask in enumerate(avail[k]):
            if mask[CATCH] and rng.random() < 0.5:
                out[k, i] = CATCH
            else:
                out[k, i] = rng.choice(np.flatnonzero(mask))
    return out


SETTINGS = [dict(), dict(n_agents=4, n_prey=3, grid_size=5, max_episode_steps=25)]


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_vectorised_env_equals_single_envs_with_the_same_seeds(kwargs):
    K, seed, steps = 3, 11, 450
    vec = PredatorPreyVecEnv(num_envs=K, **kwargs)
    singles = [PredatorPreyVecEnv(num_envs=1, **kwargs) for _ in range(K)]
    obs, state, avail = vec.reset(seed=seed)
    for k, single in enumerate(singles):
        o, s, a = single.reset(seed=seed + k)
        np.testing.assert_array_equal(o[0], obs[k])
        np.testing.assert_array_equal(s[0], state[k])
    action_rngs = [np.random.default_rng(100 + k) for k in range(K)]
    events = dict(captures=0, punishments=0, terminated=0, truncated=0)
    for _ in range(steps):
        u = random_actions(avail, action_rngs)
        result = vec.step(u)
        for k, single in enumerate(singles):
            one = single.step(u[k:k + 1])
            for field in ("obs", "state", "avail", "reward", "terminated", "truncated",
                          "final_obs", "final_state", "final_avail"):
                np.testing.assert_array_equal(getattr(one, field)[0],
                                              getattr(result, field)[k], err_msg=field)
            for key in ("captures", "punishments"):
                assert one.info[key][0] == result.info[key][k]
        avail = result.avail
        for key in ("captures", "punishments"):  # an ended episode's totals
            events[key] += int(result.info[key][result.done].sum())
        events["terminated"] += int(result.terminated.sum())
        events["truncated"] += int(result.truncated.sum())
    # the run crossed episode boundaries and went through every rule
    assert events["truncated"] >= K and events["captures"] > 0 and events["punishments"] > 0
    if kwargs:
        assert events["terminated"] > 0


def test_serial_pettingzoo_path_equals_the_native_env():
    overrides = dict(parallels=3, env_kwargs=SETTINGS[1])
    config = xwq.get_configs(method="qmix", env="predator_prey", env_id="punishment",
                             overrides=overrides)
    native = xwq.make_envs(config)
    serial = xwq.make_envs(xwq.get_configs(
        method="qmix", env="predator_prey", env_id="punishment",
        overrides={**overrides, "vectorize": "serial"}))
    assert isinstance(native, PredatorPreyVecEnv)
    assert isinstance(serial, xwq.environment.SerialVecEnv)
    assert native.spec == serial.spec
    first_native, first_serial = native.reset(seed=4), serial.reset(seed=4)
    for a, b in zip(first_native, first_serial):
        np.testing.assert_array_equal(a, b)
    avail, rngs, ends = first_native[2], [np.random.default_rng(k) for k in range(3)], 0
    for _ in range(200):
        u = random_actions(avail, rngs)
        x, y = native.step(u), serial.step(u)
        for field in ("obs", "state", "avail", "reward", "terminated", "truncated",
                      "final_obs", "final_state", "final_avail"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)
        avail, ends = x.avail, ends + int(x.done.sum())
    assert ends > 3


def test_seeds_reproduce():
    a, b = PredatorPreyVecEnv(num_envs=2), PredatorPreyVecEnv(num_envs=2)
    np.testing.assert_array_equal(a.reset(seed=7)[1], b.reset(seed=7)[1])
    assert not np.array_equal(a.reset(seed=7)[1], b.reset(seed=8)[1])


def test_step_before_reset_and_bad_actions_are_errors():
    env = PredatorPreyVecEnv(num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.full((2, 8), STAY))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.full((2, 7), STAY))
    with pytest.raises(ValueError, match="out of range"):
        env.step(np.full((2, 8), 6))


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(UnknownNameError, match="punishment"):
        PredatorPreyVecEnv("punishmnet")
    with pytest.raises(ValueError, match="do not fit"):
        PredatorPreyVecEnv(n_agents=10, n_prey=10, grid_size=4)
    env = small_env()
    with pytest.raises(ValueError, match="both at"):
        env.set_positions(0, [(1, 1), (1, 1)], [(3, 3)])
    with pytest.raises(ValueError, match="outside"):
        env.set_positions(0, [(1, 1), (6, 0)], [(3, 3)])


# --- rendering, PettingZoo, registration, configs ----------------------------------------------
def test_render_draws_agents_prey_and_frozen_agents():
    env = small_env(n_agents=3, n_prey=2)
    corner_trap(env)
    env.step(actions(env, a0=CATCH, a1=CATCH))
    env.set_positions(0, [None, None, (4, 4)], [None, (2, 3)])
    frame = env.render(0)
    assert frame.shape == (6 * 24 + 1, 6 * 24 + 1, 3) and frame.dtype == np.uint8

    def centre(x, y):
        return frame[y * 24 + 12, x * 24 + 12].tolist()

    assert centre(4, 4) == [40, 90, 220]  # live agent
    assert centre(2, 3) == [220, 50, 50]  # prey
    assert centre(1, 0) == [215, 215, 215]  # where agent 0 froze
    assert centre(5, 5) == [255, 255, 255]  # empty


def test_parallel_env_passes_the_pettingzoo_api_test():
    parallel_api_test(PredatorPreyParallelEnv(), num_cycles=250)
    parallel_api_test(PredatorPreyParallelEnv(n_agents=4, n_prey=2, grid_size=4,
                                              max_episode_steps=50), num_cycles=250)


def test_parallel_env_keeps_frozen_agents_with_a_stay_mask():
    env = make_predator_prey("punishment", n_agents=3, n_prey=2, grid_size=6)
    env.reset(seed=0)
    corner_trap(env.game)
    obs, rewards, terminated, truncated, infos = env.step(
        {"agent_0": CATCH, "agent_1": CATCH, "agent_2": STAY})
    assert rewards == dict.fromkeys(env.possible_agents, 10.0)
    assert env.agents == env.possible_agents and not any(terminated.values())
    assert infos["agent_0"]["action_mask"].tolist() == [0, 0, 0, 0, 1, 0]
    assert not obs["agent_0"].any() and obs["agent_2"].any()
    # an unavailable action (a frozen agent moving) is played as stay
    env.step({"agent_0": RIGHT, "agent_1": STAY, "agent_2": STAY})
    assert env.game.positions(0)[0][:2] == [None, None]


def test_registered_and_built_from_the_packaged_configs():
    assert REGISTRY_NATIVE_ENV["predator_prey"] is PredatorPreyVecEnv
    assert REGISTRY_ENV["predator_prey"] is make_predator_prey
    config = xwq.get_configs(method="qmix", env="predator_prey", env_id="punishment")
    envs = xwq.make_envs(config)
    assert isinstance(envs, PredatorPreyVecEnv)
    assert envs.num_envs == config.parallels
    assert envs.spec == xwq.environment.EnvSpec(tuple(f"agent_{i}" for i in range(8)), 75, 201,
                                                6, 200)
    assert envs.punishment == -2.0
    custom = xwq.make_envs(xwq.get_configs(method="qmix", env="predator_prey",
                                           env_id="punishment",
                                           overrides={"env_kwargs": {"punishment": -0.5}}))
    assert custom.punishment == -0.5
    shorter = xwq.make_envs(xwq.get_configs(method="qmix", env="predator_prey",
                                            env_id="punishment",
                                            overrides={"max_episode_steps": 50}))
    assert shorter.spec.max_episode_steps == 50


@pytest.mark.parametrize("method", METHODS)
def test_packaged_predator_prey_configs(method):
    config = xwq.get_configs(method=method, env="predator_prey", env_id="punishment")
    assert (config.start_greedy, config.end_greedy, config.decay_step_greedy) == (1.0, 0.05,
                                                                                   50000)
    assert config.running_steps == 1_000_000 and config.eval_interval == 20000
    # one update per (200-step) episode, whatever `parallels` is
    assert config.training_frequency == 200
    assert config.env_kwargs["punishment"] == -2.0
