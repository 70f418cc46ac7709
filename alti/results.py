"""Plain-data results of the engine: predictions and explanations.

Everything here is numpy and builtins, so the TUI and the exporters can use it
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    label: str
    index: int
    probabilities: np.ndarray  # (num_labels,)
    labels: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": int(self.index),
            "probabilities": [float(p) for p in self.probabilities],
            "labels": list(self.labels),
        }


@dataclass
class Explanation:
    """One input explained by one or more methods.

    ``scores[m]`` has one value per token; ``layers[m]`` holds the per-layer
    token-to-token matrices (L, n, n) of the matrix methods.  ``target_position``
    is the row the attribution is read from (0 for ``[CLS]``/``<s>``, the
    ``[MASK]`` position for masked-LM tasks).  ``special`` marks tokens that
    deletion curves never remove.
    """

    text: str
    tokens: list[str]
    input_ids: list[int]
    prediction: Prediction
    scores: dict[str, np.ndarray]
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    target_position: int = 0
    special: np.ndarray | None = None
    truncated: bool = False
    model_name: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = ""

    @property
    def methods(self) -> list[str]:
        return list(self.scores)

    def rolled_out(self, method: str, upto: int | None = None) -> np.ndarray:
        """``C^upto @ ... @ C^1`` of a matrix method: (n, n), row i = what token i
        is made of after layer ``upto`` (1-based; default: all layers)."""
        try:
            layers = self.layers[method]
        except KeyError:
            raise KeyError(
                f"no per-layer matrices for {method!r}; have: {', '.join(self.layers)}"
            ) from None
        upto = len(layers) if upto is None else upto
        if not 1 <= upto <= len(layers):
            raise ValueError(f"upto must be between 1 and {len(layers)}, not {upto}")
        result = layers[0]
        for layer in layers[1:upto]:
            result = layer @ result
        return result

    def to_dict(self, layers: bool = False) -> dict[str, Any]:
        """Plain JSON-able data; per-layer matrices (L x n x n lists) only if ``layers``."""
        data: dict[str, Any] = {
            "version": self.version,
            "model": self.model_name,
            "text": self.text,
            "tokens": list(self.tokens),
            "input_ids": [int(i) for i in self.input_ids],
            "special": [bool(s) for s in self.special] if self.special is not None else None,
            "truncated": bool(self.truncated),
            "target_position": int(self.target_position),
            "prediction": self.prediction.to_dict(),
            "settings": self.settings,
            "attributions": {m: [float(v) for v in s] for m, s in self.scores.items()},
        }
        if layers:
            data["layers"] = {m: np.asarray(v, dtype=float).tolist() for m, v in self.layers.items()}
        return data
