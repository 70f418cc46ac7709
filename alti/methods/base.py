"""The method registry's shared types.

A method is described by a :class:`MethodInfo`.  The engine's registry (see
``alti.methods``) maps each name to its info and its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str  # "alti", "attention", "logit", "decompx", "value_zeroing", "gradient" or "perturbation"
    signed: bool  # scores can be negative: diverging colour scale
    explains: str  # "representation" or "probability"
    matrix: bool  # has per-layer token-to-token matrices
    description: str
    #: the per-layer matrices already relate every token to the input tokens (DecompX's parts):
    #: shown as they are, never multiplied together like the mixing matrices of ALTI
    cumulative: bool = False


@dataclass
class MethodOutput:
    """What a ``"model"`` method may return instead of bare scores.

    ``scores`` (n,); ``layers`` (L, n, n) per-layer matrices for the layer
    slider, or None; ``settings`` are added to the method's recorded settings.
    """

    scores: Any
    layers: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
