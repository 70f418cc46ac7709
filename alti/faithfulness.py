"""Faithfulness by deletion: comprehensiveness and sufficiency curves.

Rank the non-special tokens by a method's scores (highest first, ties in
reading order), delete tokens, re-run the model and read the explained
quantity of the target (:mod:`alti.targets`): the probability of the class
predicted on the full input, of the target token of a causal LM, or the
logit difference against a foil.

- *Comprehensiveness*: delete the top-k tokens.  Point 0 is ``p(full)``.
- *Sufficiency*: keep only the top-k tokens.  Point 0 is the probability with
  only the special tokens left.

Steps are bins (1, 5, 10, 20, 50 % of the n non-special tokens,
``k = ceil(q * n)``) or one token at a time up to a limit.  Deletion removes
tokens from the id sequence (default) or replaces them by the mask token.
Special tokens (``[CLS]``, ``[SEP]``, ``[MASK]`` of a masked-LM task, the
last token a causal LM predicts from) are never deleted.  The monotone envelope (default) keeps the running minimum of
the comprehensiveness curve and the running maximum of the sufficiency curve;
the raw curve is always kept too.

Scores of a curve: ``score = sum_{steps k > 0} (p(full) - curve[k]) /
(number of steps + 1)`` (the paper's table score: with the five bins the sum
is divided by six) and ``aupc`` = the area under the curve (trapezoids) over
``k / n``, the fraction of the tokens deleted (comprehensiveness) or kept
(sufficiency).  Higher comprehensiveness and lower sufficiency scores are
better; lower comprehensiveness AUPC and higher sufficiency AUPC are better.

:func:`sample_points` is a generator that yields one :class:`CurvePoint` at a
time, so callers can show progress and stop early; all perturbed inputs of a
sample are de-duplicated and run as padded batches through
``explainer.quantities``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from alti.errors import InputError
from alti.targets import ClassTarget, Target, as_target

BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
METRICS = ("comprehensiveness", "sufficiency")
#: The scores of a method's curves averaged over a dataset, as tables show them:
#: key (a :class:`MethodScores` field), heading, whether higher is better.
SCORE_COLUMNS = (
    ("comprehensiveness", "Comp. ↑", True),
    ("sufficiency", "Suff. ↓", False),
    ("aupc_comprehensiveness", "AUPC comp. ↓", False),
    ("aupc_sufficiency", "AUPC suff. ↑", True),
)
DELETIONS = ("remove", "mask")
STEPS = ("bins", "one")


@dataclass(frozen=True)
class Protocol:
    """How tokens are deleted and which points of the curves are measured."""

    deletion: str = "remove"  # "remove" or "mask"
    steps: str = "bins"  # "bins" or "one" (one token at a time)
    envelope: bool = True  # monotone envelope (True) or raw curve
    bins: tuple[float, ...] = BINS
    limit: int | None = None  # one-by-one: at most this many tokens

    def __post_init__(self) -> None:
        if self.deletion not in DELETIONS:
            raise InputError(f"unknown deletion {self.deletion!r}; use one of {', '.join(DELETIONS)}")
        if self.steps not in STEPS:
            raise InputError(f"unknown steps {self.steps!r}; use one of {', '.join(STEPS)}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"the one-by-one limit must be at least 1, not {self.limit}")

    def ks(self, n: int) -> list[int]:
        """The number of tokens deleted (or kept) at each point, starting with 0."""
        if self.steps == "bins":
            return [0] + [math.ceil(Fraction(str(q)) * n) for q in self.bins]
        last = n if self.limit is None else min(n, self.limit)
        return list(range(last + 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "deletion": self.deletion,
            "steps": self.steps,
            "bins": list(self.bins) if self.steps == "bins" else None,
            "limit": self.limit if self.steps == "one" else None,
            "curve": "envelope" if self.envelope else "raw",
            "target": "probability of the class predicted on the full input",
        }


@dataclass(frozen=True)
class CurvePoint:
    """One measured point of one method's curve on one sample."""

    method: str
    metric: str  # "comprehensiveness" or "sufficiency"
    step: int  # index of the point; step 0 is k = 0
    k: int  # tokens deleted (comprehensiveness) or kept (sufficiency)
    fraction: float  # k / n over the n non-special tokens
    probability: float  # the raw quantity (a probability, or a logit difference against a foil)
    value: float  # the curve's value: envelope so far, or raw
    done: int  # points of this sample yielded so far, this one included
    total: int  # points of this sample in all


