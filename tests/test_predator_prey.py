"""Predator-prey with punishment: every rule on hand-placed grids (the authors' rules by default,
xwq's earlier ones as options), then a plain per-entity transcription of the rules, vectorisation,
seeding, autoreset, the PettingZoo face and the config path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import xwq
from xwq.environment.envs.predator_prey import (
    CATCH,
    DOWN,
    EARLIER_XWQ_RULES,
    LEFT,
    MOVES,
    RIGHT,
    STAY,
    UP,
    PredatorPreyParallelEnv,
    PredatorPreyVecEnv,
    make_predator_prey,
)
from xwq.errors import ConfigError
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
    """Agent's observation as [channel, row(y), col(x)] (flattened [row, col, channel])."""
    return obs[0, agent].reshape(5, 5, 3).transpose(2, 0, 1)


def grid_of(state: np.ndarray, size: int = 6) -> np.ndarray:
    """An env's state as [channel, row(y), col(x)] (flattened [row, col, channel])."""
    return state.reshape(size, size, 3).transpose(2, 0, 1)


def outcomes(env: PredatorPreyVecEnv, agents_xy: list, prey_xy: list, chosen: np.ndarray,
             trials: int = 300) -> dict:
    """How often each (positions after the step, reward) comes out of one hand-placed step."""
    counts: dict = {}
    for _ in range(trials):
        env.set_positions(0, agents_xy, prey_xy, t=0)  # t=0: no time-limit reset
        result = env.step(chosen)
        key = (tuple(map(tuple, (c for c in env.positions(0)))), float(result.reward[0]))
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- spec, reset, observation, state ----------------------------------------------------------
def test_default_spec_shapes_and_reset_layout():
    env = PredatorPreyVecEnv(num_envs=3)
    obs, state, avail = env.reset(seed=5)
    assert env.spec.n_agents == 8 and env.spec.n_actions == 6
    # the authors' sizes: 3 × 5 × 5 observation, 3 × 10 × 10 state without time
    assert (env.spec.obs_dim, env.spec.state_dim, env.spec.max_episode_steps) == (75, 300, 200)
    assert obs.shape == (3, 8, 75) and obs.dtype == np.float32
    assert state.shape == (3, 300) and state.dtype == np.float32
    assert avail.shape == (3, 8, 6) and avail.dtype == bool
    assert env.max_return == 40.0
    for k in range(3):
        agents, prey = env.positions(k)
        cells = agents + prey
        assert len(set(cells)) == 16 and None not in cells
        grid = grid_of(state[k], 10)
        assert grid[0].sum() == 8 and grid[1].sum() == 8 and grid[2].sum() == 0
        for x, y in agents:
            assert grid[0, y, x] == 1
        for x, y in prey:
            assert grid[1, y, x] == 1
    # different envs of one reset start differently (seeds s + k)
    assert not np.array_equal(state[0], state[1])


def test_state_is_the_grid_flattened_row_column_channel_without_time():
    env = small_env(n_agents=2, n_prey=1)
    _, state, _ = env.set_positions(0, [(3, 1), (0, 0)], [(5, 4)], t=7)
    G = 6
    expected = np.zeros(3 * G * G, dtype=np.float32)
    expected[(1 * G + 3) * 3 + 0] = 1  # agent at x=3, y=1: channel 0
    expected[(0 * G + 0) * 3 + 0] = 1
    expected[(4 * G + 5) * 3 + 1] = 1  # prey at x=5, y=4: channel 1
    np.testing.assert_array_equal(state[0], expected)  # no third-channel entries, no t/T


def test_observation_window_channels_and_edge():
    env = small_env(n_agents=2, n_prey=1)
    obs, _, _ = env.set_positions(0, [(0, 0), (1, 0)], [(0, 2)])
    flat = obs[0, 0]
    assert flat[(2 * 5 + 2) * 3 + 0] == 1  # the observer, at the centre: [row, col, channel]
    assert flat[(2 * 5 + 3) * 3 + 0] == 1  # agent 1, one cell to the right
    assert flat[(4 * 5 + 2) * 3 + 1] == 1  # the prey, two cells down
    assert flat.sum() == 3
    own = window(obs, 0)
    assert own[0].sum() == 2 and own[1].sum() == 1
    assert not own[2].any()  # the third channel holds hares, and there are none
    other = window(obs, 1)
    assert other[0, 2, 1] == 1 and other[0, 2, 2] == 1 and other[1, 4, 1] == 1


