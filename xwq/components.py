"""Importing this module registers every component in its registry (xwq.registry): the built-in
agents, learners, policies, representations and environments, and the envs that installed
packages declare under the ``xwq.envs`` entry-point group. Whatever looks names up in a registry
imports it first (the Runner, ``xwq.REGISTRY_*``).

A package makes its envs visible to ``get_runner`` and the ``xwq`` command, without any import
by the user, with an entry point per env in its packaging metadata, e.g. in pyproject.toml::

    [project.entry-points."xwq.envs"]
    lbf = "my_package.envs:make_lbf"     # factory(env_id, **env_kwargs)

The target is imported only when that env is first used (a lazy registry entry).
"""

import importlib.metadata
import logging

import xwq.agents  # noqa: F401
import xwq.environment  # noqa: F401
import xwq.learners  # noqa: F401
import xwq.policies  # noqa: F401
import xwq.representations  # noqa: F401
from xwq.registry import REGISTRY_ENV

ENTRY_POINT_GROUP = "xwq.envs"

logger = logging.getLogger(__name__)


def register_entry_point_envs() -> list[str]:
    """Register every ``xwq.envs`` entry point not registered yet; returns their names."""
    added = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in REGISTRY_ENV:
            logger.debug("entry point env %r: the name is taken; keeping the registered one",
                         entry.name)
            continue
        REGISTRY_ENV.register_lazy(entry.name, entry.value,
                                   install=f"(declared by the {ENTRY_POINT_GROUP} entry point "
                                           f"{entry.name} = {entry.value})")
        added.append(entry.name)
    return added


register_entry_point_envs()
