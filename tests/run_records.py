"""Synthetic ``alti attribute`` records: every field a real run writes, random but reproducible.

Scores are random (ties included), some samples are misclassified, some unlabelled, and
with ``curves`` each record carries deletion curves in the shape ``alti attribute
--curves`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alti.faithfulness import Protocol

LABELS = ["negative", "positive"]
WORDS = "good bad film plot not dull warm funny the a , . acting story <b>&\"' ok".split()
BINS = [0.0, 0.01, 0.05, 0.1, 0.2, 0.5]


def curve(rng: np.random.Generator, start: float, falling: bool) -> dict:
    steps = np.sort(rng.uniform(0, 1, len(BINS) - 1))
    values = [start] + list((start - steps * start) if falling else (start * steps))
    score = float(sum(start - v for v in values[1:]) / len(values))
    aupc = float(np.trapezoid(values, BINS))
    return {"score": score, "aupc": aupc, "fractions": list(BINS), "values": [float(v) for v in values]}


def records(n: int = 24, methods=("alti", "rollout", "ig_dot"), curves: bool = True, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 9))))
        tokens = ["[CLS]", *words, "[SEP]"]
        p = float(rng.uniform(0.5, 1.0))
        index = int(rng.integers(0, 2))
        probabilities = [1 - p, p] if index == 1 else [p, 1 - p]
        gold = None if i % 7 == 6 else LABELS[index if rng.uniform() < 0.7 else 1 - index]
        scores = {}
        for method in methods:
            values = rng.integers(0, 4, size=len(tokens)).astype(float) / 4  # ties on purpose
            scores[method] = [float(-v if method == "ig_dot" and k % 2 else v) for k, v in enumerate(values)]
        record = {
            "id": str(i),
            "text": " ".join(words),
            "label": gold,
            "tokens": tokens,
            "input_ids": [101, *range(2000, 2000 + len(words)), 102],
            "special": [True] + [False] * len(words) + [True],
            "prediction": {
                "label": LABELS[index],
                "index": index,
                "probability": p,
                "probabilities": probabilities,
                "labels": LABELS,
            },
            "target": {"label": LABELS[index], "index": index},
            "foil": None,
            "explained": {"kind": "class", "position": 0, "quantity": "probability"},
            "target_position": 0,
            "scores": scores,
            "truncated": False,
            "model": "demo (all-MiniLM-L6-v2 + alti sentiment delta)",
            "settings": {m: {} for m in methods},
            "version": "0.1.0",
        }
        if curves:
            record["faithfulness"] = {
                "protocol": Protocol().to_dict(),
                "p_full": p,
                "methods": {
                    m: {"comprehensiveness": curve(rng, p, True), "sufficiency": curve(rng, p, False)} for m in methods
                },
            }
        out.append(record)
    return out


def write_run(path: Path, items: list[dict], tail: str = "") -> Path:
    """``items`` one per line, then ``tail`` (e.g. a damaged or cut-off line)."""
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in items) + tail, encoding="utf-8")
    return Path(path)