@dataclass
class Curve:
    method: str
    metric: str
    p_full: float
    ks: list[int]
    fractions: list[float]
    raw: list[float]
    values: list[float]
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        drops = [self.p_full - v for v in self.values[1:]]
        return float(sum(drops) / len(self.values))

    @property
    def aupc(self) -> float:
        if len(self.values) < 2:
            return 0.0
        return float(np.trapezoid(self.values, self.fractions))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "metric": self.metric,
            "p_full": self.p_full,
            "ks": list(self.ks),
            "fractions": list(self.fractions),
            "raw": list(self.raw),
            "values": list(self.values),
            "score": self.score,
            "aupc": self.aupc,
            "protocol": dict(self.protocol),
        }


def ranking(scores: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Positions of the non-special tokens, highest score first, ties in reading order."""
    scores = np.asarray(scores, dtype=np.float64)
    positions = np.flatnonzero(~np.asarray(special, dtype=bool))
    return positions[np.argsort(-scores[positions], kind="stable")]


def perturb(ids: Sequence[int], delete: Iterable[int], deletion: str, mask_id: int | None) -> tuple[int, ...]:
    """``ids`` with the positions in ``delete`` removed or replaced by ``mask_id``."""
    gone = set(int(p) for p in delete)
    if deletion == "remove":
        return tuple(int(t) for j, t in enumerate(ids) if j not in gone)
    return tuple(int(mask_id) if j in gone else int(t) for j, t in enumerate(ids))


def _mask_id(explainer, protocol: Protocol) -> int | None:
    if protocol.deletion != "mask":
        return None
    mask_id = getattr(explainer.tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise InputError("this tokenizer has no mask token; use deletion by removal")
    return int(mask_id)


def sample_points(
    explainer,
    input_ids: Sequence[int],
    special: Sequence[bool],
    scores: dict[str, np.ndarray],
    target: Target | int | None = None,
    protocol: Protocol = Protocol(),
    metrics: Sequence[str] = METRICS,
    batch_size: int = 32,
) -> Iterator[CurvePoint]:
    """Yield the curve points of every method and metric on one sample, one at a time.

    Points come grouped by method, then metric, in order of k.  The perturbed
    inputs are de-duplicated and run through ``explainer.quantities`` in
    batches of ``batch_size``; the points of a batch are yielded as soon as it
    is done, so stopping the generator early skips the remaining batches.
    ``target``: a resolved target, a class index, or None for the class
    predicted on the full input.
    """
    ids = [int(t) for t in input_ids]
    special = np.asarray(special, dtype=bool)
    if len(special) != len(ids):
        raise InputError(f"special mask has {len(special)} entries for {len(ids)} tokens")
    for metric in metrics:
        if metric not in METRICS:
            raise InputError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    mask_id = _mask_id(explainer, protocol)
    n = int((~special).sum())
    ks = protocol.ks(n)
    full = tuple(ids)

    plan: list[tuple[str, str, int, int, tuple[int, ...]]] = []
    for method, method_scores in scores.items():
        if len(method_scores) != len(ids):
            raise InputError(f"{method} has {len(method_scores)} scores for {len(ids)} tokens")
        order = ranking(method_scores, special)
        for metric in metrics:
            for step, k in enumerate(ks):
                delete = order[:k] if metric == "comprehensiveness" else order[k:]
                plan.append((method, metric, step, k, perturb(ids, delete, protocol.deletion, mask_id)))

    if target is None:  # the class predicted on the full input
        target = int(np.argmax(explainer.predict_ids([list(ids)])[0]))
    target = as_target(target)
    unique = list(dict.fromkeys([full] + [entry[4] for entry in plan]))
    measured: dict[tuple[int, ...], float] = {}
    envelope: dict[tuple[str, str], float] = {}
    emitted = 0
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        values = explainer.quantities([list(c) for c in chunk], target, batch_size=batch_size)
        measured.update(zip(chunk, (float(v) for v in values)))
        while emitted < len(plan) and plan[emitted][4] in measured:
            method, metric, step, k, key = plan[emitted]
            p = measured[key]
            value = p
            if protocol.envelope and step > 0:
                best = envelope[(method, metric)]
                value = min(best, p) if metric == "comprehensiveness" else max(best, p)
            envelope[(method, metric)] = value
            emitted += 1
            yield CurvePoint(method, metric, step, k, k / n if n else 0.0, p, value, emitted, len(plan))


def collect(
    points: Iterable[CurvePoint], p_full: float | None = None, protocol: Protocol | None = None
) -> dict[tuple[str, str], Curve]:
    """Assemble points into one :class:`Curve` per (method, metric).

    ``p_full`` defaults to the comprehensiveness curve's point 0 (the full
    input); pass it when only sufficiency was measured.
    """
    curves: dict[tuple[str, str], Curve] = {}
    protocol_dict = protocol.to_dict() if protocol else {}
    for point in points:
        key = (point.method, point.metric)
        if key not in curves:
            curves[key] = Curve(point.method, point.metric, float("nan"), [], [], [], [], protocol_dict)
        curve = curves[key]
        curve.ks.append(point.k)
        curve.fractions.append(point.fraction)
        curve.raw.append(point.probability)
        curve.values.append(point.value)
        if point.metric == "comprehensiveness" and point.step == 0 and p_full is None:
            p_full = point.probability
    for curve in curves.values():
        curve.p_full = float("nan") if p_full is None else float(p_full)
    return curves


def sample_curves(
    explainer,
    input_ids: Sequence[int],
    special: Sequence[bool],
    scores: dict[str, np.ndarray],
    target: Target | int | None = None,
    protocol: Protocol = Protocol(),
    batch_size: int = 32,
) -> dict[tuple[str, str], Curve]:
    """Both curves of every method on one sample (runs :func:`sample_points` to the end)."""
    return collect(
        sample_points(explainer, input_ids, special, scores, target, protocol, METRICS, batch_size),
        protocol=protocol,
    )


def explanation_curves(
    explainer,
    explanation,
    methods: Sequence[str] | None = None,
    protocol: Protocol = Protocol(),
    batch_size: int = 32,
    target: Target | int | None = None,
) -> dict[tuple[str, str], Curve]:
    """Both curves of ``methods`` (default: all scored) for an :class:`~alti.results.Explanation`.

    ``target`` defaults to what the explanation explained (its predicted class
    for explanations without a recorded target).
    """
    names = list(explanation.scores) if methods is None else list(methods)
    special = explanation.special
    if special is None:
        special = np.zeros(len(explanation.input_ids), dtype=bool)
    return sample_curves(
        explainer,
        explanation.input_ids,
        special,
        {name: explanation.scores[name] for name in names},
        explained_target(explanation) if target is None else target,
        protocol,
        batch_size,
    )


def explained_target(explanation) -> Target:
    """The target an explanation explained (its predicted class when it records none)."""
    if explanation.target is not None:
        return explanation.target
    return ClassTarget(int(explanation.prediction.index), position=explanation.target_position)


@dataclass
class MethodScores:
    comprehensiveness: float
    sufficiency: float
    aupc_comprehensiveness: float
    aupc_sufficiency: float

    def to_dict(self) -> dict[str, float]:
        return {
            "comprehensiveness": self.comprehensiveness,
            "sufficiency": self.sufficiency,
            "aupc_comprehensiveness": self.aupc_comprehensiveness,
            "aupc_sufficiency": self.aupc_sufficiency,
        }


@dataclass
class Evaluation:
    """Scores averaged over the samples of a dataset, with the protocol that made them."""

    samples: int
    protocol: dict[str, Any]
    methods: dict[str, MethodScores]
    agreement: dict[str, dict[str, float]] | None = None
    #: answers: each method's (and ``"random"``'s) mean segment drops and support ranks
    context: dict[str, dict[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "samples": self.samples,
            "protocol": dict(self.protocol),
            "methods": {name: scores.to_dict() for name, scores in self.methods.items()},
        }
        if self.context is not None:
            for name, row in self.context.items():
                if name == RANDOM:
                    out[RANDOM] = dict(row)
                else:
                    out["methods"][name].update(row)
        if self.agreement is not None:
            out["agreement"] = {a: dict(row) for a, row in self.agreement.items()}
        return out


def summarize_context(per_sample: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The mean of each (method, measure) over the samples that have it (NaN ones left out)."""
    sums: dict[str, dict[str, list[float]]] = {}
    for sample in per_sample:
        for name, row in sample.items():
            for key, value in row.items():
                if not math.isnan(value):
                    sums.setdefault(name, {}).setdefault(key, []).append(value)
    return {name: {key: _mean(found) for key, found in row.items()} for name, row in sums.items()}


