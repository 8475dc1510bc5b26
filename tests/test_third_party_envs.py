"""Faulty and third-party-style envs: each fault is adapted (with a warning where xwq assumes
something) or refused with one EnvMismatchError naming the agent or method and the fix — by
``check_env`` and by training alike. The wrapper nesting of real PettingZoo/pogema envs is
mimicked by fakes (CI does not install sisl, butterfly or pogema; benchmarks/third_party_envs.py
runs the real ones)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

import xwq
from xwq.environment import ArrayEnv, EnvMismatchError, PettingZooEnv, as_multi_agent_env


@pytest.fixture
def train(run_dirs):
    """``train(name, factory, **overrides)``: register the env and run a tiny qmix training."""
    def run(name, factory, running_steps=32, **overrides):
        xwq.register_env(name, factory)
        settings = {"parallels": 1, "batch_size": 2, "buffer_size": 8, "training_frequency": 8,
                    **run_dirs, **overrides}
        runner = xwq.get_runner("qmix", name, "x", running_steps=running_steps, **settings)
        return runner.run()
    return run


def roll(env: ArrayEnv, steps: int = 8, seed: int | None = 0) -> list:
    """Rewards of ``steps`` steps of action 0 for every agent, resetting at episode ends."""
    env.reset(seed=seed)
    rewards = []
    for _ in range(steps):
        *_, reward, term, trunc = env.step(np.zeros(env.spec.n_agents, dtype=int))
        rewards.append(reward)
        if term or trunc:
            env.reset()
    return rewards


# --- 1. old gym returns ---------------------------------------------------------------------
def test_old_gym_four_tuple_step_is_refused_with_the_fix(counting_env_class, train):
    class OldStep(counting_env_class):
        def step(self, actions):
            obs, rewards, terminated, _, info = super().step(actions)
            return obs, rewards, terminated, info

    pattern = r"env OldStep: step\(\) returned 4 values .*old gym.*return 5: \(obs, rewards, " \
              r"terminated, truncated, info\)"
    env = ArrayEnv(OldStep())
    env.reset()
    with pytest.raises(EnvMismatchError, match=pattern):
        env.step(np.zeros(2, dtype=int))
    with pytest.raises(EnvMismatchError, match=pattern):
        xwq.check_env(OldStep())
    with pytest.raises(EnvMismatchError, match=pattern):
        train("old_step", OldStep)


def test_old_gym_four_tuple_step_of_a_pettingzoo_env_is_refused():
    class OldParallel(Wrapped):
        def step(self, actions):
            obs, rewards, terminated, _, infos = super().step(actions)
            return obs, rewards, terminated, infos

    env = ArrayEnv(as_multi_agent_env(OldParallel(Raw(max_cycles=5))))
    env.reset()
    with pytest.raises(EnvMismatchError, match=r"env wrapped_v0: step\(\) returned 4 values"):
        env.step(np.zeros(2, dtype=int))


@pytest.mark.parametrize("returns, pattern", [
    ("obs", r"reset\(\) returned only the observations \(old gym style\).*`return obs, \{\}`"),
    ("obs_state", r"reset\(\) returned \(obs, ndarray\); the second value must be the info"),
    ("three", r"reset\(\) returned 3 values; it must return \(obs, info\)"),
])
def test_old_style_reset_returns_are_refused(counting_env_class, returns, pattern):
    class OldReset(counting_env_class):
        def reset(self, seed=None):
            obs, info = super().reset(seed)
            if returns == "obs":
                return obs
            if returns == "obs_state":
                return obs, self.state()
            return obs, info, {}

    with pytest.raises(EnvMismatchError, match=pattern):
        ArrayEnv(OldReset()).reset()
    with pytest.raises(EnvMismatchError, match=pattern):
        xwq.check_env(OldReset())


# --- 2. reset without a seed parameter ------------------------------------------------------
def test_reset_without_seed_is_seeded_through_env_seed(counting_env_class, caplog):
    class GymSeeded(counting_env_class):
        def seed(self, seed):
            self.rng = np.random.default_rng(seed)

        def reset(self):
            self.t = 0
            self.noise = float(self.rng.random())
            return self._obs(), {}

    with caplog.at_level(logging.WARNING, logger="xwq.environment"):
        first = ArrayEnv(GymSeeded()).reset(seed=7)[0]
    again = ArrayEnv(GymSeeded()).reset(seed=7)[0]
    other = ArrayEnv(GymSeeded()).reset(seed=8)[0]
    np.testing.assert_array_equal(first, again)
    assert first[0, 2] != other[0, 2]
    assert "seeds its episodes through env.seed(seed)" in caplog.text
    summary = xwq.check_env(GymSeeded())
    assert summary["adaptations"] == [
        "reset() takes no seed; xwq seeds its episodes through env.seed(seed)"]


def test_reset_without_seed_and_no_seed_method_warns_once_and_trains(counting_env_class,
                                                                      caplog, train):
    class Unseedable(counting_env_class):
        def reset(self):
            return super().reset()

    with caplog.at_level(logging.WARNING, logger="xwq.environment"):
        train("unseedable", Unseedable, parallels=2)
    warnings = [r.getMessage() for r in caplog.records if "cannot be seeded" in r.getMessage()]
    assert warnings == ["env Unseedable: reset() takes no seed and the env has no seed() "
                        "method: its episodes cannot be seeded, so runs are not reproducible; "
                        "add a seed=None parameter to reset"]


def test_a_type_error_inside_reset_is_not_taken_for_a_missing_seed(counting_env_class):
    class Buggy(counting_env_class):
        def reset(self, seed=None):
            raise TypeError("a bug inside reset")

    with pytest.raises(TypeError, match="a bug inside reset"):
        ArrayEnv(Buggy()).reset(seed=1)


# --- 3. avail_actions None or incomplete -----------------------------------------------------
@pytest.mark.parametrize("masks", ["none", "missing_agent"])
def test_no_mask_means_every_action_available(counting_env_class, masks, train):
    class Unmasked(counting_env_class):
        def avail_actions(self):
            return None if masks == "none" else {"a": np.array([1, 0, 1], bool)}

    _, _, avail = ArrayEnv(Unmasked()).reset()
    expected_a = [1, 1, 1] if masks == "none" else [1, 0, 1]
    np.testing.assert_array_equal(avail, [expected_a, [1, 1, 1]])
    assert xwq.check_env(Unmasked())["n_actions"] == 3
    train(f"unmasked_{masks}", Unmasked)


def test_avail_actions_of_the_wrong_type_is_refused(counting_env_class):
    class ListMasks(counting_env_class):
        def avail_actions(self):
            return [np.ones(3, bool), np.ones(3, bool)]

    with pytest.raises(EnvMismatchError, match=r"avail_actions\(\) returned list; it must "
                                               r"return a dict agent -> bool mask"):
        ArrayEnv(ListMasks()).reset()


# --- 4. num_agents assigned in __init__ ------------------------------------------------------
def test_num_agents_assigned_in_init_is_accepted(train):
    class XuanCeStyle(xwq.MultiAgentEnv):
        def __init__(self, env_id="x", **_):
            self.num_agents = 3  # before agents exist, then used to build them
            self.agents = [f"agent_{i}" for i in range(self.num_agents)]
            self.observation_space = {a: spaces.Box(-1, 1, (2,)) for a in self.agents}
            self.action_space = {a: spaces.Discrete(2) for a in self.agents}
            self.max_episode_steps = 4

        def reset(self, seed=None):
            self.t = 0
            return {a: np.zeros(2, np.float32) for a in self.agents}, {}

        def step(self, actions):
            self.t += 1
            obs, _ = self.reset()
            done = dict.fromkeys(self.agents, False)
            return obs, dict.fromkeys(self.agents, 1.0), done, done, {}

    env = XuanCeStyle()
    assert env.num_agents == 3 and ArrayEnv(env).spec.n_agents == 3
    train("xuance_style", XuanCeStyle)

    class Miscounted(XuanCeStyle):
        def __init__(self, env_id="x", **_):
            super().__init__()
            self.num_agents = 4

    with pytest.raises(EnvMismatchError, match=r"env Miscounted: num_agents = 4 but env.agents "
                                               r"lists 3 agents"):
        ArrayEnv(Miscounted())
    with pytest.raises(EnvMismatchError, match="num_agents = 4"):
        xwq.check_env(Miscounted())


# --- 5. no state() ---------------------------------------------------------------------------
def test_missing_state_falls_back_to_the_concatenated_observations(counting_env_class, train):
    class Stateless(counting_env_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.state_space = None

        state = xwq.MultiAgentEnv.state  # not implemented, as the README allows

    env = ArrayEnv(Stateless())
    assert env.state_source == "concatenated observations" and env.spec.state_dim == 6
    obs, state, _ = env.reset(seed=0)
    np.testing.assert_array_equal(state, obs.reshape(-1))
    summary = xwq.check_env(Stateless())
    assert summary["state_source"] == "concatenated observations"
    assert xwq.check_env(counting_env_class())["state_source"] == "state()"
    train("stateless", Stateless)


def test_a_state_that_raises_not_implemented_falls_back_too(counting_env_class):
    class Placeholder(counting_env_class):  # a base class's placeholder, a common habit
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.state_space = None

        def state(self):
            raise NotImplementedError

    env = ArrayEnv(Placeholder())
    assert env.state_source == "concatenated observations" and env.spec.state_dim == 6
    obs, state, _ = env.reset(seed=0)
    np.testing.assert_array_equal(state, obs.reshape(-1))


def test_discrete_actions_with_a_start_are_shifted_to_the_envs_range(counting_env_class):
    class Shifted(counting_env_class):  # gymnasium's Discrete(n, start=s): actions s..s+n-1
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.action_space = {a: spaces.Discrete(space.n, start=5)
                                 for a, space in self.action_space.items()}
            self.received = []

        def step(self, actions):
            self.received.append(dict(actions))
            assert all(self.action_space[a].contains(v) for a, v in actions.items()), actions
            return super().step({a: v - 5 for a, v in actions.items()})

    inner = Shifted()
    env = ArrayEnv(inner)
    n = env.spec.n_actions
    env.reset(seed=0)
    env.step(np.zeros(len(env.spec.agents), dtype=np.int64))
    env.step(np.full(len(env.spec.agents), n - 1))
    assert [set(step.values()) for step in inner.received] == [{5}, {5 + n - 1}]


def test_state_space_without_state_is_refused(counting_env_class):
    class HalfState(counting_env_class):
        state = xwq.MultiAgentEnv.state

    pattern = r"sets state_space but has no state\(\) method: implement state\(\), or drop"
    with pytest.raises(EnvMismatchError, match=pattern):
        ArrayEnv(HalfState())
    with pytest.raises(EnvMismatchError, match="state_space is set but the env has no state"):
        xwq.check_env(HalfState())


# --- 6. other faults ------------------------------------------------------------------------
def test_observation_of_the_wrong_shape_but_right_size_is_refused(counting_env_class):
    class Transposed(counting_env_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.observation_space = {a: spaces.Box(-10, 10, (2, 3)) for a in self.agents}

        def _obs(self):
            return {a: np.zeros((3, 2), np.float32) for a in self.agents}

    with pytest.raises(EnvMismatchError, match=r"agent 'a': observation has 6 values of shape "
                                               r"\(3, 2\) but its observation space has shape "
                                               r"\(2, 3\) .*at reset\(\) \(the same number"):
        ArrayEnv(Transposed()).reset()
    with pytest.raises(EnvMismatchError, match=r"observation has shape \(3, 2\), its "
                                               r"observation space says \(2, 3\)"):
        xwq.check_env(Transposed())


@pytest.mark.parametrize("value", [None, "text", {"x": 1}])
def test_observation_that_is_not_numbers_is_refused(counting_env_class, value):
    class Wordy(counting_env_class):
        def _obs(self):
            return dict(super()._obs(), b=value)

    with pytest.raises(EnvMismatchError, match=r"agent 'b': observation at reset\(\) is not an "
                                               r"array of numbers"):
        ArrayEnv(Wordy()).reset()


@pytest.mark.parametrize("container", [list, tuple])
def test_observations_not_in_a_dict_are_refused(counting_env_class, container):
    class Listed(counting_env_class):
        def _obs(self):
            return container(super()._obs().values())

    with pytest.raises(EnvMismatchError, match=f"env Listed: reset\\(\\) returned observations "
                                               f"as {container.__name__}; return a dict"):
        ArrayEnv(Listed()).reset()
    with pytest.raises(EnvMismatchError, match="must return observations as a dict"):
        xwq.check_env(Listed())


@pytest.mark.parametrize("wrap", [lambda r: np.array([r]), np.float32, np.int64,
                                  lambda r: np.array(r)])
def test_rewards_as_numpy_scalars_or_one_value_arrays_are_accepted(counting_env_class, wrap):
    class NumpyRewards(counting_env_class):
        def step(self, actions):
            obs, rewards, *rest = super().step(actions)
            return (obs, {a: wrap(r) for a, r in rewards.items()}, *rest)

    env = ArrayEnv(NumpyRewards(), team_reward="sum")
    env.reset()
    assert env.step(np.array([1, 1]))[3] == 4.0
    xwq.check_env(NumpyRewards())


def test_reward_of_several_values_is_refused(counting_env_class):
    class VectorReward(counting_env_class):
        def step(self, actions):
            obs, rewards, *rest = super().step(actions)
            return (obs, {a: np.array([r, r]) for a, r in rewards.items()}, *rest)

    env = ArrayEnv(VectorReward())
    env.reset()
    with pytest.raises(EnvMismatchError, match=r"agent 'a': step\(\) at episode step 1 reward "
                                               r"is shape \(2,\); a reward must be one number"):
        env.step(np.zeros(2, dtype=int))


@pytest.mark.parametrize("what", ["reward", "obs", "state"])
def test_nan_at_training_time_names_agent_and_step(counting_env_class, what, train):
    class NanLater(counting_env_class):
        def step(self, actions):
            obs, rewards, *rest = super().step(actions)
            if self.t == 3 and what == "reward":
                rewards["b"] = float("nan")
            if self.t == 3 and what == "obs":
                obs["b"][1] = np.inf
            return (obs, rewards, *rest)

        def state(self):
            state = super().state()
            return state * np.nan if what == "state" and self.t == 3 else state

    patterns = {"reward": r"agent 'b': reward is nan at step\(\) at episode step 3",
                "obs": r"agent 'b': observation has NaN or inf values at step\(\) at episode "
                       r"step 3",
                "state": r"env NanLater: state\(\) has NaN or inf values at step\(\) at "
                         r"episode step 3"}
    with pytest.raises(EnvMismatchError, match=patterns[what]):
        train(f"nan_{what}", NanLater)
    with pytest.raises(EnvMismatchError):
        xwq.check_env(NanLater())


@pytest.mark.parametrize("space", [spaces.MultiDiscrete([3, 2]), spaces.Box(-1, 1, (2,))])
def test_non_discrete_actions_are_refused_with_the_fix(counting_env_class, space, train):
    class Continuous(counting_env_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.action_space = dict(self.action_space, b=space)

    pattern = r"env Continuous: agent 'b': action space is .*need gymnasium Discrete actions: " \
              r"give the agent a Discrete space"
    with pytest.raises(EnvMismatchError, match=pattern):
        ArrayEnv(Continuous())
    with pytest.raises(EnvMismatchError, match=pattern):
        train(f"continuous_{type(space).__name__}", Continuous)
    with pytest.raises(EnvMismatchError, match="agent 'b': action space .* is not Discrete"):
        xwq.check_env(Continuous())


@pytest.mark.parametrize("agents", [[], None])
def test_no_agents_is_refused(counting_env_class, agents):
    class Empty(counting_env_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.agents = agents

    pattern = r"(env Empty's env.agents is empty|env Empty: env.agents must be a list)"
    with pytest.raises(EnvMismatchError, match=pattern):
        ArrayEnv(Empty())
    with pytest.raises(EnvMismatchError, match=pattern):
        xwq.check_env(Empty())


def test_pettingzoo_style_space_methods_on_a_multi_agent_env(counting_env_class, train):
    class SpaceMethods(counting_env_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            del self.observation_space, self.action_space

        def observation_space(self, agent):
            return spaces.Box(-10, 10, (3,))

        def action_space(self, agent):
            return spaces.Discrete(3)

    env = ArrayEnv(SpaceMethods())
    assert env.spec.obs_dim == 3 and env.spec.n_actions == 3
    assert xwq.check_env(SpaceMethods())["n_actions"] == 3
    train("space_methods", SpaceMethods)


@pytest.mark.parametrize("info", [None, ["per", "agent"], "text"])
def test_info_that_is_not_a_dict_is_ignored_with_a_warning(counting_env_class, info, caplog):
    class OddInfo(counting_env_class):
        def step(self, actions):
            *rest, _ = super().step(actions)
            return (*rest, info)

    with caplog.at_level(logging.WARNING, logger="xwq.environment"):
        env = ArrayEnv(OddInfo())
        roll(env, 3)
    assert env.statistics == {}
    warned = f"step() returned info as {type(info).__name__}, not a dict"
    assert (warned in caplog.text) == (info is not None)
    summary = xwq.check_env(OddInfo())
    assert any(warned in note for note in summary["adaptations"]) == (info is not None)


def test_pettingzoo_aec_env_is_refused_with_the_parallel_fix():
    from pettingzoo.classic import rps_v2

    with pytest.raises(EnvMismatchError, match=r"a PettingZoo AEC env .*parallel_env\(\)"):
        as_multi_agent_env(rps_v2.env())


# --- 7. team reward mean over all agents ----------------------------------------------------
def test_team_reward_mean_divides_by_all_agents_even_when_some_have_left():
    env = ArrayEnv(as_multi_agent_env(Leaving()), team_reward="mean")
    env.reset()
    rewards = [env.step(np.array([1, 1, 1]))[3] for _ in range(4)]
    # every live agent earns 1.0: 'c' leaves after step 2; the mean stays over all 3 agents
    assert rewards == pytest.approx([1.0, 1.0, 2 / 3, 2 / 3])
    total = ArrayEnv(as_multi_agent_env(Leaving()), team_reward="sum")
    total.reset()
    assert [total.step(np.array([1, 1, 1]))[3] for _ in range(4)] == [3.0, 3.0, 2.0, 2.0]


# --- 8. time limits hidden in wrappers ------------------------------------------------------
class Leaving(ParallelEnv):
    """Three agents earning 1.0 a step; 'c' terminates at step 2 and leaves."""

    metadata = {"name": "leaving_v0"}
    possible_agents = ["a", "b", "c"]
    max_cycles = 6

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (1,), dtype=np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {}

    def step(self, actions):
        self.t += 1
        obs = {a: np.zeros(1, np.float32) for a in self.agents}
        terminated = {a: a == "c" and self.t >= 2 for a in self.agents}
        truncated = {a: self.t >= self.max_cycles for a in self.agents}
        rewards = dict.fromkeys(self.agents, 1.0)
        self.agents = [a for a in self.agents if not (terminated[a] or truncated[a])]
        return obs, rewards, terminated, truncated, {}


class Base:
    """The simulation object of a sisl/butterfly env: where ``max_cycles`` really lives."""

    def __init__(self, max_cycles):
        self.max_cycles = max_cycles


class Raw:
    """A raw AEC env holding its simulation in ``.env`` (PettingZoo's pursuit layout)."""

    possible_agents = ["p0", "p1"]

    def __init__(self, max_cycles=None, base_cycles=9):
        self.env = Base(base_cycles)
        if max_cycles is not None:
            self.max_cycles = max_cycles

    @property
    def unwrapped(self):
        return self


class AecWrapper:
    """An order-enforcing style wrapper: ``.env`` is the next one down; refuses private names
    as PettingZoo's wrappers do."""

    def __init__(self, env):
        self.env = env

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(f"accessing private attribute '{name}' is prohibited")
        raise AttributeError(name)


class Wrapped(ParallelEnv):
    """``aec_to_parallel``-style outer env: the AEC chain under ``.aec_env``."""

    metadata = {"name": "wrapped_v0"}

    def __init__(self, aec_env, grid_config=None):
        self.aec_env = aec_env
        self.possible_agents = ["p0", "p1"]
        if grid_config is not None:
            self.grid_config = grid_config

    def observation_space(self, agent):
        return spaces.Box(-1, 1, (2,), dtype=np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: np.zeros(2, np.float32) for a in self.agents}, {}

    def step(self, actions):
        self.t += 1
        obs = {a: np.zeros(2, np.float32) for a in self.agents}
        return (obs, dict.fromkeys(self.agents, 0.5), dict.fromkeys(self.agents, False),
                dict.fromkeys(self.agents, False), {})


class GymLike:
    """A single gym-style env object (reset and step), holding its config."""

    def __init__(self, grid_config):
        self.grid_config = grid_config

    def reset(self, seed=None):
        return None

    def step(self, actions):
        return None


class GridConfig:
    def __init__(self, max_episode_steps):
        self.max_episode_steps = max_episode_steps


def test_time_limit_found_down_the_wrapper_chain(train):
    # pursuit: parallel -> aec_env -> wrappers -> raw env -> its base env's max_cycles
    nested = Wrapped(AecWrapper(AecWrapper(Raw())))
    assert PettingZooEnv(nested).max_episode_steps == 9
    # a limit nearer the top wins over one further down
    assert PettingZooEnv(Wrapped(AecWrapper(Raw(max_cycles=7)))).max_episode_steps == 7
    # pogema: grid_config.max_episode_steps, on the gym env the ParallelEnv holds as .pogema
    assert PettingZooEnv(Wrapped(None, GridConfig(64))).max_episode_steps == 64
    pogema_like = Wrapped(None)
    pogema_like.pogema = GymLike(GridConfig(48))
    assert PettingZooEnv(pogema_like).max_episode_steps == 48
    # an explicit limit wins
    assert PettingZooEnv(nested, max_episode_steps=3).max_episode_steps == 3
    assert xwq.check_env(Wrapped(AecWrapper(Raw())))["max_episode_steps"] == 9
    runner_steps = train("wrapped_limit", lambda env_id, **kw: Wrapped(AecWrapper(Raw(**kw))),
                         env_kwargs={"base_cycles": 5})
    assert runner_steps is not None


def test_time_limit_search_survives_cycles_and_stops_at_its_depth():
    looped = Wrapped(AecWrapper(None))
    looped.aec_env.env = looped.aec_env  # a wrapper that is its own inner env
    assert PettingZooEnv(looped).max_episode_steps is None
    deep = Base(9)
    for _ in range(20):  # far deeper than any real wrapper chain
        deep = AecWrapper(deep)
    assert PettingZooEnv(Wrapped(deep)).max_episode_steps is None
    with pytest.raises(EnvMismatchError, match="has no time limit"):
        ArrayEnv(PettingZooEnv(Wrapped(deep)))
