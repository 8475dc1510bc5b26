"""Input scaling: a fixed affine map of observations and state, from the env's space bounds.

Networks fed raw pixels (0..255) or other large values train badly or diverge, so each input
feature x whose space has finite bounds [low, high] can enter the networks as
``(x - low) / (high - low)``, in [0, 1]. Which features are scaled is the config key
``input_normalization``:

- ``auto`` (default): a feature is scaled when its bounds are finite and either the data are
  integers (uint8 images and other integer spaces: always to [0, 1]) or the bounds reach
  outside [-10, 10]. Features already in a small range (MPE, predator-prey, the matrix game)
  and unbounded ones (SMAC) enter as they are.
- ``bounds``: every feature with finite bounds is scaled to [0, 1].
- ``none``: nothing is scaled.

A feature with ``low == high`` is shifted by ``low`` only; unbounded and padded features (a
heterogeneous agent's missing values) are left as they are.

The map is a :class:`InputNormalizer`: its offset and span are registered buffers, so it moves
to the policy's device and is saved with the model; a saved model loads with its own. It is
applied on the torch side only — the replay buffer keeps the env's values, in the env's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from xwq.environment.interfaces import compact_bounds

#: values of the config key ``input_normalization``
NORMALIZATION_MODES = ("auto", "bounds", "none")

#: under ``auto``, float features whose bounds lie within [-LIMIT, LIMIT] enter unscaled
AUTO_LIMIT = 10.0


def affine_from_bounds(low: np.ndarray, high: np.ndarray, integer: bool, mode: str
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(offset, span)`` (broadcast shapes of ``low``/``high``) so that
    ``(x - offset) / span`` maps the scaled features' ``[low, high]`` to ``[0, 1]``; identity
    (0, 1) for the others (module docstring). ``integer``: the data are integers."""
    if mode not in NORMALIZATION_MODES:
        raise ValueError(f"input normalization {mode!r}: choose one of {NORMALIZATION_MODES}")
    low, high = np.broadcast_arrays(np.asarray(low, np.float64), np.asarray(high, np.float64))
    scaled = np.isfinite(low) & np.isfinite(high) & (mode != "none")
    if mode == "auto" and not integer:
        scaled &= (low < -AUTO_LIMIT) | (high > AUTO_LIMIT)
    offset = np.where(scaled, low, 0.0)
    span = np.where(scaled & (high > low), high - low, 1.0)
    return offset, span


class InputNormalizer(nn.Module):
    """``x -> (x - offset) / span``, as float (any input dtype: uint8 observations come here
    unconverted). ``offset`` and ``span`` are buffers broadcastable to the input's trailing
    dimensions (``[n_agents, obs_dim]`` for observations, ``[state_dim]`` for the state).

    >>> norm = InputNormalizer(torch.tensor([0.0]), torch.tensor([255.0]))
    >>> norm(torch.tensor([0, 51, 255], dtype=torch.uint8))
    tensor([0.0000, 0.2000, 1.0000])
    """

    def __init__(self, offset: torch.Tensor | None = None, span: torch.Tensor | None = None
                 ) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(1) if offset is None
                             else torch.as_tensor(offset, dtype=torch.float32))
        self.register_buffer("span", torch.ones(1) if span is None
                             else torch.as_tensor(span, dtype=torch.float32))
        self._update_identity()

    @classmethod
    def from_bounds(cls, low: np.ndarray, high: np.ndarray, integer: bool, mode: str
                    ) -> InputNormalizer:
        """The normaliser ``mode`` gives features with these bounds (:func:`affine_from_bounds`),
        its buffers in their smallest broadcastable shape."""
        offset, span = affine_from_bounds(low, high, integer, mode)
        offset, span = compact_bounds(offset, span, offset.shape)
        if offset is None:  # cannot happen with finite values; keeps the types honest
            return cls()
        return cls(torch.from_numpy(offset).float(), torch.from_numpy(span).float())

    def _update_identity(self) -> None:
        # most envs need no scaling: skip the arithmetic (and keep their numbers bit for bit)
        self.identity = bool((self.offset == 0).all() and (self.span == 1).all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.span.dtype)
        return x if self.identity else (x - self.offset) / self.span

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any
                              ) -> None:
        """Take the saved offset and span whatever their shape (a saved model keeps its own
        scaling); a checkpoint from before input scaling existed fed raw inputs: identity."""
        device, dtype = self.span.device, self.span.dtype
        for name in ("offset", "span"):
            saved = state_dict.get(prefix + name)
            identity = torch.zeros(1) if name == "offset" else torch.ones(1)
            value = identity if saved is None else saved
            setattr(self, name, value.detach().to(device, dtype).clone())
        self._update_identity()

    def extra_repr(self) -> str:
        return "identity" if self.identity else f"offset {tuple(self.offset.shape)}"
