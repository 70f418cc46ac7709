"""The method registry's shared types.

A method is described by a :class:`alti.catalog.MethodInfo`; the engine's registry
(``alti.methods``) maps each name to its info and its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MethodOutput:
    """What a ``"model"`` method may return instead of bare scores.

    ``scores`` (n,); ``layers`` (L, n, n) per-layer matrices for the layer
    slider, or None; ``settings`` are added to the method's recorded settings.
    """

    scores: Any
    layers: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
