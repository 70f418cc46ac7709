"""Reading a whole run: the records ``alti attribute`` wrote, what each sample says, and
the run at a glance.

:func:`read_run` reads a JSONL attributions file leniently (:func:`alti.runfile.read`):
every valid record is kept, and each line that is not one (a damaged line, a truncated last
line) becomes a one-line entry of :attr:`Run.problems`.  :class:`Run` holds per-sample arrays (length,
confidence, misclassified, curve scores) computed once, so that sorting ten thousand
samples is a few numpy calls: :func:`order` applies an :class:`Order` and a
:class:`Filter`.  :func:`faithfulness_table`, :func:`agreement`, :func:`top_tokens` and
:func:`histogram` make the run's overview; their numbers are those of ``alti evaluate
--attributions`` on the same file (curve scores are read from records written with
``alti attribute --curves``).

Everything here is numpy and builtins: the explorer and the HTML report use it without
torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from alti import runfile
from alti.errors import InputError
from alti.faithfulness import METRICS, RANDOM, SCORE_COLUMNS, ranked, support_rank
from alti.targets import ClassTarget, Target

#: The curve scores a record may carry, as named in ``alti evaluate``'s output.
SCORE_KEYS = tuple(key for key, _, _ in SCORE_COLUMNS)


@dataclass
class Run:
    """The valid records of a run file, in file order, and what was wrong with the rest."""

    path: str
    records: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.records[0]["scores"]) if self.records else []

    @property
    def model(self) -> str:
        return str(self.records[0].get("model", "")) if self.records else ""

    @property
    def target_type(self) -> type[Target]:
        """What the run explained (:mod:`alti.targets`), as its first record says."""
        return runfile.target_type_of(self.records[0]) if self.records else ClassTarget

    @property
    def labels(self) -> list[str]:
        """A classifier's classes (empty for language models)."""
        if not self.records:
            return []
        return list(self.records[0]["prediction"].get("labels", []))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.records[0].get("settings", {})) if self.records else {}

    @property
    def version(self) -> str:
        return str(self.records[0].get("version", "")) if self.records else ""

    @property
    def has_curves(self) -> bool:
        """Whether every record carries deletion curves (``alti attribute --curves``)."""
        return bool(self.records) and all("faithfulness" in r for r in self.records)

    @property
    def protocol(self) -> dict[str, Any] | None:
        return self.records[0]["faithfulness"].get("protocol") if self.has_curves else None

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------ per sample
    @cached_property
    def lengths(self) -> np.ndarray:
        """Non-special tokens per sample."""
        return np.array([sum(not s for s in r["special"]) for r in self.records], dtype=np.int64)

    @cached_property
    def confidence(self) -> np.ndarray:
        """The probability of the prediction."""
        return np.array([float(r["prediction"].get("probability", math.nan)) for r in self.records])

    @cached_property
    def predicted(self) -> list[str]:
        """Each sample's predicted class or token; for a whole answer, the answer."""
        return [str((r.get("answer") or {}).get("text", r["prediction"]["label"])) for r in self.records]

    @cached_property
    def gold(self) -> list[str | None]:
        """What a prediction is checked against: a classifier's gold label (in the model's
        own label words), a language model's explained target token; ``None`` when unknown."""
        if self.target_type.tokens:
            return [str((r.get("target") or {}).get("token", "")) or None for r in self.records]
        return [gold_label(r.get("label"), self.labels) for r in self.records]

    @cached_property
    def misclassified(self) -> np.ndarray:
        """1.0 where the prediction misses the gold (or an LM's explained target), 0.0 where
        it agrees, NaN where there is nothing to check it against (no gold, or a gold label
        that is none of the model's)."""
        out = np.full(len(self.records), math.nan)
        for i, record in enumerate(self.records):
            if not self.target_type.tokens:
                if self.gold[i] is not None and (self.gold[i] in self.labels or not self.labels):
                    out[i] = float(self.gold[i] != self.predicted[i])
                continue
            target = record.get("target") or {}
            if "id" in target:
                out[i] = float(int(target["id"]) != int(record["prediction"]["index"]))
        return out

    @cached_property
    def lowered(self) -> list[str]:
        return [r["text"].lower() for r in self.records]

    def _rank_groups(self, method: str) -> dict[int, np.ndarray]:
        """``method``'s ranks over the non-special tokens, one (samples, length) array per
        length: the samples of :meth:`length_groups`, in that order."""
        cache = self.__dict__.setdefault("_ranks", {})
        if method not in cache:
            cache[method] = {
                length: _row_ranks(
                    np.array(
                        [
                            np.asarray(self.records[i]["scores"][method], dtype=np.float64)[self._kept[i]]
                            for i in indices
                        ]
                    ).reshape(len(indices), length)
                )
                for length, indices in self.length_groups.items()
            }
        return cache[method]

    @cached_property
    def _kept(self) -> list[np.ndarray]:
        return [~np.asarray(r["special"], dtype=bool) for r in self.records]

    @cached_property
    def length_groups(self) -> dict[int, np.ndarray]:
        """The samples (indices) of each number of non-special tokens."""
        return {int(length): np.flatnonzero(self.lengths == length) for length in np.unique(self.lengths)}

    def spearman(self, a: str, b: str) -> np.ndarray:
        """Per-sample Spearman rank correlation of two methods (NaN where undefined:
        fewer than two tokens, or constant scores), as :func:`alti.faithfulness.spearman`;
        computed for all samples of a length at once."""
        cache = self.__dict__.setdefault("_spearman", {})
        key = tuple(sorted((a, b)))
        if key not in cache:
            out = np.full(len(self.records), math.nan)
            ranks_a, ranks_b = self._rank_groups(a), self._rank_groups(b)
            for length, indices in self.length_groups.items():
                if length >= 2:
                    out[indices] = _correlations(ranks_a[length], ranks_b[length])
            cache[key] = out
        return cache[key]

    def curve_scores(self, method: str, metric: str, aupc: bool = False) -> np.ndarray:
        """Per-sample score (or AUPC) of one curve; NaN for samples without curves."""
        cache = self.__dict__.setdefault("_curve_scores", {})
        key = (method, metric, aupc)
        if key not in cache:
            field_name = "aupc" if aupc else "score"
            out = np.full(len(self.records), math.nan)
            for i, record in enumerate(self.records):
                curve = ((record.get("faithfulness") or {}).get("methods", {}).get(method) or {}).get(metric)
                if curve is not None:
                    out[i] = float(curve[field_name])
            cache[key] = out
        return cache[key]

    # ------------------------------------------------------------ answers and their context
    @property
    def context_measures(self) -> list[str]:
        """What the run says of its answers' contexts: ``drop@1..3`` (recorded with
        ``--curves``), ``support_mrr`` and ``support_top1`` (rows with ``support``)."""
        found: list[str] = []
        for record in self.records:
            for row in ((record.get("faithfulness") or {}).get("context") or {}).values():
                found += [key for key in row if key not in found]
        if any(r.get("support") and r.get("segments") for r in self.records):
            found += list(SUPPORT_MEASURES)
        return found

    def context_scores(self, name: str, measure: str) -> np.ndarray:
        """Per-sample ``measure`` of a method (or ``"random"`` for drops); NaN where a sample
        has none.  Support ranks come from the recorded segment scores."""
        cache = self.__dict__.setdefault("_context", {})
        if (name, measure) not in cache:
            out = np.full(len(self.records), math.nan)
            for i, record in enumerate(self.records):
                if measure in SUPPORT_MEASURES:
                    segments, support = record.get("segments"), record.get("support")
                    if segments and support and max(support) <= len(segments) and name in segments[0]["scores"]:
                        order = ranked([segment["scores"][name] for segment in segments])
                        out[i] = support_rank(order, support)[measure]
                    continue
                value = (((record.get("faithfulness") or {}).get("context") or {}).get(name) or {}).get(measure)
                if value is not None:
                    out[i] = float(value)
            cache[(name, measure)] = out
        return cache[(name, measure)]