def summarize(
    per_sample: Sequence[dict[tuple[str, str], Curve]], methods: Sequence[str], protocol: Protocol
) -> Evaluation:
    """Average each method's curve scores over the samples."""
    result: dict[str, MethodScores] = {}
    for method in methods:
        comp = [s[(method, "comprehensiveness")] for s in per_sample]
        suff = [s[(method, "sufficiency")] for s in per_sample]
        result[method] = MethodScores(
            comprehensiveness=_mean(c.score for c in comp),
            sufficiency=_mean(c.score for c in suff),
            aupc_comprehensiveness=_mean(c.aupc for c in comp),
            aupc_sufficiency=_mean(c.aupc for c in suff),
        )
    return Evaluation(samples=len(per_sample), protocol=protocol.to_dict(), methods=result)


# ------------------------------------------------------------------ context faithfulness (answers)
#: how many top segments are removed: drop@1, drop@2, drop@3
SEGMENT_KS = (1, 2, 3)
#: random segment orders averaged into the baseline
RANDOM_ORDERS = 8
#: the name the random baseline goes by in the results
RANDOM = "random"


def segment_order(explanation, method: str) -> list[int]:
    """The explanation's segments by ``method``'s score, highest first (ties in prompt order)."""
    segments = explanation.segments or []
    return ranked([segment.score(explanation.scores[method]) for segment in segments])


