"""alti: Aggregation of Layer-wise Token-to-token Interactions for Transformer classifiers.

``import alti`` stays cheap: the engine (and torch) loads on first use of
``alti.Explainer``.
"""

from __future__ import annotations

import importlib
from importlib import metadata

try:  # the one version number is pyproject.toml's, as installed
    __version__ = metadata.version("alti")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "Explainer": "alti.explainer",
    "Explanation": "alti.results",
    "Prediction": "alti.results",
    "AltiError": "alti.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alti' has no attribute {name!r}")
