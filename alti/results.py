"""Plain-data results of the engine: predictions and explanations.

Everything here is numpy and builtins, so the TUI and the exporters can use it
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from alti.core.rollout import rollout

if TYPE_CHECKING:
    from alti.targets import Target


@dataclass(eq=False)  # arrays inside, as in Explanation
class Prediction:
    """What the model predicts at the row explained.

    A classifier: ``labels`` are its classes, ``probabilities`` one per class,
    ``index`` the predicted class.  A language model: ``labels`` and
    ``probabilities`` are the most likely tokens (``ids`` their vocabulary
    ids, best first) and ``index`` is the predicted token's id.
    """

    label: str
    index: int
    probabilities: np.ndarray  # (num_labels,) or (top,)
    labels: list[str]
    ids: list[int] | None = None  # vocabulary ids of ``labels``, for token predictions

    @property
    def chosen(self) -> int:
        """The predicted entry's position in ``labels`` / ``probabilities``."""
        return self.index if self.ids is None else self.ids.index(self.index)

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.chosen])

    def to_dict(self) -> dict[str, Any]:
        if self.ids is not None:
            return {
                "label": self.label,
                "index": int(self.index),
                "probability": self.probability,
                "top": [
                    {"token": token, "id": int(i), "probability": float(p)}
                    for token, i, p in zip(self.labels, self.ids, self.probabilities)
                ],
            }
        return {
            "label": self.label,
            "index": int(self.index),
            "probability": self.probability,
            "probabilities": [float(p) for p in self.probabilities],
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        if "top" in data:
            top = data["top"]
            return cls(
                label=data["label"],
                index=int(data["index"]),
                probabilities=np.asarray([t["probability"] for t in top], dtype=np.float64),
                labels=[t["token"] for t in top],
                ids=[int(t["id"]) for t in top],
            )
        return cls(
            label=data["label"],
            index=int(data["index"]),
            probabilities=np.asarray(data["probabilities"], dtype=np.float64),
            labels=list(data["labels"]),
        )


@dataclass(frozen=True)
class Segment:
    """A span of the prompt's tokens (``start`` .. ``end``, end exclusive) and its text; its
    score for a method is the sum of its tokens' scores."""

    text: str
    start: int
    end: int

    def score(self, scores: np.ndarray) -> float:
        return float(np.sum(scores[self.start : self.end]))


@dataclass(eq=False)  # arrays inside: two explanations are the same only if they are one object
class Explanation:
    """One input explained by one or more methods.

    ``scores[m]`` has one value per token; ``layers[m]`` holds the per-layer
    token-to-token matrices (L, n, n) of the matrix methods.  ``target_position``
    is the row the attribution is read from (0 for ``[CLS]``/``<s>``, the last
    token of a causal LM or decoder classifier, the ``[MASK]`` position for
    masked-LM tasks; None for the mean of every row).  ``special`` marks tokens
    that deletion curves never remove.  ``target`` is what was explained
    (an :class:`alti.targets.Target`); ``logit_terms`` the parts of the
    explained logit that belong to no token (ALTI-Logit, GUIDE §1.6).

    A whole answer (an :class:`alti.targets.AnswerTarget`, GUIDE §1.8) has ``tokens`` over
    the prompt and the answer; ``steps[m]`` (k, n) holds each answer token's row (step i
    reads the ``start + i`` tokens before it, the rest are zero) and ``scores[m]`` the whole
    answer's (the mean of the steps for share methods, their sum for logit methods, the
    gradient of the answer's log-probability for gradient methods); ``segments`` are the
    prompt's spans, when asked for.
    """

    text: str
    tokens: list[str]
    input_ids: list[int]
    prediction: Prediction
    scores: dict[str, np.ndarray]
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    target_position: int | None = 0
    special: np.ndarray | None = None
    truncated: bool = False
    model_name: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = ""
    target: Target | None = None
    logit_terms: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # one-line remarks for the user (e.g. a target's first piece)
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    segments: list[Segment] | None = None
    #: a whole answer's prediction at each step's row (the model's top tokens there), where computed
    step_predictions: list[Prediction] | None = None

    @property
    def methods(self) -> list[str]:
        return list(self.scores)

    def rolled_out(self, method: str, upto: int | None = None) -> np.ndarray:
        """``C^upto @ ... @ C^1`` of a matrix method: (n, n), row i = what token i
        is made of after layer ``upto`` (1-based; default: all layers)."""
        try:
            layers = self.layers[method]
        except KeyError:
            raise KeyError(f"no per-layer matrices for {method!r}; have: {', '.join(self.layers)}") from None
        upto = len(layers) if upto is None else upto
        if not 1 <= upto <= len(layers):
            raise ValueError(f"upto must be between 1 and {len(layers)}, not {upto}")
        return rollout(layers, upto)

    @property
    def answer_steps(self) -> int:
        """How many answer tokens a whole answer's explanation has (0 for any other)."""
        answer = None if self.target is None else self.target.answer(self.tokens)
        return 0 if answer is None else len(answer["ids"])

    def step(self, i: int) -> Explanation:
        """Step ``i`` of a whole answer as the explanation of that one next token: the tokens
        before it, each method's row of that step, the per-layer matrices cut to those tokens
        (a causal model's rows never read later tokens), the segments kept.  Methods without
        steps (gradients explain the whole answer only) are left out.  The prediction is the
        model's top tokens at that row where the explanation has them (``step_predictions``;
        a run file records the first step's only), else the answer token itself."""
        target = self.target
        if target is None or not self.answer_steps:
            raise ValueError("only a whole answer's explanation has steps")
        next_token = target.step(i)  # type: ignore[attr-defined]
        length = int(next_token.position) + 1
        if self.step_predictions is not None:
            prediction = self.step_predictions[i]
        elif i == 0 and self.prediction.ids is not None:
            prediction = self.prediction
        else:
            prediction = Prediction(
                next_token.label, next_token.index, np.array([np.nan]), [next_token.label], [next_token.index]
            )
        return Explanation(
            text=self.text,
            tokens=self.tokens[:length],
            input_ids=self.input_ids[:length],
            prediction=prediction,
            scores={m: np.asarray(rows[i][:length]) for m, rows in self.steps.items()},
            layers={m: v[:, :length, :length] for m, v in self.layers.items()},
            target_position=length - 1,
            special=None if self.special is None else self.special[:length],
            truncated=self.truncated,
            model_name=self.model_name,
            settings=self.settings,
            version=self.version,
            target=next_token,
            segments=self.segments,
        )

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
            "target_position": None if self.target_position is None else int(self.target_position),
            "prediction": self.prediction.to_dict(),
            "settings": self.settings,
            "attributions": {m: [float(v) for v in s] for m, s in self.scores.items()},
        }
        if self.target is not None:
            target = self.target.to_dict()
            data["explained"] = {k: v for k, v in target.items() if k not in ("target", "foil")}
            data["target"] = target["target"]
            data["foil"] = target["foil"]
            scored = self.target.scored(len(self.tokens))
            data["attributions"] = {m: values[:scored] for m, values in data["attributions"].items()}
            answer = self.target.answer(self.tokens)
            if answer is not None:
                data["answer"] = answer
                data["steps"] = {
                    m: [[float(v) for v in row[: answer["start"] + i]] for i, row in enumerate(values)]
                    for m, values in self.steps.items()
                }
        if self.segments is not None:
            data["segments"] = [
                {
                    "text": s.text,
                    "start": s.start,
                    "end": s.end,
                    "scores": {m: s.score(values) for m, values in self.scores.items()},
                }
                for s in self.segments
            ]
        if self.logit_terms is not None:
            data["logit_terms"] = self.logit_terms
        if layers:
            data["layers"] = {m: np.asarray(v, dtype=float).tolist() for m, v in self.layers.items()}
        return data
