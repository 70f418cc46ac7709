"""The explorer's only door to the engine.

The app talks to a :class:`Service`; :class:`EngineService` is the real one,
backed by :class:`alti.Explainer`.  Nothing here imports torch or the engine at
module level: :meth:`EngineService.load` does, inside the loading worker, so the
first screen paints before torch is imported.

Every method may be called from a worker thread.  Errors the user can act on are
raised as :class:`alti.errors.AltiError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from alti.methods.base import MethodInfo
    from alti.results import Explanation

#: Method families computed from the one captured forward pass: fast.
TRACE_FAMILIES = frozenset({"alti", "attention"})

#: Methods shown when the user names none (those the registry has).
DEFAULT_METHODS = ("alti", "rollout", "norm_rollout", "globenc", "ig_l2")


@dataclass(frozen=True)
class Sample:
    """One dataset sample: its text and gold label (``None`` when unlabelled)."""

    text: str
    label: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What the app needs to know about the loaded model."""

    name: str
    labels: list[str]
    methods: dict[str, MethodInfo]
    default_methods: list[str] = field(default_factory=list)

    def is_fast(self, method: str) -> bool:
        return self.methods[method].family in TRACE_FAMILIES


@dataclass(frozen=True)
class CurvePoint:
    """One point of a deletion curve.

    ``kind`` is ``"comp"`` (top-k deleted) or ``"suff"`` (only top-k kept);
    ``fraction`` is k divided by the number of deletable tokens.
    """

    method: str
    kind: str
    fraction: float
    probability: float


@dataclass(frozen=True)
class CurveScore:
    """A method's table score for one curve kind, sent once its curve is complete."""

    method: str
    kind: str
    score: float


class Service(Protocol):
    """What the explorer needs from the engine."""

    def load(self, progress: Callable[[str], None]) -> ModelInfo: ...

    def samples(self) -> list[Sample]: ...

    def predict(self, texts: Sequence[str]) -> list[str]: ...

    def explain(self, text: str, methods: Sequence[str]) -> Explanation: ...

    def curves(
        self, explanation: Explanation, methods: Sequence[str]
    ) -> Iterator[CurvePoint | CurveScore]: ...

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]: ...