def test_entities_outside_the_window_are_not_seen():
    env = small_env(n_agents=2, n_prey=2)
    # agent 1 three columns away, prey 0 diagonal at distance 2 (seen), prey 1 three rows away
    obs, _, _ = env.set_positions(0, [(1, 1), (4, 1)], [(3, 3), (1, 4)])
    own = window(obs, 0)
    assert own[0].sum() == 1 and own[1].sum() == 1 and own[1, 4, 4] == 1


def test_earlier_layout_outside_channel_channel_major_and_time():
    env = small_env(n_agents=2, n_prey=1, third_channel="outside", channels_last=False,
                    state_time=True)
    assert (env.spec.obs_dim, env.spec.state_dim) == (75, 2 * 36 + 1)
    obs, state, _ = env.set_positions(0, [(0, 0), (1, 0)], [(0, 2)], t=3)
    own = obs[0, 0].reshape(3, 5, 5)
    assert own[0, 2, 2] == 1 and own[0, 2, 3] == 1 and own[1, 4, 2] == 1
    walls = np.zeros((5, 5))
    walls[:2, :] = 1  # rows above y = 0
    walls[:, :2] = 1  # columns left of x = 0
    np.testing.assert_array_equal(own[2], walls)
    grid = state[0, :72].reshape(2, 6, 6)
    assert grid[0, 0, 0] == 1 and grid[0, 0, 1] == 1 and grid[1, 2, 0] == 1
    assert grid.sum() == 3
    assert state[0, 72] == pytest.approx(3 / 200)
    # each option alone
    assert PredatorPreyVecEnv(third_channel="outside").spec.state_dim == 200
    assert PredatorPreyVecEnv(state_time=True).spec.state_dim == 301


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
def test_moves_into_the_grid_edge_are_unavailable(start, action):
    env = small_env(n_agents=1, n_prey=1)
    _, _, avail = env.set_positions(0, [start], [(3, 3)])
    assert not avail[0, 0, action]
    assert avail[0, 0, :STAY].sum() == 2 and avail[0, 0, STAY]  # the two inward moves, stay
    with pytest.raises(ValueError, match=f"action {action} .* is not available"):
        env.step(actions(env, a0=action))
    # mask_walls=False (xwq's earlier rule): available, and played as a stay
    env = small_env(n_agents=1, n_prey=1, mask_walls=False)
    _, _, avail = env.set_positions(0, [start], [(3, 3)])
    assert avail[0, 0, :STAY].all()
    env.step(actions(env, a0=action))
    assert env.positions(0)[0][0] == start


def test_occupied_cells_stay_available_and_block_the_move():
    env = small_env(n_agents=1, n_prey=1)
    _, _, avail = env.set_positions(0, [(2, 2)], [(3, 2)])
    assert avail[0, 0, RIGHT]  # the authors mask only the grid edge
    env.step(actions(env, a0=RIGHT))
    assert env.positions(0)[0][0] == (2, 2)


def test_agents_move_in_a_random_order_each_step():
    env = small_env(n_agents=2, n_prey=1)
    far = [(5, 5)]
    # agent 1 stands where agent 0 wants to go: agent 0 gets there only if agent 1 moves first
    counts = outcomes(env, [(2, 2), (3, 2)], far,
                      actions(env, a0=RIGHT, a1=RIGHT))
    agent_cells: dict = {}
    for key, n in counts.items():  # over the prey's flights
        agent_cells[key[0][0]] = agent_cells.get(key[0][0], 0) + n
    assert set(agent_cells) == {((2, 2), (4, 2)), ((3, 2), (4, 2))}
    assert all(100 <= n <= 200 for n in agent_cells.values()), agent_cells
    # two agents aiming at one cell: either may get it
    counts = outcomes(env, [(1, 1), (3, 1)], far,
                      actions(env, a0=RIGHT, a1=LEFT))
    assert {key[0][0] for key in counts} == {((2, 1), (3, 1)), ((1, 1), (2, 1))}
    # a swap is impossible in any order
    counts = outcomes(env, [(1, 1), (2, 1)], far,
                      actions(env, a0=RIGHT, a1=LEFT), trials=30)
    assert {key[0][0] for key in counts} == {((1, 1), (2, 1))}