def ranked(scores: Sequence[float]) -> list[int]:
    """Indices of ``scores``, highest first (ties in their order)."""
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")]


def support_rank(order: Sequence[int], support: Sequence[int]) -> dict[str, float]:
    """``support_mrr`` (the reciprocal rank of the best-ranked supporting segment, 1-based
    numbers in ``support``) and ``support_top1`` (1 when it is first) under ``order``."""
    wanted = {i - 1 for i in support}
    rank = 1 + min(position for position, i in enumerate(order) if i in wanted)
    return {"support_mrr": 1.0 / rank, "support_top1": float(rank == 1)}


def segment_drops(
    explainer, explanation, methods: Sequence[str], ks: Sequence[int] = SEGMENT_KS, seed: int = 0
) -> dict[str, dict[str, float]]:
    """The drop of the explained quantity (an answer's log-probability) when the top-k segments
    by each method are removed from the prompt (ContextCite's check; higher is more faithful),
    and the mean drop over :data:`RANDOM_ORDERS` random orders (``"random"``).  ``drop@k`` is
    NaN where the prompt has fewer than k segments."""
    segments = explanation.segments or []
    target = explained_target(explanation)
    ids = list(explanation.input_ids)
    rng = np.random.default_rng(seed)
    orders = {method: segment_order(explanation, method) for method in methods}
    randoms = [[int(i) for i in rng.permutation(len(segments))] for _ in range(RANDOM_ORDERS)]
    inputs: list[tuple[int, ...]] = [tuple(ids)]
    plan: list[tuple[str, int, tuple[int, ...]]] = []
    for name, order in [*orders.items(), *((RANDOM, order) for order in randoms)]:
        for k in ks:
            if k > len(segments):
                continue
            removed = {t for i in order[:k] for t in range(segments[i].start, segments[i].end)}
            kept = tuple(token for t, token in enumerate(ids) if t not in removed)
            plan.append((name, k, kept))
            inputs.append(kept)
    unique = list(dict.fromkeys(inputs))
    values = dict(zip(unique, (float(v) for v in explainer.quantities([list(u) for u in unique], target))))
    full = values[tuple(ids)]
    drops: dict[str, dict[str, list[float]]] = {name: {f"drop@{k}": [] for k in ks} for name in [*methods, RANDOM]}
    for name, k, kept in plan:
        drops[name][f"drop@{k}"].append(full - values[kept])
    return {name: {key: _mean(found) for key, found in row.items()} for name, row in drops.items()}


def support_ranks(explanation, methods: Sequence[str], support: Sequence[int]) -> dict[str, dict[str, float]]:
    """Where each method ranks the segments that support the answer (1-based numbers):
    ``support_mrr`` the reciprocal rank of the best-ranked one, ``support_top1`` 1 when it is
    first."""
    segments = explanation.segments or []
    wanted = {i - 1 for i in support}
    if not wanted or max(wanted) >= len(segments):
        raise InputError(
            f"the support {', '.join(map(str, support))} names a segment the prompt does not have "
            f"({len(segments)} segments)"
        )
    return {method: support_rank(segment_order(explanation, method), support) for method in methods}


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (ends - (counts - 1) / 2.0)[inverse].astype(np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 2 values."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def agreement(explanations: Iterable, methods: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean Spearman correlation over samples between every pair of methods.

    Only the non-special tokens are compared; samples where a pair's
    correlation is undefined (fewer than two tokens, constant scores) are
    skipped for that pair.
    """
    sums = {a: {b: 0.0 for b in methods} for a in methods}
    counts = {a: {b: 0 for b in methods} for a in methods}
    for explanation in explanations:
        special = explanation.special
        keep = ~np.asarray(special, dtype=bool) if special is not None else slice(None)
        for i, a in enumerate(methods):
            for b in methods[i:]:
                rho = spearman(np.asarray(explanation.scores[a])[keep], np.asarray(explanation.scores[b])[keep])
                if math.isnan(rho):
                    continue
                for x, y in {(a, b), (b, a)}:
                    sums[x][y] += rho
                    counts[x][y] += 1
    return {a: {b: sums[a][b] / counts[a][b] if counts[a][b] else float("nan") for b in methods} for a in methods}
