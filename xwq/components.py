"""Importing this module registers every built-in component in its registry (xwq.registry):
agents, learners, policies, representations and environments. Whatever looks names up in a
registry imports it first (the Runner, ``xwq.REGISTRY_*``)."""

import xwq.agents  # noqa: F401
import xwq.environment  # noqa: F401
import xwq.learners  # noqa: F401
import xwq.policies  # noqa: F401
import xwq.representations  # noqa: F401
