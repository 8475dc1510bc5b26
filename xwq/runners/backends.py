"""A sweep backend by name: ``"local"`` (one run after another, or ``workers`` local processes)
or ``"ray"`` (:class:`xwq.runners.ray_backend.RayBackend`); what ``runner.benchmark(backend=...)``
and ``xwq benchmark|sweep --backend`` take."""

from __future__ import annotations

from typing import Any

from xwq.errors import UsageError
from xwq.runners.process_backend import ProcessBackend, worker_count
from xwq.runners.ray_backend import RayBackend
from xwq.runners.sweep import Backend, SerialBackend

BACKENDS = ("local", "ray")


def make_backend(backend: str | Backend | None, runs: int, workers: int = 1,
                 address: str | None = None, **ray_options: Any) -> Backend:
    """The backend for ``runs`` runs: a backend object is returned as it is; ``None`` or
    ``"local"``: :class:`ProcessBackend` with up to ``workers`` processes (serial for one);
    ``"ray"``: a :class:`RayBackend` at ``address`` (Ray schedules by resources, so ``workers``
    must stay 1: set ``ray_num_cpus`` instead)."""
    worker_count(workers)
    if backend is None or backend == "local":
        if address is not None:
            raise UsageError("--address / address= is for the ray backend")
        return ProcessBackend(min(workers, runs)) if workers > 1 and runs > 1 else SerialBackend()
    if isinstance(backend, str) and backend != "ray":
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)} "
                         "or pass a backend object")
    if workers != 1:
        raise UsageError("workers applies to the local backend; on Ray each run takes "
                         "ray_num_cpus CPUs and Ray runs as many at once as the cluster holds")
    if backend == "ray":
        return RayBackend(address=address, **ray_options)
    if not callable(getattr(backend, "run", None)):
        raise UsageError(f"backend must be 'local', 'ray' or an object with a run(specs, "
                         f"progress) method, got {backend!r}")
    return backend