def test_agents_block_each_other_in_index_order():
    env = small_env(n_agents=2, n_prey=1, order="index")
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
    assert avail[0, :3, :CATCH].all()  # inside the grid, moves and stay are available
    assert avail[0, 3].tolist() == [True, False, False, True, True, False]  # bottom-left corner
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
    grid = grid_of(result.state[0])
    assert grid[0].sum() == 1 and grid[1].sum() == 1  # off the grid, prey gone
    assert grid[0, 0, 1] == 0 and grid[0, 0, 1] == 0 and grid[1, 0, 0] == 0
    with pytest.raises(ValueError, match="frozen agent may only stay"):
        env.step(actions(env, a0=RIGHT))
    # still frozen later in the episode, and out of the way: agent 2 may walk through (1, 0)
    env.set_positions(0, [None, None, (2, 0)], [None, (5, 5)])
    for _ in range(2):
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
    assert grid_of(result.final_state[0])[1].sum() == 1  # the other prey lives on


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
    env = small_env(n_agents=1, n_prey=2, order="index")
    # prey 0 in the corner, hemmed in by prey 1 and the agent; prey 1 may flee afterwards
    env.set_positions(0, [(0, 1)], [(0, 0), (1, 0)])
    env.step(actions(env))
    prey = env.positions(0)[1]
    assert prey[0] == (0, 0)
    assert prey[1] in [(2, 0), (1, 1)]


def test_prey_flee_one_after_another_in_a_random_order():
    env = small_env(n_agents=1, n_prey=2)
    # prey 0 hemmed in as above: it escapes into (1, 0) only when prey 1 has gone first
    counts = outcomes(env, [(0, 1)], [(0, 0), (1, 0)], actions(env))
    first: dict = {}
    for ((_, prey), _), n in counts.items():
        first[prey[0]] = first.get(prey[0], 0) + n
    assert set(first) == {(0, 0), (1, 0)}
    assert all(100 <= n <= 200 for n in first.values()), first


# --- one prey after another: capture check, then flight -----------------------------------------
def test_a_prey_checked_before_a_capture_does_not_see_the_cells_it_frees():
    # prey 1 at (2, 0) is boxed in by agents 0, 2 and 3; agent 0 freezes when prey 0 is caught
    agents = [(1, 0), (0, 1), (3, 0), (2, 1)]
    prey = [(0, 0), (2, 0)]
    chosen = np.array([[CATCH, CATCH, STAY, STAY]])
    env = small_env(n_agents=4, n_prey=2)
    counts = outcomes(env, agents, prey, chosen)
    where: dict = {}
    for ((_, after), reward), n in counts.items():
        assert after[0] is None
        where[after[1], reward] = where.get((after[1], reward), 0) + n
    # prey 1 first: agent 0 catches it alone (-2) and it cannot move; prey 0 first: agent 0
    # freezes (no punishment), and prey 1 escapes through its cell
    assert set(where) == {((2, 0), 8.0), ((1, 0), 10.0)}
    assert all(100 <= n <= 200 for n in where.values()), where
    # order "index": every capture comes before every flight
    env = small_env(n_agents=4, n_prey=2, order="index")
    counts = outcomes(env, agents, prey, chosen, trials=20)
    assert set((key[0][1][1], key[1]) for key in counts) == {((1, 0), 10.0)}


def test_an_agent_frozen_by_an_earlier_prey_no_longer_catches():
    # agents 0 and 1 surround prey A at (0, 0); agent 1 also touches prey B at (0, 2)
    agents = [(1, 0), (0, 1)]
    chosen = np.array([[CATCH, CATCH]])
    env = small_env(n_agents=2, n_prey=2)
    counts = outcomes(env, agents, [(0, 0), (0, 2)], chosen)
    rewards: dict = {}
    for (_, reward), n in counts.items():
        rewards[reward] = rewards.get(reward, 0) + n
    # A first: captured, both freeze, B has no catcher (10). B first: agent 1 alone (-2), then A.
    assert set(rewards) == {10.0, 8.0}
    assert all(100 <= n <= 200 for n in rewards.values()), rewards
    for prey, reward in (([(0, 0), (0, 2)], 10.0), ([(0, 2), (0, 0)], 8.0)):
        env = small_env(n_agents=2, n_prey=2, order="index")
        env.set_positions(0, agents, prey)
        assert env.step(chosen).reward[0] == reward


