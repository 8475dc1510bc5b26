"""``get_runner``: config, envs and agents assembled from three names."""

from __future__ import annotations

import logging
import os
from typing import Any

from xwq.common.config import get_configs
from xwq.runners.runner import Runner


def _default_logging() -> None:
    """Show xwq's INFO messages (results, saved paths) unless the user configured logging."""
    package_logger = logging.getLogger("xwq")
    if not package_logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[xwq] %(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.INFO)


def get_runner(method: str, env: str, env_id: str, config_path: str | os.PathLike | None = None,
               is_test: bool = False, **overrides: Any) -> Runner:
    """Build the runner for ``method`` on ``env``/``env_id``.

    Args:
        method: iql, vdn, qmix, wqmix (OW), cw_qmix or ow_qmix.
        env: a registered env name (``xwq.REGISTRY_ENV``), e.g. ``"mpe"``.
        env_id: the scenario, e.g. ``"simple_spread_v3"``.
        config_path: a YAML file overriding the packaged defaults.
        is_test: ``run()`` then loads the trained model and plays greedy episodes.
        overrides: config keys, applied last and validated like file values.

    Example (trains for 2,000 env steps)::

        runner = get_runner("wqmix", "mpe", "simple_spread_v3", running_steps=2000)
        runner.run()
    """
    _default_logging()
    config = get_configs(file_dir=config_path, method=method, env=env, env_id=env_id,
                         overrides=overrides)
    return Runner.build(config, is_test=is_test)
