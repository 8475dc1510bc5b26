"""The concrete environments; importing this package registers each of them.

Each module registers its own entries with decorators: ``REGISTRY_ENV[name]`` (a dict-API
factory) and, for a native vectorised version, ``REGISTRY_NATIVE_ENV[name]``.

- :mod:`.matrix_game`: the WQMIX paper's one-step matrix game (``"matrix_game"``, both);
- :mod:`.predator_prey`: predator-prey with punishment (``"predator_prey"``, both);
- :mod:`.mpe`: the mpe2 Multi-Agent Particle Environments through PettingZoo (``"mpe"``);
- :mod:`.mpe_native`: ``simple_spread_v3`` in numpy (``"mpe"``, native).
"""

from xwq.environment.envs import matrix_game, mpe, mpe_native, predator_prey  # noqa: F401
