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
