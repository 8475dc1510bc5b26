"""Google Research Football academy scenarios: env ``"football"``.

:class:`FootballEnv` (``REGISTRY_ENV["football"]``) wraps
``gfootball.env.create_environment(env_name=<env_id>, representation="simple115v2",
number_of_left_players_agent_controls=N)`` (gym 0.25 API) as a :class:`MultiAgentEnv`: the N
controlled left players are the agents ``player_0 ... player_{N-1}``, each with gfootball's 19
actions (all always available) and its 115-float observation; the state is their observations
concatenated. gfootball's per-player rewards are per-agent rewards: ``team_reward`` (mean by
default) makes the team reward.

N defaults to the scenario's number of attacking outfield players (:data:`ACADEMY_SCENARIOS`);
``env_kwargs: {number_of_left_players_agent_controls: N}`` changes it, and any other keyword
goes to ``create_environment`` (e.g. ``rewards: "scoring,checkpoints"``).

Episodes: gfootball says only ``done``. An academy episode lasts at most 400 steps
(``game_duration``); one that ends at that limit without a goal is **truncated**, anything else
(a goal, the ball out of play, possession lost) is terminated. ``info`` carries
``score_reward`` (this step's: +1 scored, -1 conceded), ``goals_scored`` and
``goals_conceded`` (so far in the episode) as floats.

gfootball needs an 18-minute C++ build; the README gives the recipe.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.interfaces import MultiAgentEnv
from xwq.errors import ConfigError, MissingPackageError
from xwq.registry import REGISTRY_ENV, require_choice

#: academy scenario -> default number of controlled left players (gfootball/scenarios/*.py)
ACADEMY_SCENARIOS: dict[str, int] = {
    "academy_empty_goal_close": 1,
    "academy_empty_goal": 1,
    "academy_run_to_score": 1,
    "academy_run_to_score_with_keeper": 1,
    "academy_pass_and_shoot_with_keeper": 2,
    "academy_run_pass_and_shoot_with_keeper": 2,
    "academy_3_vs_1_with_keeper": 3,
    "academy_corner": 10,
    "academy_counterattack_easy": 4,
    "academy_counterattack_hard": 4,
    "academy_single_goal_versus_lazy": 10,
}
GAME_DURATION = 400  # steps of every academy scenario
N_ACTIONS = 19
OBS_DIM = 115

INSTALL = """\
env 'football' needs gfootball 2.10.2, built from source (about 18 minutes):
  sudo apt-get install git cmake build-essential libgl1-mesa-dev libsdl2-dev \\
      libsdl2-image-dev libsdl2-ttf-dev libsdl2-gfx-dev libboost-all-dev libdirectfb-dev \\
      libst-dev mesa-utils xvfb x11vnc python3-pip
  pip install psutil setuptools wheel six gym==0.25.2
  pip install --no-build-isolation gfootball==2.10.2
(gym 0.26 breaks gfootball's reset; keep gym 0.25.2)"""


def import_gfootball_env() -> Any:
    """``gfootball.env``, or a :class:`MissingPackageError` with the install recipe."""
    try:
        return importlib.import_module("gfootball.env")
    except ImportError as error:
        raise MissingPackageError(f"env 'football': cannot import gfootball.env ({error}).\n"
                                  f"{INSTALL}") from error


def check_football_env_id(env_id: str) -> None:
    require_choice("env_id", env_id, list(ACADEMY_SCENARIOS),
                   where=" for env 'football' (a gfootball academy scenario)")
    import_gfootball_env()


@REGISTRY_ENV.register("football")
class FootballEnv(MultiAgentEnv):
    """One gfootball academy episode with N controlled left players as N agents.

    Args:
        env_id: an academy scenario (:data:`ACADEMY_SCENARIOS`).
        number_of_left_players_agent_controls: N (default: the scenario's attackers).
        representation: gfootball's observation; only the flat ``"simple115v2"`` (and
            ``"simple115"``) fit the agents' vector input.
        **create_kwargs: passed to ``gfootball.env.create_environment``.

    Shapes: each agent's observation ``Box(115)``, actions ``Discrete(19)``, state ``Box(115 N)``.
    """

    env_ids = tuple(ACADEMY_SCENARIOS)  # for listings

    def __init__(self, env_id: str, number_of_left_players_agent_controls: int | None = None,
                 representation: str = "simple115v2", **create_kwargs: Any) -> None:
        require_choice("env_id", env_id, list(ACADEMY_SCENARIOS),
                       where=" for env 'football' (a gfootball academy scenario)")
        if representation not in ("simple115v2", "simple115"):
            raise ConfigError(f"env 'football': representation {representation!r} is not a "
                             "flat vector; use 'simple115v2'")
        n = number_of_left_players_agent_controls or ACADEMY_SCENARIOS[env_id]
        if not (isinstance(n, int) and n >= 1):
            raise ConfigError(f"env 'football': number_of_left_players_agent_controls={n!r} "
                             "must be an int >= 1")
        gfootball_env = import_gfootball_env()
        try:
            self._env = gfootball_env.create_environment(
                env_name=env_id, representation=representation,
                number_of_left_players_agent_controls=n, **create_kwargs)
        except TypeError as error:
            raise ConfigError(f"env 'football', env_id {env_id!r}: bad env_kwargs "
                            f"{create_kwargs}: {error}") from None
        self.env_id = env_id
        self.agents = [f"player_{i}" for i in range(n)]
        obs_box = spaces.Box(-np.inf, np.inf, (OBS_DIM,), dtype=np.float32)
        self.observation_space = dict.fromkeys(self.agents, obs_box)
        self.action_space = {a: spaces.Discrete(N_ACTIONS) for a in self.agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (OBS_DIM * n,), dtype=np.float32)
        self.max_episode_steps = GAME_DURATION
        self._obs = np.zeros((n, OBS_DIM), dtype=np.float32)
        self._t = 0
        self._goals = [0.0, 0.0]

    def _split(self, obs: Any) -> dict[str, np.ndarray]:
        # gfootball drops the player axis when it controls one player
        self._obs = np.asarray(obs, dtype=np.float32).reshape(self.num_agents, OBS_DIM)
        return {a: self._obs[i].copy() for i, a in enumerate(self.agents)}

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None and callable(getattr(self._env, "seed", None)):
            self._env.seed(seed)
        self._t = 0
        self._goals = [0.0, 0.0]
        return self._split(self._env.reset()), {}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        obs, reward, done, info = self._env.step([int(actions[a]) for a in self.agents])
        self._t += 1
        rewards = np.broadcast_to(np.asarray(reward, dtype=np.float64).reshape(-1),
                                  (self.num_agents,))
        score = float(info.get("score_reward", 0.0))
        if score > 0:
            self._goals[0] += score
        elif score < 0:
            self._goals[1] -= score
        timeout = bool(done) and self._t >= self.max_episode_steps and score == 0.0
        terminated, truncated = bool(done) and not timeout, timeout
        step_info = {"score_reward": score, "goals_scored": self._goals[0],
                     "goals_conceded": self._goals[1]}
        return (self._split(obs), {a: float(r) for a, r in zip(self.agents, rewards, strict=True)},
                dict.fromkeys(self.agents, terminated), dict.fromkeys(self.agents, truncated),
                step_info)

    def state(self) -> np.ndarray:
        return self._obs.reshape(-1).copy()

    def close(self) -> None:
        self._env.close()

    check_env_id = staticmethod(check_football_env_id)  # read by make.check_env_id
