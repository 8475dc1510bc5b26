"""Predator-prey with punishment (WQMIX paper): env ``"predator_prey"``, env_id ``"punishment"``.

Eight agents hunt eight prey on a bounded 10×10 grid. A prey is caught only when at least two
agents next to it choose *catch* in the same step; a lone attempt costs the team a punishment
``p`` (default -2, the paper also uses 0 and -0.5). The punishment makes the task hard for
monotonic value factorisations: a single agent's value of *catch* depends on its partner.

The default rules are those the WQMIX authors ran: ``src/envs/stag_hunt/stag_hunt.py`` with
``src/config/envs/pred_prey_punish.yaml`` in oxwhirl/wqmix (stag hunt with 8 agents, 8 stags,
0 hares, ``capture_action: True``, ``capture_action_conditions: [2, 1]``,
``miscapture_punishment: -2``, ``agent_obs: [2, 2]``, ``remove_frozen: True``,
``observe_walls: False``, ``episode_limit: 200``). This is an own numpy implementation of those
facts, vectorised over K envs, not their code. Where xwq's design notes (DESIGN.md §3) leave a
rule open or xwq used to differ — step order, the third channel, the state's layout and time
feature, moves into walls — the authors' rule is the default and xwq's earlier rule an option:

============================  =====================================  ============================
rule                          authors (default)                      xwq before (env_kwargs)
============================  =====================================  ============================
order within a step           agents move in a random order, then    agent index order, then all
                              prey one by one in a random order,     captures in prey index
                              each prey's capture check followed by  order, then all prey moves
                              its move (``order: random``)           (``order: index``)
moves into the grid edge      unavailable (masked)                   available, act as stay
                              (``mask_walls: true``)                 (``mask_walls: false``)
observation channels          agents, prey, hares (always 0: the     agents, prey, outside-the-
                              paper's config has no hares; cells     grid (``third_channel:
                              beyond the edge are 0)                 outside``)
                              (``third_channel: hare``)
flattening of obs and state   cell-major, channels last:             channel-major
                              ``[row, col, channel]``                (``channels_last: false``)
                              (``channels_last: true``)
state                         the grid's 3 channels, no time:        2 channels + ``t/T``: 201
                              300 values (``state_time: false``)     (``state_time: true``)
============================  =====================================  ============================

``{order: index, mask_walls: false, third_channel: outside, channels_last: false,
state_time: true}`` (:data:`EARLIER_XWQ_RULES`) is xwq's earlier env exactly (same trajectories
for the same seeds). Every other rule below was already the authors' (world, actions, blocking,
catch availability, capture by ≥ 2 adjacent catchers, punishment per prey, freezing, prey
flight, episode end, rewards, reset); ``benchmarks/results/paper/README.md`` has the full table.

One step of one env (all K envs of a :class:`PredatorPreyVecEnv` at once):

1. **Agents move, one after another** in a fresh uniformly random order each step (``order:
   index``: agent 0 first). Actions: 0 right, 1 down, 2 left, 3 up, 4 stay, 5 catch (the agent
   stays). A move succeeds when the target cell is inside the grid and holds no live agent and no
   live prey *at that moment*: an agent sees where the agents before it in the order already are
   this step, so it may enter a cell an earlier agent just left but is blocked by a later agent
   that has not moved yet. A failed move is a stay. Frozen agents do not move.
2. **Prey, one after another** in a fresh uniformly random order each step. For each live prey:

   a. *Capture check.* Its catchers are the live (not frozen) agents on one of its 4 adjacent
      cells (no diagonals) that chose catch. Two or more catchers: the prey is captured (team
      reward ``+capture_reward``) and removed, and its catchers are **frozen** for the rest of
      the episode (removed from the grid, observation all zeros, only *stay* available). Exactly
      one catcher: the team receives ``punishment``. An agent frozen by an earlier prey this step
      no longer counts, so an agent joins at most one capture; an agent trying alone next to two
      prey is punished twice.
   b. *Flight.* A prey that was not captured moves to a uniformly random free adjacent cell
      (inside the grid, no live agent or prey at that moment), or stays when none is free; it
      never rests by choice (``p_stags_rest: 0``).

   With ``order: index`` all captures come first (prey index order), then all flights.
   Each env draws its random numbers from its own generator every step, whatever happens
   (``n_agents + 2·n_prey`` uniforms; ``order: index``: ``n_prey``), so an env's random stream
   does not depend on how many envs run beside it.
3. The episode **terminates** when every prey is caught or every agent is frozen. Otherwise it is
   **truncated** (a time limit, not a terminal state) after ``max_episode_steps`` = 200 steps.
   (The authors' runner marks a step that reaches the limit as a time limit even when it also
   caught the last prey; here termination wins.)

No time penalty and no collision reward (``reward_time: 0``, ``reward_collision: 0``).

Maximum return 40, reconciled with "+10 per capture" and 8 prey: every capture freezes at least
two agents and an agent counts towards at most one capture, so 8 agents make at most
``n_agents // 2 = 4`` captures; 4 × 10 = 40, as in the paper. In general ``max_return =
capture_reward × min(n_prey, n_agents // 2)`` (:attr:`PredatorPreyVecEnv.max_return`). The
reward is already a team reward (one scalar per env), so the ``team_reward`` config key does not
apply to the native env. Through the PettingZoo face every agent receives that team reward, so
``vectorize: serial`` with ``team_reward: mean`` gives the same numbers (``sum`` would multiply
them by ``n_agents``).

Coordinates are ``(x, y)``: x the column (right = +x), y the row (down = +y), origin top-left.
Positions at reset are drawn uniformly without overlap (``rng.choice`` over the cells; the
authors place agents then prey by rejection sampling, the same distribution).

Observation of agent i (``obs_dim = 3 × (2·view+1)²`` = 75): the ``(2·view+1)²`` window centred on
the agent, channels ``[agents, prey, third]``: 1 where a live agent stands (the observer included
at the centre), 1 where a live prey stands, and the third channel 0 (hares; ``third_channel:
outside``: 1 for window cells beyond the grid edge). Flattened ``[row, col, channel]`` (row = y,
column = x; ``channels_last: false``: ``[channel, row, col]``). A frozen agent's observation is
all zeros.

State (``state_dim = 3 × grid_size²`` = 300): the whole grid, channels ``[agents, prey, hares]``
flattened ``[row, col, channel]``. ``third_channel: outside`` drops the third channel (2 ×
grid_size²), ``channels_last: false`` flattens ``[channel, row, col]``, and ``state_time: true``
appends the elapsed fraction of the time limit ``t / T``.

Available actions: a live agent may stay, move towards any cell inside the grid (an occupied cell
too: the move then fails; ``mask_walls: false``: towards the edge too, as a stay), and catch only
with a live prey on one of its 4 adjacent cells. A frozen agent may only stay. The native env
raises ``ValueError`` for an unavailable action (a masking bug upstream); the PettingZoo face
treats it as stay, since PettingZoo's API test samples actions without masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from xwq.environment.interfaces import (
    EnvSpec,
    NativeVecEnv,
    StepResult,
    check_env_kwargs,
    per_env_seeds,
)
from xwq.errors import ConfigError
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV, require_choice

ENV_IDS = ("punishment",)
RIGHT, DOWN, LEFT, UP, STAY, CATCH = range(6)
N_ACTIONS = 6
ACTION_NAMES = ("right", "down", "left", "up", "stay", "catch")
# (dx, dy) of right, down, left, up: also the 4 neighbours of a cell.
DIRECTIONS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)
# Displacement per action; stay and catch do not move.
MOVES = np.concatenate([DIRECTIONS, np.zeros((2, 2), dtype=np.int64)])
ORDERS = ("random", "index")
THIRD_CHANNELS = ("hare", "outside")
#: env_kwargs that give xwq's rules before it followed the authors' (module docstring)
EARLIER_XWQ_RULES = {"order": "index", "mask_walls": False, "third_channel": "outside",
                     "channels_last": False, "state_time": True}

Position = Sequence[int] | None


def _check_env_id(env_id: str) -> None:
    require_choice("env_id", env_id, ENV_IDS, where=" for env 'predator_prey'",
                   hint="(set the punishment with env_kwargs: {punishment: -0.5})")


@REGISTRY_NATIVE_ENV.register("predator_prey")
class PredatorPreyVecEnv(NativeVecEnv):
    """K predator-prey games as numpy arrays (rules in the module docstring).

    Shapes: obs ``[K, n_agents, 75]``, state ``[K, 300]`` (201 with ``third_channel='outside'``
    and ``state_time=True``), avail ``[K, n_agents, 6]``, actions ``[K, n_agents]`` int,
    reward/terminated/truncated ``[K]``; ``info`` holds the episode statistics ``captures`` and
    ``punishments`` (lone catch attempts), ``[K]`` float64, counted from the start of each env's
    episode up to the step just taken (for an env that ended, its whole episode's).

    Args:
        env_id: ``"punishment"``.
        num_envs: K.
        team_reward: accepted for the common constructor and ignored (the reward is a team
            reward already).
        n_agents, n_prey, grid_size: 8, 8, 10.
        view: observation radius; the window is ``(2·view+1)²`` cells (5×5 for 2).
        capture_reward: team reward per captured prey (10).
        punishment: team reward of each lone catch attempt (-2.0; the paper also uses 0, -0.5).
        max_episode_steps: time limit (200); reaching it truncates the episode.
        order: ``"random"`` (the authors: a fresh random order of agents and of prey every
            step, each prey's capture check then its move) or ``"index"`` (index order, all
            captures before all prey moves).
        mask_walls: moves towards the grid edge are unavailable (the authors) rather than stays.
        third_channel: ``"hare"`` (the authors' third entity type, always empty here) or
            ``"outside"`` (1 beyond the grid edge; the state then has 2 channels).
        channels_last: flatten observation and state ``[row, col, channel]`` (the authors) or
            ``[channel, row, col]``.
        state_time: append ``t / max_episode_steps`` to the state.

    Tests and demonstrations can place everything by hand with :meth:`set_positions`.
    """

    env_ids = ENV_IDS

    def __init__(self, env_id: str = "punishment", num_envs: int = 1, team_reward: str = "mean",
                 *, n_agents: int = 8, n_prey: int = 8, grid_size: int = 10, view: int = 2,
                 capture_reward: float = 10.0, punishment: float = -2.0,
                 max_episode_steps: int = 200, order: str = "random", mask_walls: bool = True,
                 third_channel: str = "hare", channels_last: bool = True,
                 state_time: bool = False) -> None:
        _check_env_id(env_id)
        for name, value, low in (("num_envs", num_envs, 1), ("n_agents", n_agents, 1),
                                 ("n_prey", n_prey, 1), ("grid_size", grid_size, 1),
                                 ("view", view, 0), ("max_episode_steps", max_episode_steps, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"env 'predator_prey': {name} must be an integer >= {low}, "
                                  f"got {value!r}")
        if n_agents + n_prey > grid_size * grid_size:
            raise ConfigError(f"env 'predator_prey': {n_agents} agents and {n_prey} prey do not "
                              f"fit on a {grid_size}×{grid_size} grid")
        for name, value in (("capture_reward", capture_reward), ("punishment", punishment)):
            if not np.isfinite(float(value)):
                raise ConfigError(f"env 'predator_prey': {name} must be a finite number")
        for name, value, choices in (("order", order, ORDERS),
                                     ("third_channel", third_channel, THIRD_CHANNELS)):
            if value not in choices:
                raise ConfigError(f"env 'predator_prey': env_kwargs {name} must be one of "
                                  f"{list(choices)}, got {value!r}")
        for name, value in (("mask_walls", mask_walls), ("channels_last", channels_last),
                            ("state_time", state_time)):
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"env 'predator_prey': env_kwargs {name} must be true or "
                                  f"false, got {value!r}")
        self.num_envs = int(num_envs)
        self.n_prey = int(n_prey)
        self.grid_size = int(grid_size)
        self.view = int(view)
        self.capture_reward = float(capture_reward)
        self.punishment = float(punishment)
        self.order = order
        self.mask_walls = bool(mask_walls)
        self.third_channel = third_channel
        self.channels_last = bool(channels_last)
        self.state_time = bool(state_time)
        width = 2 * self.view + 1
        self._state_channels = 3 if third_channel == "hare" else 2
        self.spec = EnvSpec(
            agents=tuple(f"agent_{i}" for i in range(n_agents)),
            obs_dim=3 * width * width,
            state_dim=self._state_channels * self.grid_size ** 2 + int(self.state_time),
            n_actions=N_ACTIONS,
            max_episode_steps=int(max_episode_steps),
            # every cell and the time feature lie in [0, 1] (the dict version's Box spaces)
            obs_low=0.0, obs_high=1.0, state_low=0.0, state_high=1.0,
        )
        K, n, m = self.num_envs, int(n_agents), self.n_prey
        self.rngs = [np.random.default_rng() for _ in range(K)]
        self._agent_pos = np.zeros((K, n, 2), dtype=np.int64)
        self._agent_live = np.zeros((K, n), dtype=bool)  # False: frozen (off the grid)
        self._prey_pos = np.zeros((K, m, 2), dtype=np.int64)
        self._prey_alive = np.zeros((K, m), dtype=bool)
        self._t = np.zeros(K, dtype=np.int64)
        self._captures = np.zeros(K, dtype=np.int64)  # this episode's, so far
        self._punishments = np.zeros(K, dtype=np.int64)
        self._avail = np.zeros((K, n, N_ACTIONS), dtype=bool)
        # Cells holding a live agent or live prey, with a 1-cell border of True for the walls:
        # the one lookup every move needs.
        self._occupied = np.ones((K, self.grid_size + 2, self.grid_size + 2), dtype=bool)
        self._envs = np.arange(K)
        self._started = False

    @property
    def max_return(self) -> float:
        """The best possible episode return: ``capture_reward × min(n_prey, n_agents // 2)``."""
        return self.capture_reward * min(self.n_prey, self.spec.n_agents // 2)

    # --- the rules -------------------------------------------------------------------------
    def _rebuild_occupancy(self, k: int) -> None:
        """Recompute env k's occupancy grid from the positions (after a reset or a hand edit)."""
        self._occupied[k] = True
        self._occupied[k, 1:-1, 1:-1] = False
        for pos, live in ((self._agent_pos[k], self._agent_live[k]),
                          (self._prey_pos[k], self._prey_alive[k])):
            self._occupied[k, pos[live, 1] + 1, pos[live, 0] + 1] = True

    def _blocked(self, cells: np.ndarray) -> np.ndarray:
        """``cells [K, ..., 2]`` -> ``[K, ...]``: off the grid, or a live agent or prey is there."""
        env = self._envs.reshape((-1,) + (1,) * (cells.ndim - 2))
        return self._occupied[env, cells[..., 1] + 1, cells[..., 0] + 1]

    def _set_occupied(self, envs: np.ndarray, cells: np.ndarray, value: bool) -> None:
        self._occupied[envs, cells[:, 1] + 1, cells[:, 0] + 1] = value

    def _reset_envs(self, indices: Sequence[int] | np.ndarray) -> None:
        n, m, G = self.spec.n_agents, self.n_prey, self.grid_size
        for k in indices:
            cells = self.rngs[k].choice(G * G, size=n + m, replace=False)
            xy = np.stack([cells % G, cells // G], axis=-1)
            self._agent_pos[k] = xy[:n]
            self._prey_pos[k] = xy[n:]
            self._agent_live[k] = True
            self._prey_alive[k] = True
            self._t[k] = 0
            self._captures[k] = self._punishments[k] = 0
            self._rebuild_occupancy(k)

    def _draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This step's agent order ``[K, n]``, prey order ``[K, m]`` and flight uniforms
        ``[K, m]`` (by slot in the prey order), each env from its own generator."""
        K, n, m = self.num_envs, self.spec.n_agents, self.n_prey
        if self.order == "index":
            uniforms = np.stack([rng.random(m) for rng in self.rngs])
            return (np.broadcast_to(np.arange(n), (K, n)), np.broadcast_to(np.arange(m), (K, m)),
                    uniforms)
        uniforms = np.stack([rng.random(n + 2 * m) for rng in self.rngs])
        # argsort of iid uniforms: a uniformly random permutation per env
        return (np.argsort(uniforms[:, :n], axis=1), np.argsort(uniforms[:, n:n + m], axis=1),
                uniforms[:, n + m:])

    def _move_agent(self, agent: np.ndarray, actions: np.ndarray) -> None:
        """Agent ``agent[k]`` of every env k tries its move (``actions [K, n]``)."""
        envs = self._envs
        action = actions[envs, agent]
        moving = self._agent_live[envs, agent] & (action < STAY)
        if not moving.any():
            return
        target = self._agent_pos[envs, agent] + MOVES[action]
        ok = np.flatnonzero(moving & ~self._blocked(target))
        self._set_occupied(ok, self._agent_pos[ok, agent[ok]], False)
        self._set_occupied(ok, target[ok], True)
        self._agent_pos[ok, agent[ok]] = target[ok]

    def _capture(self, prey: np.ndarray, catching: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Capture check of prey ``prey[k]`` of every env k; ``catching [K, n]``: chose catch.
        Returns ``(captured, punished)``, ``[K]`` bool each."""
        envs = self._envs
        alive = self._prey_alive[envs, prey]
        cell = self._prey_pos[envs, prey]
        adjacent = np.abs(self._agent_pos - cell[:, None]).sum(-1) == 1
        catchers = catching & self._agent_live & adjacent & alive[:, None]
        count = catchers.sum(1)
        captured = count >= 2
        hit = np.flatnonzero(captured)
        if hit.size:
            self._prey_alive[hit, prey[hit]] = False
            self._set_occupied(hit, cell[hit], False)
            frozen = catchers & captured[:, None]
            self._agent_live &= ~frozen
            k_frozen, i_frozen = np.nonzero(frozen)
            self._set_occupied(k_frozen, self._agent_pos[k_frozen, i_frozen], False)
        return captured, count == 1

    def _flee(self, prey: np.ndarray, uniform: np.ndarray) -> None:
        """Prey ``prey[k]`` of every env k, if alive, moves to the free neighbour that
        ``uniform[k]`` picks, uniformly among the free ones (stays when none is free)."""
        envs = self._envs
        cells = self._prey_pos[envs, prey][:, None] + DIRECTIONS  # [K, 4, 2]
        free = ~self._blocked(cells)
        n_free = free.sum(1)
        move = np.flatnonzero(self._prey_alive[envs, prey] & (n_free > 0))
        if move.size == 0:
            return
        choice = np.minimum((uniform * n_free).astype(np.int64), n_free - 1)
        picked = (free & (np.cumsum(free, 1) - 1 == choice[:, None])).argmax(1)
        p = prey[move]
        new = cells[move, picked[move]]
        self._set_occupied(move, self._prey_pos[move, p], False)
        self._set_occupied(move, new, True)
        self._prey_pos[move, p] = new

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """One step of every env, no autoreset; ``actions [K, n]`` must be available. Returns
        reward, terminated, truncated and the episode statistics so far (``[K]`` each)."""
        K = self.num_envs
        agent_order, prey_order, uniforms = self._draw()

        # 1. agents move one after another, so each sees the cells the earlier ones took
        for slot in range(agent_order.shape[1]):
            self._move_agent(agent_order[:, slot], actions)

        # 2. prey one after another: capture check, then flight (order "index": all checks
        # first); a frozen agent no longer catches, which bounds the return (module docstring)
        captures = np.zeros(K, dtype=np.int64)
        miscaptures = np.zeros(K, dtype=np.int64)
        catching = actions == CATCH
        interleaved = self.order == "random"
        for slot in range(prey_order.shape[1]):
            captured, punished = self._capture(prey_order[:, slot], catching)
            captures += captured
            miscaptures += punished
            if interleaved:
                self._flee(prey_order[:, slot], uniforms[:, slot])
        if not interleaved:
            for slot in range(prey_order.shape[1]):
                self._flee(prey_order[:, slot], uniforms[:, slot])
        reward = self.capture_reward * captures + self.punishment * miscaptures

        # 3. end of episode
        self._t += 1
        terminated = ~self._prey_alive.any(1) | ~self._agent_live.any(1)
        truncated = ~terminated & (self._t >= self.spec.max_episode_steps)
        self._captures += captures
        self._punishments += miscaptures
        info = {"captures": self._captures.astype(np.float64),
                "punishments": self._punishments.astype(np.float64)}
        return reward.astype(np.float32), terminated, truncated, info

    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """obs, state, avail of every env from the current positions (fresh arrays)."""
        K, n, G, v = self.num_envs, self.spec.n_agents, self.grid_size, self.view
        width = 2 * v + 1
        # the grid with a border of width `view`: [K, row, col, channel], channels agents,
        # prey and the third (hares: none; or outside-the-grid)
        padded = np.zeros((K, G + 2 * v, G + 2 * v, 3), dtype=np.float32)
        if self.third_channel == "outside":
            padded[..., 2] = 1.0
            padded[:, v:v + G, v:v + G, 2] = 0.0
        k_agent, i_agent = np.nonzero(self._agent_live)
        x, y = self._agent_pos[k_agent, i_agent].T
        padded[k_agent, y + v, x + v, 0] = 1.0
        k_prey, i_prey = np.nonzero(self._prey_alive)
        x, y = self._prey_pos[k_prey, i_prey].T
        padded[k_prey, y + v, x + v, 1] = 1.0

        offsets = np.arange(width)
        rows = self._agent_pos[:, :, 1, None] + offsets  # padded row of window row d: y - v + d + v
        cols = self._agent_pos[:, :, 0, None] + offsets
        window = padded[np.arange(K)[:, None, None, None], rows[:, :, :, None],
                        cols[:, :, None, :]]  # [K, n, width, width, 3]
        if not self.channels_last:
            window = window.transpose(0, 1, 4, 2, 3)
        obs = np.ascontiguousarray(window).reshape(K, n, -1)
        obs[~self._agent_live] = 0.0

        grid = padded[:, v:v + G, v:v + G, :self._state_channels]
        if not self.channels_last:
            grid = grid.transpose(0, 3, 1, 2)
        grid = grid.reshape(K, -1)
        if self.state_time:
            time = (self._t / self.spec.max_episode_steps).astype(np.float32)[:, None]
            grid = np.concatenate([grid, time], axis=1)
        state = np.ascontiguousarray(grid, dtype=np.float32)

        avail = np.zeros((K, n, N_ACTIONS), dtype=bool)
        if self.mask_walls:
            target = self._agent_pos[:, :, None] + DIRECTIONS  # [K, n, 4, 2]
            inside = ((target >= 0) & (target < G)).all(-1)
            avail[..., :STAY] = inside & self._agent_live[..., None]
        else:
            avail[..., :STAY] = self._agent_live[..., None]
        distance = np.abs(self._agent_pos[:, :, None] - self._prey_pos[:, None]).sum(-1)
        prey_near = ((distance == 1) & self._prey_alive[:, None]).any(-1)
        avail[..., CATCH] = self._agent_live & prey_near
        avail[..., STAY] = True
        self._avail = avail.copy()
        return obs, state, avail

    # --- the VecEnv API --------------------------------------------------------------------
    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start a new episode in every env. ``seed=s`` seeds env k with ``s + k`` (a sequence:
        with ``seed[k]``); ``None`` continues each env's own random stream."""
        self.seed_envs(range(self.num_envs), per_env_seeds(seed, self.num_envs))
        self._reset_envs(range(self.num_envs))
        self._started = True
        return self._observe()

    def _check_actions(self, actions: Any) -> np.ndarray:
        if not self._started:
            raise RuntimeError("predator_prey: call reset() before step()")
        actions = self.check_actions(actions, "predator_prey").astype(np.int64)
        bad = ~np.take_along_axis(self._avail, actions[..., None], -1)[..., 0]
        if bad.any():
            k, i = (int(j) for j in np.argwhere(bad)[0])
            a = int(actions[k, i])
            name = ACTION_NAMES[a]
            allowed = [ACTION_NAMES[j] for j in np.flatnonzero(self._avail[k, i])]
            raise ValueError(
                f"predator_prey: env {k}, agent {i}: action {a} ({name}) is not available; "
                f"available: {allowed}. Catch needs a live prey on an adjacent cell and a frozen "
                "agent may only stay: choose actions with the avail mask")
        return actions

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        actions = self._check_actions(actions)
        reward, terminated, truncated, info = self._advance(actions)
        final_obs, final_state, final_avail = self._observe()
        done = terminated | truncated
        if done.any():
            ended = np.flatnonzero(done)
            self.seed_envs(ended, reset_seeds)
            self._reset_envs(ended)
            obs, state, avail = self._observe()
        else:
            obs, state, avail = final_obs.copy(), final_state.copy(), final_avail.copy()
        return StepResult(obs=obs, state=state, avail=avail, reward=reward,
                          terminated=terminated, truncated=truncated, final_obs=final_obs,
                          final_state=final_state, final_avail=final_avail, info=info)

    def set_positions(self, index: int, agents_xy: Sequence[Position],
                      prey_xy: Sequence[Position], t: int | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Place env ``index``'s agents and prey by hand (tests, demonstrations).

        Args:
            index: which env.
            agents_xy: one ``(x, y)`` per agent, or None for a frozen agent.
            prey_xy: one ``(x, y)`` per prey, or None for a prey already caught.
            t: set the step counter too (steps already taken in this episode).

        Returns:
            ``(obs, state, avail)`` of all K envs, as after a reset.
        """
        if not self._started:
            self.reset()
        n, m, G = self.spec.n_agents, self.n_prey, self.grid_size
        if not 0 <= index < self.num_envs:
            raise IndexError(f"set_positions: index {index} is outside [0, {self.num_envs})")
        if len(agents_xy) != n or len(prey_xy) != m:
            raise ValueError(f"set_positions: need {n} agent and {m} prey entries, got "
                             f"{len(agents_xy)} and {len(prey_xy)}")
        taken: dict[tuple[int, int], str] = {}
        for kind, entries in (("agent", agents_xy), ("prey", prey_xy)):
            for j, xy in enumerate(entries):
                if xy is None:
                    continue
                cell = (int(xy[0]), int(xy[1]))
                if not (0 <= cell[0] < G and 0 <= cell[1] < G):
                    raise ValueError(f"set_positions: {kind} {j} at {cell} is outside the "
                                     f"{G}×{G} grid")
                if cell in taken:
                    raise ValueError(f"set_positions: {kind} {j} and {taken[cell]} both at {cell}")
                taken[cell] = f"{kind} {j}"
        for j, xy in enumerate(agents_xy):
            self._agent_live[index, j] = xy is not None
            if xy is not None:
                self._agent_pos[index, j] = xy
        for j, xy in enumerate(prey_xy):
            self._prey_alive[index, j] = xy is not None
            if xy is not None:
                self._prey_pos[index, j] = xy
        self._rebuild_occupancy(index)
        if t is not None:
            if not 0 <= t < self.spec.max_episode_steps:
                raise ValueError(f"set_positions: t must be in [0, "
                                 f"{self.spec.max_episode_steps}), got {t}")
            self._t[index] = t
        return self._observe()

    def positions(self, index: int) -> tuple[list[tuple[int, int] | None],
                                             list[tuple[int, int] | None]]:
        """``(agents_xy, prey_xy)`` of env ``index``, as :meth:`set_positions` takes them
        (None for a frozen agent or a caught prey)."""
        agents = [(int(x), int(y)) if live else None
                  for (x, y), live in zip(self._agent_pos[index], self._agent_live[index])]
        prey = [(int(x), int(y)) if alive else None
                for (x, y), alive in zip(self._prey_pos[index], self._prey_alive[index])]
        return agents, prey

    def render(self, index: int = 0, cell: int = 24) -> np.ndarray:
        """RGB frame ``[H, W, 3]`` uint8 of env ``index``: grey lines, blue agents, red prey,
        pale grey squares where frozen agents were caught up in a capture."""
        G = self.grid_size
        size = G * cell + 1
        frame = np.full((size, size, 3), 255, dtype=np.uint8)
        frame[::cell, :] = 200
        frame[:, ::cell] = 200
        inner = np.arange(cell - 1)
        centre = (cell - 2) / 2
        disc = (inner[:, None] - centre) ** 2 + (inner[None] - centre) ** 2 \
            <= (cell / 2 - 4) ** 2
        square = np.zeros((cell - 1, cell - 1), dtype=bool)
        square[3:-3, 3:-3] = True

        def paint(xy: np.ndarray, shape: np.ndarray, colour: tuple[int, int, int]) -> None:
            x, y = int(xy[0]), int(xy[1])
            patch = frame[y * cell + 1:(y + 1) * cell, x * cell + 1:(x + 1) * cell]
            patch[shape] = colour

        for xy, live in zip(self._agent_pos[index], self._agent_live[index]):
            if not live:
                paint(xy, square, (215, 215, 215))
        for xy, alive in zip(self._prey_pos[index], self._prey_alive[index]):
            if alive:
                paint(xy, disc, (220, 50, 50))
        for xy, live in zip(self._agent_pos[index], self._agent_live[index]):
            if live:
                paint(xy, square, (40, 90, 220))
        return frame



class PredatorPreyParallelEnv(ParallelEnv):
    """One predator-prey game as a PettingZoo ``ParallelEnv`` (the vec env's rules, K = 1).

    Every agent receives the team reward. Frozen agents stay in ``agents`` until the episode ends,
    with zero observations and ``infos[agent]["action_mask"]`` allowing only stay (index 4);
    every step's infos carry the action masks and the episode statistics so far (``captures``,
    ``punishments``). Unavailable actions are played as stay.
    ``reset(seed=None)`` continues the game's random stream, so a run reset with ``seed=s`` once
    and ``None`` afterwards matches env k = 0 of a vec env reset with ``seed=s``.

    Keyword arguments are those of :class:`PredatorPreyVecEnv`.
    """

    metadata = {"name": "predator_prey_punishment", "render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = "rgb_array", **env_kwargs: Any) -> None:
        self.game = PredatorPreyVecEnv("punishment", 1, **env_kwargs)
        spec = self.game.spec
        self.render_mode = render_mode
        self.possible_agents = list(spec.agents)
        self.agents: list[str] = []
        self.max_episode_steps = spec.max_episode_steps
        self._observation_spaces = {
            a: spaces.Box(0.0, 1.0, (spec.obs_dim,), dtype=np.float32) for a in spec.agents}
        self._action_spaces = {a: spaces.Discrete(N_ACTIONS) for a in spec.agents}
        self.state_space = spaces.Box(0.0, 1.0, (spec.state_dim,), dtype=np.float32)
        self._state = np.zeros(spec.state_dim, dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def _dicts(self, obs: np.ndarray, avail: np.ndarray) -> tuple[dict, dict]:
        agents = self.possible_agents
        return ({a: obs[i] for i, a in enumerate(agents)},
                {a: {"action_mask": avail[i].astype(np.int8)} for i, a in enumerate(agents)})

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, state, avail = self.game.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self._state = state[0]
        return self._dicts(obs[0], avail[0])

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("predator_prey: step() after the episode ended; call reset()")
        chosen = np.full(len(self.possible_agents), STAY, dtype=np.int64)
        for i, agent in enumerate(self.possible_agents):
            if agent in actions:
                action = int(actions[agent])
                if not 0 <= action < N_ACTIONS:
                    raise ValueError(f"predator_prey: agent '{agent}': action {action} is "
                                     f"outside Discrete({N_ACTIONS})")
                chosen[i] = action
        chosen = np.where(self.game._avail[0, np.arange(len(chosen)), chosen], chosen, STAY)
        reward, terminated, truncated, statistics = self.game._advance(chosen[None])
        obs, state, avail = self.game._observe()
        self._state = state[0]
        team = float(reward[0])
        term, trunc = bool(terminated[0]), bool(truncated[0])
        agents = self.possible_agents
        if term or trunc:
            self.agents = []
        obs_dict, infos = self._dicts(obs[0], avail[0])
        for info in infos.values():
            info.update({name: float(values[0]) for name, values in statistics.items()})
        return (obs_dict, dict.fromkeys(agents, team), dict.fromkeys(agents, term),
                dict.fromkeys(agents, trunc), infos)

    def state(self) -> np.ndarray:
        return self._state.copy()

    def render(self) -> np.ndarray:
        return self.game.render(0)

    def close(self) -> None:
        pass


@REGISTRY_ENV.register("predator_prey")
def make_predator_prey(env_id: str = "punishment", **env_kwargs: Any) -> PredatorPreyParallelEnv:
    """``REGISTRY_ENV["predator_prey"]``: one game as a PettingZoo ParallelEnv."""
    _check_env_id(env_id)
    # the PettingZoo env hands its kwargs (all but render_mode) to the vec env's constructor
    check_env_kwargs(PredatorPreyVecEnv, "predator_prey", env_id,
                     {k: v for k, v in env_kwargs.items() if k != "render_mode"}, positional=2)
    return PredatorPreyParallelEnv(**env_kwargs)


make_predator_prey.check_env_id = _check_env_id  # read by make.check_env_id
