"""Serial and subprocess vectorisation of dict-API envs (through :class:`ArrayEnv`).

Both give identical data for identical seeds: the subprocess workers run the very same
:class:`_EnvSlot` code as the serial loop, one slot per env.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence

import numpy as np

from xwq.environment.adapters.array_env import ArrayEnv
from xwq.environment.interfaces import EnvSpec, StepResult, VecEnv

EnvFactory = Callable[[], ArrayEnv]


class _EnvSlot:
    """One env with autoreset: returns (next_obs, state, avail, r, term, trunc, final...)."""

    def __init__(self, factory: EnvFactory) -> None:
        self.env = factory()

    def reset(self, seed: int | None) -> tuple:
        return self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> tuple:
        obs, state, avail, reward, term, trunc = self.env.step(actions)
        final = (obs, state, avail)
        if term or trunc:
            obs, state, avail = self.env.reset(seed=None)
        return obs, state, avail, reward, term, trunc, *final


def _stack(results: Sequence[tuple]) -> StepResult:
    columns = list(zip(*results))
    return StepResult(
        obs=np.stack(columns[0]), state=np.stack(columns[1]), avail=np.stack(columns[2]),
        reward=np.asarray(columns[3], dtype=np.float32),
        terminated=np.asarray(columns[4], dtype=bool),
        truncated=np.asarray(columns[5], dtype=bool),
        final_obs=np.stack(columns[6]), final_state=np.stack(columns[7]),
        final_avail=np.stack(columns[8]), info={},
    )


class SerialVecEnv(VecEnv):
    """K envs stepped one after another in this process."""

    def __init__(self, factories: Sequence[EnvFactory]) -> None:
        self.slots = [_EnvSlot(f) for f in factories]
        self.num_envs = len(self.slots)
        self.spec: EnvSpec = self.slots[0].env.spec

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = [s.reset(None if seed is None else seed + k) for k, s in enumerate(self.slots)]
        obs, state, avail = zip(*out)
        return np.stack(obs), np.stack(state), np.stack(avail)

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        return _stack([slot.step(actions[k]) for k, slot in enumerate(self.slots)])

    def render(self, index: int = 0) -> np.ndarray | None:
        return self.slots[index].env.render()

    def close(self) -> None:
        for slot in self.slots:
            slot.env.close()


def _worker(remote, parent_remote, factory: EnvFactory) -> None:
    parent_remote.close()
    try:
        slot = _EnvSlot(factory)
        remote.send(("ok", slot.env.spec))
        while True:
            command, data = remote.recv()
            if command == "step":
                remote.send(("ok", slot.step(data)))
            elif command == "reset":
                remote.send(("ok", slot.reset(data)))
            elif command == "render":
                remote.send(("ok", slot.env.render()))
            elif command == "close":
                slot.env.close()
                remote.send(("ok", None))
                break
    except KeyboardInterrupt:
        pass
    except Exception as error:  # report to the parent instead of dying silently
        remote.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        remote.close()


class SubprocVecEnv(VecEnv):
    """K envs, each in its own worker process (worth it only for slow envs)."""

    def __init__(self, factories: Sequence[EnvFactory]) -> None:
        methods = mp.get_all_start_methods()
        context = mp.get_context("fork" if "fork" in methods else "spawn")
        self.remotes, self.processes = [], []
        self.closed = False
        for factory in factories:
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, parent, factory), daemon=True)
            process.start()
            child.close()
            self.remotes.append(parent)
            self.processes.append(process)
        self.num_envs = len(self.remotes)
        specs = [self._receive(r) for r in self.remotes]
        self.spec: EnvSpec = specs[0]

    def _receive(self, remote):
        status, payload = remote.recv()
        if status == "error":
            self.close()
            raise RuntimeError(f"an environment worker failed:\n{payload}")
        return payload

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for k, remote in enumerate(self.remotes):
            remote.send(("reset", None if seed is None else seed + k))
        obs, state, avail = zip(*[self._receive(r) for r in self.remotes])
        return np.stack(obs), np.stack(state), np.stack(avail)

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        for k, remote in enumerate(self.remotes):
            remote.send(("step", actions[k]))
        return _stack([self._receive(r) for r in self.remotes])

    def render(self, index: int = 0) -> np.ndarray | None:
        self.remotes[index].send(("render", None))
        return self._receive(self.remotes[index])

    def close(self) -> None:
        if getattr(self, "closed", True):
            return
        self.closed = True
        for remote in self.remotes:
            try:
                remote.send(("close", None))
                remote.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()

    def __del__(self) -> None:
        self.close()
