"""The concrete environments; importing this package registers each of them.

Each module registers its own entries with decorators: ``REGISTRY_ENV[name]`` (a dict-API
factory) and, for a native vectorised version, ``REGISTRY_NATIVE_ENV[name]``.

- :mod:`.matrix_game`: the WQMIX paper's one-step matrix game (``"matrix_game"``, both);
- :mod:`.predator_prey`: predator-prey with punishment (``"predator_prey"``, both);
- :mod:`.mpe`: the mpe2 Multi-Agent Particle Environments through PettingZoo (``"mpe"``);
- :mod:`.mpe_native`: ``simple_spread_v3`` in numpy (``"mpe"``, native);
- :mod:`.sc2`: SMAC and SMACv2 through oxwhirl's packages and StarCraft II (``"sc2"``);
- :mod:`.smax`: JaxMARL's SMAX, K battles in one jitted call (``"smax"``, native only);
- :mod:`.football`: Google Research Football academy scenarios (``"football"``).

The optional packages (smac, jaxmarl, gfootball) are imported only when an env is built or
checked, so registering them costs nothing.
"""

from xwq.environment.envs import (  # noqa: F401
    football,
    matrix_game,
    mpe,
    mpe_native,
    predator_prey,
    sc2,
    smax,
)