def test_a_lone_catcher_next_to_two_prey_is_punished_twice():
    env = small_env(n_agents=2, n_prey=2)
    env.set_positions(0, [(1, 1), (5, 5)], [(0, 1), (1, 0)])
    result = env.step(actions(env, a0=CATCH))
    assert result.reward[0] == -4.0 and result.info["punishments"][0] == 2
    assert None not in env.positions(0)[1]


def test_a_diagonal_agent_is_no_catcher():
    env = small_env(n_agents=2, n_prey=2)
    # agent 1 may catch (prey 1 is below it) but is diagonal to prey 0
    _, _, avail = env.set_positions(0, [(2, 1), (3, 3)], [(2, 2), (3, 4)])
    assert avail[0, :, CATCH].all()
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.reward[0] == -4.0 and result.info["captures"][0] == 0


def test_frozen_agents_and_caught_prey_vanish_from_other_observations():
    env = small_env(n_agents=3, n_prey=1)
    obs, _, _ = env.set_positions(0, [(1, 0), (0, 1), (2, 1)], [(0, 0)])
    seen = window(obs, 2)  # agent 2 at (2, 1) sees (1, 0), (0, 1) and (0, 0)
    assert seen[0].sum() == 3 and seen[1, 1, 0] == 1
    result = env.step(actions(env, a0=CATCH, a1=CATCH))
    assert result.terminated[0]  # the only prey: the episode as it ended is in final_obs
    seen = window(result.final_obs, 2)
    assert seen[0].sum() == 1 and seen[0, 2, 2] == 1 and not seen[1].any()


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
    result = env.step(stay)
    assert result.truncated.all() and not result.terminated.any()
    assert None not in env.positions(0)[0]  # the next episode has begun


def test_state_time_counts_the_elapsed_fraction_of_the_limit():
    env = PredatorPreyVecEnv(num_envs=2, state_time=True)
    env.reset(seed=3)
    stay = np.full((2, 8), STAY)
    for t in range(1, 200):
        result = env.step(stay)
        assert result.state[0, 300] == pytest.approx(t / 200)
    result = env.step(stay)
    assert result.truncated.all()
    assert result.final_state[0, 300] == 1.0
    assert result.state[0, 300] == 0.0  # the next episode has begun


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
    final_grid = grid_of(result.final_state[0])
    assert final_grid[0].sum() == 1 and final_grid[1].sum() == 0
    assert not result.final_avail[0, :2, :STAY].any()
    # the next episode: everyone back on the grid
    grid = grid_of(result.state[0])
    assert grid[0].sum() == 3 and grid[1].sum() == 1
    assert result.obs[0].any(axis=1).all() and result.avail[0, :, STAY].all()
    assert result.avail[0, :, :STAY].any(axis=1).all()  # every agent may move again
    assert None not in env.positions(0)[0]
    # the env that did not end: equal values, separate arrays
    np.testing.assert_array_equal(result.obs[1], result.final_obs[1])
    np.testing.assert_array_equal(result.state[1], result.final_state[1])
    assert not np.shares_memory(result.obs, result.final_obs)
    assert env.positions(1)[0] == before_1[0]


# --- the rules written out per entity -----------------------------------------------------------
def reference_step(agents: list, prey: list, chosen: np.ndarray, uniforms: np.ndarray,
                   size: int, capture: float = 10.0, punishment: float = -2.0
                   ) -> tuple[list, list, float]:
    """The authors' step, one entity at a time, from the env's own uniforms for this step
    (agent order, prey order, flight choices); positions as :meth:`positions` gives them."""
    agents, prey = list(agents), list(prey)
    n, m = len(agents), len(prey)
    taken = {cell for cell in agents + prey if cell is not None}

    def inside(cell):
        return 0 <= cell[0] < size and 0 <= cell[1] < size

    for i in np.argsort(uniforms[:n]):
        if agents[i] is None or chosen[i] >= STAY:
            continue
        target = (agents[i][0] + MOVES[chosen[i]][0], agents[i][1] + MOVES[chosen[i]][1])
        if inside(target) and target not in taken:
            taken.remove(agents[i])
            taken.add(target)
            agents[i] = target
    reward = 0.0
    for slot, p in enumerate(np.argsort(uniforms[n:n + m])):
        if prey[p] is None:
            continue
        x, y = prey[p]
        catchers = [i for i, cell in enumerate(agents) if cell is not None
                    and chosen[i] == CATCH and abs(cell[0] - x) + abs(cell[1] - y) == 1]
        if len(catchers) >= 2:
            reward += capture
            taken.remove(prey[p])
            prey[p] = None
            for i in catchers:
                taken.remove(agents[i])
                agents[i] = None
            continue
        if catchers:
            reward += punishment
        free = [c for c in ((x + 1, y), (x, y + 1), (x - 1, y), (x, y - 1))
                if inside(c) and c not in taken]
        if free:
            cell = free[min(int(uniforms[n + m + slot] * len(free)), len(free) - 1)]
            taken.remove(prey[p])
            taken.add(cell)
            prey[p] = cell
    return agents, prey, reward


