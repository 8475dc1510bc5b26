"""Process-wide settings of a run, applied once at its entry point, before its envs are built.

torch's thread count, the global random seeds and the logging handler belong to the process, not
to an agent: :func:`setup_process` sets them when a run starts (``get_runner(...).run()``,
``benchmark()``, a sweep's worker), so building a second agent in a process changes nothing
global. The device is checked here too, so a bad ``device`` fails before any env is built.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from xwq.common.seeding import set_seed
from xwq.errors import ConfigError


class _FallbackHandler(logging.StreamHandler):
    """Prints xwq's records only while the root logger has no handler of its own.

    A package imported later may configure the root logger (gfootball's absl does when its env
    is built); from then on the record reaches the user through the root's handler alone, not
    twice.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def default_logging() -> None:
    """Show xwq's INFO messages (results, saved paths) unless the user configured logging."""
    package_logger = logging.getLogger("xwq")
    if not package_logger.handlers and not logging.getLogger().handlers:
        handler = _FallbackHandler()
        handler.setFormatter(logging.Formatter("[xwq] %(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.INFO)


def resolve_device(name: str) -> torch.device:
    """The torch device of config key ``device``; ConfigError if it is not one or is absent."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"config key 'device' = {name!r} is not a torch device; use cpu, "
                          "cuda or cuda:<index>") from error
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"config key 'device' = {name!r}: xwq runs on cpu or cuda "
                          "(cuda:<index>) only")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"config key 'device' = {name!r} but no CUDA device is available "
                              "to torch (a CPU-only build, or no GPU); use device: cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"config key 'device' = {name!r} but torch sees "
                              f"{torch.cuda.device_count()} CUDA device(s); use cuda:0 .. "
                              f"cuda:{torch.cuda.device_count() - 1}")
    return device


def setup_process(config: Any) -> torch.device:
    """Check the device, set torch's CPU threads (``threads``) and seed python, numpy and torch
    (``seed``); returns the device. Call once per run, before building its envs."""
    device = resolve_device(config.device)
    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    return device
