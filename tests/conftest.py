"""Shared test fixtures: small custom environments and quiet, isolated run folders."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("throughput")``: a script of benchmarks/ imported as a module (they
    are scripts run by path, not a package, and import each other as siblings)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def run_dirs(tmp_path):
    """Config overrides that keep logs, models and results inside the test's tmp folder."""
    return {"log_dir": str(tmp_path / "logs"), "model_dir": str(tmp_path / "models"),
            "results_dir": str(tmp_path / "results"), "progress_bar": False}


class CountingEnv:
    """A tiny deterministic-by-seed MultiAgentEnv used across tests (defined lazily so the
    import of xwq happens inside tests)."""


def make_counting_env_class():
    from xwq import MultiAgentEnv

    class Counting(MultiAgentEnv):
        """2 agents, obs = [t, own index, seed noise]; reward = number of agents choosing 1;
        action 2 is unavailable to agent 'b'; episode ends (terminated) after ``length`` steps,
        or truncated by the 6-step limit."""

        def __init__(self, env_id: str = "x", length: int = 4, **_):
            self.agents = ["a", "b"]
            self.observation_space = {a: spaces.Box(-10, 10, (3,)) for a in self.agents}
            self.action_space = {a: spaces.Discrete(3) for a in self.agents}
            self.state_space = spaces.Box(-10, 10, (4,))
            self.max_episode_steps = 6
            self.length = length
            self.rng = np.random.default_rng()

        def _obs(self):
            return {a: np.array([self.t, i, self.noise], np.float32)
                    for i, a in enumerate(self.agents)}

        def reset(self, seed=None):
            if seed is not None:
                self.rng = np.random.default_rng(seed)
            self.t = 0
            self.noise = float(self.rng.random())
            return self._obs(), {}

        def step(self, actions):
            self.t += 1
            self.noise = float(self.rng.random())
            reward = float(sum(u == 1 for u in actions.values()))
            done = self.t >= self.length
            return (self._obs(), {a: reward for a in self.agents},
                    {a: done for a in self.agents}, {a: False for a in self.agents}, {})

        def state(self):
            return np.array([self.t, self.noise, 0.0, 1.0], np.float32)

        def avail_actions(self):
            return {"a": np.array([1, 1, 1], bool), "b": np.array([1, 1, 0], bool)}

    return Counting


@pytest.fixture
def counting_env_class():
    return make_counting_env_class()


def make_random_length_env_class(counting_env_class):
    class RandomLength(counting_env_class):
        """Episodes of 1 to 5 steps, drawn from the env's RNG at reset: envs whose episodes end
        at different times, so collection and stopping rules are put to the test. Counts its
        real ``step`` calls in the class attribute ``calls``."""

        calls = 0

        def reset(self, seed=None):
            result = super().reset(seed)
            self.length = int(self.rng.integers(1, 6))
            return result

        def step(self, actions):
            type(self).calls += 1
            return super().step(actions)

    return RandomLength


@pytest.fixture
def random_length_env_class(counting_env_class):
    return make_random_length_env_class(counting_env_class)


def _sigint_handler() -> tuple:
    """The SIGINT handler as Python and as the C library see it (a library that installs its
    own with sigaction is invisible to ``signal.getsignal``)."""
    import ctypes
    import signal

    class Sigaction(ctypes.Structure):  # glibc's struct sigaction: the handler comes first
        _fields_ = [("handler", ctypes.c_void_p), ("rest", ctypes.c_byte * 256)]

    action = Sigaction()
    try:
        ctypes.CDLL(None).sigaction(signal.SIGINT, None, ctypes.byref(action))
    except (OSError, AttributeError):  # not glibc: the Python view only
        return (signal.getsignal(signal.SIGINT),)
    return signal.getsignal(signal.SIGINT), action.handler


@pytest.fixture(autouse=True)
def _sigint_stays_pythons(request):
    """Ctrl-C must keep raising KeyboardInterrupt: a test (or a library it loads) that leaves
    another SIGINT handler behind is reported, and the handler put back for the next tests."""
    import signal
    import warnings

    before = _sigint_handler()
    yield
    if _sigint_handler() != before:
        signal.signal(signal.SIGINT, before[0])
        warnings.warn(f"{request.node.nodeid} left a different SIGINT handler behind",
                      stacklevel=1)