@pytest.mark.parametrize("kwargs", [dict(), dict(n_agents=4, n_prey=3, grid_size=5)])
def test_the_vectorised_step_equals_the_rules_written_out(kwargs):
    K = 3
    env = PredatorPreyVecEnv(num_envs=K, max_episode_steps=10_000, **kwargs)
    _, _, avail = env.reset(seed=21)
    n, m, G = env.n_agents, env.n_prey, env.grid_size
    rngs = [np.random.default_rng(50 + k) for k in range(K)]
    captures = punishments = 0
    for _ in range(300):
        chosen = random_actions(avail, rngs)
        expected = []
        for k in range(K):
            uniforms = copy.deepcopy(env.rngs[k]).random(n + 2 * m)
            expected.append(reference_step(*env.positions(k), chosen[k], uniforms, G))
        result = env.step(chosen)
        for k in range(K):
            agents, prey, reward = expected[k]
            assert result.reward[k] == reward
            if not result.done[k]:
                assert env.positions(k) == (agents, prey)
            captures += reward >= 10
            punishments += reward < 0
        avail = result.avail
    assert captures > 0 and punishments > 0


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


SETTINGS = [dict(), dict(n_agents=4, n_prey=3, grid_size=5, max_episode_steps=25),
            dict(EARLIER_XWQ_RULES, n_agents=4, n_prey=3, grid_size=5, max_episode_steps=25)]


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
    with pytest.raises(ConfigError, match=r"order must be one of \['random', 'index'\]"):
        PredatorPreyVecEnv(order="sorted")
    with pytest.raises(ConfigError, match="third_channel must be one of"):
        PredatorPreyVecEnv(third_channel="walls")
    with pytest.raises(ConfigError, match="mask_walls must be true or false, got 'yes'"):
        PredatorPreyVecEnv(mask_walls="yes")
    with pytest.raises(ConfigError, match="takes no 'odrer'"):
        make_predator_prey("punishment", odrer="index")
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
    assert envs.spec == xwq.environment.EnvSpec(tuple(f"agent_{i}" for i in range(8)), 75, 300,
                                                6, 200, obs_low=0, obs_high=1, state_low=0,
                                                state_high=1)
    assert (envs.order, envs.mask_walls, envs.third_channel, envs.channels_last,
            envs.state_time) == ("random", True, "hare", True, False)
    earlier = xwq.make_envs(xwq.get_configs(method="qmix", env="predator_prey",
                                            env_id="punishment",
                                            overrides={"env_kwargs": EARLIER_XWQ_RULES}))
    assert earlier.spec.state_dim == 201 and earlier.order == "index"
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
    # the authors' run (oxwhirl/wqmix pred_prey_punish.yaml, algs/*.yaml, default.yaml)
    assert config.running_steps == 1_000_000 and config.eval_interval == 10000
    assert config.test_episode == 16
    assert (config.batch_size, config.buffer_size) == (32, 5000)
    assert (config.sync_frequency, config.sync_unit) == (200, "episodes")
    # one update per episode ended, whatever `parallels` is and however long the episode
    assert (config.training_frequency, config.training_unit) == (1, "episodes")
    assert config.env_kwargs == {"punishment": -2.0}  # the authors' rules are the env's defaults
    if method in ("cw_qmix", "ow_qmix", "wqmix"):
        assert config.alpha == 0.1


def test_paper_reproduction_names_the_env_rules_it_ran(benchmark_script):
    paper = benchmark_script("reproduce_paper")
    assert paper.env_rules({}).startswith("the WQMIX authors'")
    assert paper.env_rules({"env_kwargs": {"punishment": -0.5}}).endswith("punishment -0.5")
    earlier = paper.env_rules({"env_kwargs": EARLIER_XWQ_RULES})
    assert "except" in earlier and "'order': 'index'" in earlier
