"""Subprocess vectorisation of dict-API envs: each of the K :class:`ArrayEnv` in its own worker.

The same shape contract and data as :class:`SerialVecEnv` for the same seeds: every worker runs
the very :class:`EnvSlot` code of the serial loop, one slot per env. Worth it only for slow envs.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import traceback
from collections.abc import Sequence

import numpy as np

from xwq.common.tracebacks import EnvWorkerError, error_line, raised_by_user_code
from xwq.environment.interfaces import EnvSpec, StepResult, VecEnv, per_env_seeds
from xwq.environment.vector.serial import EnvFactory, EnvSlot, stack_results
from xwq.errors import EnvMismatchError, XwqError


def _worker(remote, parent_remote, factory: EnvFactory) -> None:
    parent_remote.close()
    try:
        slot = EnvSlot(factory)
        remote.send(("ok", slot.env.spec))
        while True:
            command, data = remote.recv()
            if command == "step":
                remote.send(("ok", slot.step(*data)))
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
    except XwqError as error:  # a user-facing error (the env broke its contract): as it is
        remote.send(("xwq_error", _picklable(error)))
    except Exception as error:  # report to the parent instead of dying silently
        user_line = error_line(error) if raised_by_user_code(error) else None
        remote.send(("error", (f"{type(error).__name__}: {error}\n{traceback.format_exc()}",
                               user_line)))
    finally:
        remote.close()


def _picklable(error: XwqError) -> XwqError | str:
    """The error itself if it survives the pipe, else its one-line message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # an exception class whose constructor takes other arguments
        return f"{type(error).__name__}: {error}"
    return error


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
        if status == "xwq_error":  # the one-line error the serial vec env would have raised
            self.close()
            if isinstance(payload, XwqError):
                raise payload
            raise EnvMismatchError(payload)
        if status == "error":
            self.close()
            text, user_line = payload
            raise EnvWorkerError(f"an environment worker failed:\n{text}", user_line)
        return payload

    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seeds = per_env_seeds(seed, self.num_envs)
        for k, remote in enumerate(self.remotes):
            remote.send(("reset", seeds[k]))
        obs, state, avail = zip(*[self._receive(r) for r in self.remotes])
        return np.stack(obs), np.stack(state), np.stack(avail)

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        actions = np.asarray(actions)
        seeds = per_env_seeds(reset_seeds, self.num_envs)
        for k, remote in enumerate(self.remotes):
            remote.send(("step", (actions[k], seeds[k])))
        return stack_results([self._receive(r) for r in self.remotes])

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
