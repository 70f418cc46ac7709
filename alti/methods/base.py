"""The method registry's shared types.

A method is described by a :class:`MethodInfo`.  The engine's registry (see
``alti.methods``) maps each name to its info and its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str  # "alti", "attention", "gradient" or "perturbation"
    signed: bool  # scores can be negative: diverging colour scale
    explains: str  # "representation" or "probability"
    matrix: bool  # has per-layer token-to-token matrices
    description: str
