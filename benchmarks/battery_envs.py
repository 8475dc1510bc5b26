"""Small custom environments, right and wrong, for ``benchmarks/bad_inputs.py``.

Imported by the battery's runs (``xwq train --import battery_envs``, or ``import battery_envs``
in a Python case): every class or factory below registers itself as ``bat_<name>``. ``Good`` is
a correct two-agent env; each other one breaks one rule of :class:`xwq.MultiAgentEnv` the way a
user's env might.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

import xwq


def _register(name):
    def wrap(factory):
        xwq.register_env(f"bat_{name}", factory)
        return factory
    return wrap


@_register("good")
class Good(xwq.MultiAgentEnv):
    """Two agents, obs [t, index, noise], reward = agents choosing 1, 4-step episodes."""

    obs_dim = 3

    def __init__(self, env_id: str = "x", **kwargs):
        self.agents = ["a", "b"]
        self.observation_space = {a: spaces.Box(-10, 10, (self.obs_dim,), np.float32)
                                  for a in self.agents}
        self.action_space = {a: spaces.Discrete(3) for a in self.agents}
        self.state_space = spaces.Box(-10, 10, (4,), np.float32)
        self.max_episode_steps = 5
        self.rng = np.random.default_rng(0)
        self.t, self.noise = 0, 0.0

    def _obs(self):
        return {a: np.array([self.t, i, self.noise], np.float32)
                for i, a in enumerate(self.agents)}

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.noise = 0, float(self.rng.random())
        return self._obs(), {}

    def _reward(self, actions):
        return float(sum(int(u) == 1 for u in actions.values()))

    def step(self, actions):
        self.t += 1
        self.noise = float(self.rng.random())
        reward, done = self._reward(actions), self.t >= 4
        return (self._obs(), {a: reward for a in self.agents}, {a: done for a in self.agents},
                {a: False for a in self.agents}, {})

    def state(self):
        return np.array([self.t, self.noise, 0.0, 1.0], np.float32)


@_register("old_gym_step")
class OldGymStep(Good):
    def step(self, actions):
        obs, rewards, terminated, _, info = super().step(actions)
        return obs, rewards, terminated, info


@_register("reset_without_seed")
class ResetWithoutSeed(Good):
    def reset(self):  # noqa: D102 (wrong on purpose: no seed parameter)
        return super().reset()


@_register("reset_obs_only")
class ResetObsOnly(Good):
    def reset(self, seed=None):
        return super().reset(seed)[0]


@_register("avail_none")
class AvailNone(Good):
    def avail_actions(self):
        return None


@_register("num_agents_assigned")
class NumAgentsAssigned(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.num_agents = 2


@_register("no_state")
class NoState(Good):
    """No ``state()`` and no ``state_space``: xwq concatenates the observations."""

    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.state_space = None

    def state(self):
        raise NotImplementedError


@_register("state_missing_with_space")
class StateMissingWithSpace(Good):
    """Declares a state_space but implements no state()."""

    def state(self):
        raise NotImplementedError


@_register("obs_wrong_shape_same_size")
class ObsWrongShapeSameSize(Good):
    obs_dim = 4

    def _obs(self):
        return {a: np.array([[self.t, i], [self.noise, 0.0]], np.float32)
                for i, a in enumerate(self.agents)}


@_register("obs_wrong_size")
class ObsWrongSize(Good):
    def _obs(self):
        return {a: np.array([self.t, i, self.noise, 0.0, 0.0], np.float32)
                for i, a in enumerate(self.agents)}


@_register("nan_reward")
class NaNReward(Good):
    def _reward(self, actions):
        return float("nan")


@_register("inf_reward")
class InfReward(Good):
    def _reward(self, actions):
        return float("inf")


@_register("step_raises")
class StepRaises(Good):
    """The simulator crashes at its 150th step (in this process)."""

    calls = 0

    def step(self, actions):
        type(self).calls += 1
        if type(self).calls == 150:
            raise RuntimeError("the simulator crashed")
        return super().step(actions)


@_register("factory_raises")
def factory_raises(env_id, **kwargs):
    raise ValueError(f"scenario {env_id!r} needs the map files in ./maps")


@_register("factory_none")
def factory_none(env_id, **kwargs):
    return None


@_register("factory_dict")
def factory_dict(env_id, **kwargs):
    return {"agents": ["a", "b"]}


@_register("box_actions")
class BoxActions(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.action_space = {a: spaces.Box(-1, 1, (2,), np.float32) for a in self.agents}


@_register("multidiscrete_actions")
class MultiDiscreteActions(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.action_space = {a: spaces.MultiDiscrete([3, 2]) for a in self.agents}


@_register("discrete_start_1")
class DiscreteStart1(Good):
    """Actions 1..3 (gymnasium's Discrete(3, start=1)): xwq's 0..2 would be off by one."""

    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.action_space = {a: spaces.Discrete(3, start=1) for a in self.agents}

    def step(self, actions):
        wrong = {a: v for a, v in actions.items() if not self.action_space[a].contains(v)}
        if wrong:
            raise ValueError(f"actions outside Discrete(3, start=1): {wrong}")
        return super().step({a: v - 1 for a, v in actions.items()})


@_register("obs_float64")
class ObsFloat64(Good):
    def _obs(self):
        return {a: value.astype(np.float64) for a, value in super()._obs().items()}


@_register("obs_lists")
class ObsLists(Good):
    def _obs(self):
        return {a: value.tolist() for a, value in super()._obs().items()}


@_register("reward_scalar")
class RewardScalar(Good):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        return obs, rewards["a"], terminated, truncated, info


@_register("terminated_bool")
class TerminatedBool(Good):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        return obs, rewards, terminated["a"], truncated, info


@_register("reward_missing_agent")
class RewardMissingAgent(Good):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        return obs, {"a": rewards["a"]}, terminated, truncated, info


@_register("no_time_limit")
class NoTimeLimit(Good):
    """Never ends and declares no time limit."""

    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.max_episode_steps = None

    def step(self, actions):
        obs, rewards, _, truncated, info = super().step(actions)
        return obs, rewards, {a: False for a in self.agents}, truncated, info


@_register("all_unavailable")
class AllUnavailable(Good):
    def avail_actions(self):
        return {"a": np.ones(3, bool), "b": np.zeros(3, bool)}


@_register("avail_wrong_length")
class AvailWrongLength(Good):
    def avail_actions(self):
        return {a: np.ones(5, bool) for a in self.agents}


@_register("state_wrong_shape")
class StateWrongShape(Good):
    def state(self):
        return np.zeros(7, np.float32)


@_register("one_agent")
class OneAgent(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.agents = ["a"]
        self.observation_space = {"a": self.observation_space["a"]}
        self.action_space = {"a": self.action_space["a"]}


@_register("mixed_sizes")
class MixedSizes(Good):
    """Agents with different observation sizes and action counts (padded and masked)."""

    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.observation_space = {"a": spaces.Box(-10, 10, (3,), np.float32),
                                  "b": spaces.Box(-10, 10, (5,), np.float32)}
        self.action_space = {"a": spaces.Discrete(3), "b": spaces.Discrete(5)}

    def _obs(self):
        return {"a": np.array([self.t, 0, self.noise], np.float32),
                "b": np.array([self.t, 1, self.noise, 0, 0], np.float32)}

    def avail_actions(self):
        return {"a": np.ones(3, bool), "b": np.ones(5, bool)}


@_register("pixels")
class Pixels(Good):
    """16x16 RGB uint8 observations (0..255, not normalised) and large rewards."""

    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.observation_space = {a: spaces.Box(0, 255, (16, 16, 3), np.uint8)
                                  for a in self.agents}

    def _obs(self):
        return {a: self.rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for a in self.agents}

    def _reward(self, actions):
        return 1000.0 * super()._reward(actions)


@_register("obs_space_not_dict")
class ObsSpaceNotDict(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.observation_space = spaces.Box(-10, 10, (3,), np.float32)


@_register("close_raises")
class CloseRaises(Good):
    def close(self):
        raise RuntimeError("the simulator was already gone")


@_register("render_raises")
class RenderRaises(Good):
    def render(self):
        raise RuntimeError("no display")


@_register("agent_dies")
class AgentDies(Good):
    """Agent 'b' leaves the dicts after step 2 (a PettingZoo-style death)."""

    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        if self.t >= 2:
            for table in (obs, rewards, terminated, truncated):
                table.pop("b")
        return obs, rewards, terminated, truncated, info


@_register("reward_arrays")
class RewardArrays(Good):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        return obs, {a: np.array([r]) for a, r in rewards.items()}, terminated, truncated, info


@_register("obs_nan")
class ObsNaN(Good):
    def _obs(self):
        return {a: np.full(3, np.nan, np.float32) for a in self.agents}


@_register("step_returns_none")
class StepReturnsNone(Good):
    def step(self, actions):
        super().step(actions)


@_register("truncation_only")
class TruncationOnly(Good):
    """Never terminates; truncated at its 3-step time limit by the env itself."""

    def step(self, actions):
        obs, rewards, _, _, info = super().step(actions)
        done = self.t >= 3
        return (obs, rewards, {a: False for a in self.agents}, {a: done for a in self.agents},
                info)


@_register("int_agent_names")
class IntAgentNames(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.agents = [0, 1]
        self.observation_space = {a: spaces.Box(-10, 10, (3,), np.float32) for a in self.agents}
        self.action_space = {a: spaces.Discrete(3) for a in self.agents}


@_register("reset_missing_agent")
class ResetMissingAgent(Good):
    def reset(self, seed=None):
        obs, info = super().reset(seed)
        obs.pop("b")
        return obs, info


@_register("scalar_obs")
class ScalarObs(Good):
    def __init__(self, env_id="x", **kwargs):
        super().__init__(env_id)
        self.observation_space = {a: spaces.Box(-10, 10, (), np.float32) for a in self.agents}

    def _obs(self):
        return {a: np.float32(self.t) for a in self.agents}


@_register("info_not_dict")
class InfoNotDict(Good):
    def step(self, actions):
        obs, rewards, terminated, truncated, _ = super().step(actions)
        return obs, rewards, terminated, truncated, None


@_register("no_kwargs")
class NoKwargs(Good):
    def __init__(self, env_id="x"):
        super().__init__(env_id)


@_register("subproc_step_raises")
class SubprocStepRaises(Good):
    """Raises at the 30th step of one env (run with vectorize: subprocess)."""

    def step(self, actions):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 30:
            raise RuntimeError("the simulator crashed in a worker")
        return super().step(actions)
