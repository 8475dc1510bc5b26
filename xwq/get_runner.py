"""``get_runner``: config, envs and agents assembled from three names."""

from __future__ import annotations

import os
from typing import Any

from xwq.common.config import get_configs
from xwq.common.process import default_logging
from xwq.runners.runner import Runner


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
    default_logging()
    config = get_configs(file_dir=config_path, method=method, env=env, env_id=env_id,
                         overrides=overrides)
    return Runner(config, is_test=is_test)