#: the support measures, computed from a record's segments and support
SUPPORT_MEASURES = ("support_mrr", "support_top1")


def _row_ranks(values: np.ndarray) -> np.ndarray:
    """Each row's ranks starting at 1, ties given their average rank (as
    :func:`alti.faithfulness._ranks` does for one row)."""
    rows, width = values.shape
    if width == 0:
        return values.copy()
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    starts = np.ones((rows, width), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    groups = np.cumsum(starts, axis=1) - 1 + (np.arange(rows) * width)[:, None]  # tie groups, unique per row
    positions = np.broadcast_to(np.arange(1, width + 1, dtype=np.float64), (rows, width))
    sums = np.bincount(groups.ravel(), weights=positions.ravel(), minlength=rows * width)
    counts = np.bincount(groups.ravel(), minlength=rows * width)
    ranks = np.empty((rows, width), dtype=np.float64)
    np.put_along_axis(ranks, order, (sums / np.maximum(counts, 1))[groups], axis=1)
    return ranks


def _correlations(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair (NaN where a row is constant)."""
    ra = ra - ra.mean(axis=1, keepdims=True)
    rb = rb - rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / np.where(denominator > 0, denominator, 1), math.nan)


def gold_label(label: Any, labels: Sequence[str]) -> str | None:
    """A dataset label in the model's own words: ``"1"`` -> ``labels[1]``, any case."""
    if label is None:
        return None
    label = str(label)
    if label in labels:
        return label
    by_case = {name.lower(): name for name in labels}
    if label.lower() in by_case:
        return by_case[label.lower()]
    if label.isdigit() and int(label) < len(labels):
        return labels[int(label)]
    return label


def read_run(path: str) -> Run:
    """The valid records of an ``alti attribute`` file; bad lines become :attr:`Run.problems`
    (:func:`alti.runfile.read`, lenient).

    Raises :class:`InputError` (one line) when the file cannot be read or holds no record.
    """
    return Run(path, *runfile.read(path, strict=False))


# ------------------------------------------------------------------ finding samples
#: Sort keys: name -> (title, how many methods it takes).
SORTS = {
    "dataset": ("dataset order", 0),
    "misclassified": ("misclassified first", 0),
    "confidence": ("least confident first", 0),
    "disagreement": ("largest disagreement", 2),
    "comprehensiveness": ("comprehensiveness", 1),
    "sufficiency": ("sufficiency", 1),
    "length": ("longest first", 0),
    "drop": ("drop@1 of a method (an answer's log p without its top segment)", 1),
    "support": ("support rank of a method (reciprocal rank of the supporting segment)", 1),
}


@dataclass(frozen=True)
class Order:
    """How the sample list is sorted.

    ``disagreement`` takes two methods (lowest Spearman ρ first); ``comprehensiveness``,
    ``sufficiency``, ``drop`` (an answer's drop@1) and ``support`` (its supporting segment's
    reciprocal rank) one method, ``worst`` first unless ``best``; ``length`` is longest first
    unless ``best`` (shortest first).
    """

    key: str = "dataset"
    methods: tuple[str, ...] = ()
    best: bool = False

    def __post_init__(self) -> None:
        if self.key not in SORTS:
            raise InputError(f"unknown sort {self.key!r}; use one of {', '.join(SORTS)}")
        wanted = SORTS[self.key][1]
        if len(self.methods) != wanted:
            raise InputError(f"sorting by {self.key} takes {wanted} method(s), not {len(self.methods)}")

    def describe(self) -> str:
        if self.key == "disagreement":
            return f"disagreement {self.methods[0]} vs {self.methods[1]}"
        if self.key in ("comprehensiveness", "sufficiency"):
            return f"{'best' if self.best else 'worst'} {self.key[:4]}. {self.methods[0]}"
        if self.key in CONTEXT_SORTS:
            return f"{'best' if self.best else 'worst'} {CONTEXT_SORTS[self.key]} {self.methods[0]}"
        if self.key == "length":
            return "shortest first" if self.best else "longest first"
        return SORTS[self.key][0]


#: the sorts by an answer's context, and the measure each sorts by
CONTEXT_SORTS = {"drop": "drop@1", "support": "support_mrr"}


@dataclass(frozen=True)
class Filter:
    """Which samples are listed: a case-insensitive text search, misclassified only."""

    text: str = ""
    misclassified: bool = False


def sort_values(run: Run, order: Order) -> np.ndarray:
    """The value each sample is sorted by, ascending; NaN sorts last."""
    key = order.key
    if key == "dataset":
        return np.arange(len(run), dtype=np.float64)
    if key == "misclassified":
        return -run.misclassified
    if key == "confidence":
        return run.confidence.copy()
    if key == "disagreement":
        return run.spearman(*order.methods)
    if key == "length":
        lengths = run.lengths.astype(np.float64)
        return lengths if order.best else -lengths
    for method in order.methods:
        if method not in run.methods:
            raise InputError(f"the run has no scores for {method}; it has {', '.join(run.methods)}")
    if key in CONTEXT_SORTS:
        measure = CONTEXT_SORTS[key]
        if measure not in run.context_measures:
            raise InputError(
                f"the run has no {measure}: an answer run written with --curves has drop@k, one whose rows "
                "name their support has support ranks"
            )
        scores = run.context_scores(order.methods[0], measure)
        return -scores if order.best else scores  # higher is better for both
    if not run.has_curves:
        raise InputError(f"the run has no deletion curves: write it with 'alti attribute --curves' to sort by {key}")
    scores = run.curve_scores(order.methods[0], key)
    higher_is_better = key == "comprehensiveness"
    return -scores if higher_is_better == order.best else scores


def order(run: Run, how: Order = Order(), where: Filter = Filter()) -> list[int]:
    """The indices of the samples listed, in the order shown (ties in dataset order)."""
    values = sort_values(run, how)
    indices = np.arange(len(run))
    keep = np.ones(len(run), dtype=bool)
    needle = where.text.lower().strip()
    if needle:
        keep &= np.array([needle in text for text in run.lowered], dtype=bool)
    if where.misclassified:
        keep &= run.misclassified == 1.0
    nan = np.isnan(values)
    ranked = np.lexsort((indices, np.where(nan, 0.0, values), nan))
    return [int(i) for i in ranked if keep[i]]


# ------------------------------------------------------------------ the run at a glance
def faithfulness_table(run: Run) -> dict[str, dict[str, float]]:
    """Each method's mean curve scores over the run (``alti evaluate``'s table); empty
    when the run has no curves."""
    if not run.has_curves:
        return {}
    table = {}
    for method in run.methods:
        row = {}
        for metric in METRICS:
            row[metric] = _nanmean(run.curve_scores(method, metric))
            row[f"aupc_{metric}"] = _nanmean(run.curve_scores(method, metric, aupc=True))
        table[method] = {key: row[key] for key in SCORE_KEYS}
    return table


def context_table(run: Run) -> dict[str, dict[str, float]]:
    """Each method's (and the random baseline's) mean drop@k and support ranks over the
    run's answers (``alti evaluate``'s context table); empty for other runs."""
    measures = run.context_measures
    table: dict[str, dict[str, float]] = {}
    for name in [*run.methods, RANDOM]:
        row = {m: _nanmean(run.context_scores(name, m)) for m in measures}
        row = {m: v for m, v in row.items() if not math.isnan(v)}  # the random baseline ranks no support
        if row:
            table[name] = row
    return table


def agreement(run: Run, methods: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Mean per-sample Spearman ρ of every pair of methods (``alti evaluate --agreement``):
    samples where a pair's ρ is undefined are left out of that pair's mean."""
    names = list(run.methods if methods is None else methods)
    out: dict[str, dict[str, float]] = {a: {} for a in names}
    for i, a in enumerate(names):
        for b in names[i:]:
            out[a][b] = out[b][a] = _nanmean(run.spearman(a, b))
    return out


@dataclass(frozen=True)
class TokenStat:
    token: str
    mean: float
    count: int


def top_tokens(run: Run, method: str, k: int = 10, min_count: int | None = None) -> list[TokenStat]:
    """The tokens with the highest mean score of ``method`` over their occurrences in the
    run (special tokens left out); tokens seen fewer than ``min_count`` times (default:
    2, or 1 % of the samples when that is more) are not ranked."""
    if min_count is None:
        min_count = max(2, math.ceil(0.01 * len(run)))
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for record in run.records:
        for token, score, special in zip(record["tokens"], record["scores"][method], record["special"]):
            if special:
                continue
            sums[token] = sums.get(token, 0.0) + float(score)
            counts[token] = counts.get(token, 0) + 1
    stats = [TokenStat(t, sums[t] / counts[t], counts[t]) for t in sums if counts[t] >= min_count]
    stats.sort(key=lambda s: (-s.mean, -s.count, s.token))
    return stats[:k]


def histogram(
    values: np.ndarray, bins: int = 10, span: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the finite ``values``."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if span is None:
        span = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        if span[0] == span[1]:
            span = (span[0] - 0.5, span[1] + 0.5)
    return np.histogram(finite, bins=bins, range=span)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else math.nan
