"""The explorer's plain data and the typed protocols of the services behind its screens.

The data (:class:`ModelInfo`, :class:`ListedSample`, :class:`RunInfo`, …) is what the
screens show; the protocols name every call a screen makes of its service:
:class:`DatasetService` (a model and its dataset, :class:`alti_tui.service.EngineService`)
and :class:`RunFileService` (an ``alti attribute`` file, :class:`alti_tui.run_service.RunService`),
both a :class:`ModelService`.  Nothing here imports Textual, torch or the engine's models.

Every service call may be made from a worker thread.  Errors the user can act on are
raised as :class:`alti.errors.AltiError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alti.targets import ClassTarget, Target

if TYPE_CHECKING:
    from alti.catalog import MethodInfo
    from alti.results import Explanation
    from alti.runs import Filter, Order, TokenStat

#: A target and a foil as the user gives them (``None``: the prediction, no foil).
TargetAndFoil = tuple[str | None, str | None]


@dataclass(frozen=True)
class ListedSample:
    """One sample of the list: its text and gold label (``None`` when unlabelled).

    ``target`` / ``foil``: what a language model explains on this sample (a token
    such as ``" Paris"`` or ``id:1234``; ``None``: the prediction, no foil).  An answer
    dataset's sample: ``text`` is the prompt, ``answer`` the answer it is explained as,
    ``segments`` the character spans of the prompt scored.
    """

    text: str
    label: str | None = None
    target: str | None = None
    foil: str | None = None
    answer: str | None = None
    segments: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What the app needs to know about the loaded model.

    ``target`` is what its predictions are explained as (:mod:`alti.targets`): a class
    of a classifier, a causal LM's next token or a masked LM's token.
    ``methods`` are the methods that apply to the model; ``unavailable`` the
    registered ones that do not, with the reason.
    """

    name: str
    labels: list[str]
    methods: dict[str, MethodInfo]
    default_methods: list[str] = field(default_factory=list)
    #: Methods computed from the one captured forward pass (ALTI, attention, logit families).
    fast: frozenset[str] = frozenset()
    target: type[Target] = ClassTarget
    unavailable: dict[str, str] = field(default_factory=dict)
    #: The model writes answers (a causal LM): g generates one and explains it whole.
    answers: bool = False

    def is_fast(self, method: str) -> bool:
        return method in self.fast

    @property
    def is_lm(self) -> bool:
        return self.target.tokens


@dataclass(frozen=True)
class AnswerSettings:
    """How ``g`` answers a prompt (``alti-tui --generate/--chat/--system/--segments``): up to
    ``tokens`` tokens, greedily; the prompt formatted by the chat template (``chat``, with a
    ``system`` turn); the prompt's ``segments`` scored (sentences, lines, turns or none).
    A dataset's sample brings its own ``answer`` (teacher-forced, nothing generated) and
    ``spans`` (character spans, scored instead of ``segments``)."""

    tokens: int = 32
    chat: bool = False
    system: str | None = None
    segments: str | None = "sentences"
    answer: str | None = None
    spans: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class PlotPoint:
    """One point of a deletion curve as the curves panel plots it.

    ``curve`` is ``"comp"`` (top-k deleted) or ``"suff"`` (only top-k kept);
    ``fraction`` is k divided by the number of deletable tokens.
    """

    method: str
    curve: str
    fraction: float
    probability: float


@dataclass(frozen=True)
class CurveScore:
    """A method's table score for one curve (``"comp"`` or ``"suff"``), sent once it is complete."""

    method: str
    curve: str
    score: float


@dataclass(frozen=True)
class RunInfo:
    """An ``alti attribute`` file as the explorer shows it before any model is loaded.

    ``info`` describes the run's model from the file alone (its methods, labels and
    kind); ``predicted`` is each sample's recorded prediction; ``problems`` are one-line
    notes on lines that could not be read.
    """

    path: str
    info: ModelInfo
    samples: list[ListedSample]
    predicted: list[str]
    problems: list[str]
    has_curves: bool
    #: what an answer run says of its contexts (drop@k, support ranks; empty for other runs)
    context_measures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Overview:
    """The run at a glance (:mod:`alti.runs`): mean curve scores per method (empty without
    curves), mean Spearman ρ per pair, top tokens per method, per-sample histograms
    ``(title, counts, (low, high))``, and an answer run's context measures."""

    samples: int
    model: str
    protocol: dict[str, Any] | None
    table: dict[str, dict[str, float]]
    agreement: dict[str, dict[str, float]]
    top_tokens: dict[str, list[TokenStat]]
    histograms: list[tuple[str, list[int], tuple[float, float]]]
    #: an answer run's mean drop@k and support ranks per method (and ``random``); else empty
    context: dict[str, dict[str, float]] = field(default_factory=dict)


class WorkStopped(Exception):
    """A slow method stopped because its sample is no longer shown."""


class ModelService(Protocol):
    """What both screens ask of the model behind them."""

    def load(self, progress: Callable[[str], None]) -> ModelInfo:
        """Load the model (importing torch on the way), saying what it does with ``progress``."""

    def explain(
        self,
        text: str,
        methods: Sequence[str],
        target: str | None = None,
        foil: str | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
        like: Explanation | None = None,
    ) -> Explanation:
        """Explain ``text``; slow methods raise :class:`WorkStopped` at their next step once
        ``should_stop()`` is true (the sample they were for has been left); ``progress(done,
        layers)`` hears of each layer of the forward pass.  ``like``: a run file's explanation
        of this sample, whose whole answer (if it explains one) is explained again."""

    def answer(
        self,
        prompt: str,
        methods: Sequence[str],
        settings: AnswerSettings,
        on_token: Callable[[str], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Explanation:
        """Generate an answer to ``prompt`` greedily (or take ``settings.answer``, a dataset's)
        and explain it whole with ``methods`` (the fast ones, from one forward pass; the slow
        ones follow with ``explain(like=…)``).  ``on_token(answer so far)`` hears each token as it
        is generated and may raise :class:`WorkStopped` to stop; ``progress`` as in :meth:`explain`."""

    def check_request(self, target: str | None, foil: str | None, predicted: int | None = None) -> None:
        """Raise :class:`alti.errors.AltiError` (one line) when ``target`` / ``foil`` cannot be
        explained; ``predicted`` (the index or token id predicted) stands for a ``None`` target."""

    def hold_slow_work(self, held: bool) -> None:
        """While held, slow work (gradients, curves, predictions) pauses at its next step."""

    def curves(self, explanation: Explanation, methods: Sequence[str]) -> Iterator[PlotPoint | CurveScore]:
        """The deletion curves of ``methods``, point by point, each curve's score after its last point."""

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]:
        """Write the explanation as HTML, SVG, LaTeX and JSON; the paths written."""


class DatasetService(ModelService, Protocol):
    """A model and the samples of a dataset (``alti-tui``)."""

    def samples(self) -> list[ListedSample]:
        """The dataset's samples (after :meth:`load`)."""

    def predict(self, texts: Sequence[str], requests: Sequence[TargetAndFoil] | None = None) -> list[str | None]:
        """The predicted label (a class, or a language model's next token) of each text;
        ``None`` where there is none (e.g. a masked LM's text without one mask)."""


class RunFileService(ModelService, Protocol):
    """An ``alti attribute`` file, whose model loads behind its rows (``alti-tui --attributions``)."""

    def open_run(self) -> RunInfo:
        """Read the file, torch-free (once; later calls return what the first read)."""

    def stored(self, index: int) -> Explanation:
        """Sample ``index``'s explanation as the file records it (scores, no matrices)."""

    def stored_curves(self, index: int) -> list[PlotPoint | CurveScore] | None:
        """Sample ``index``'s deletion curves from the file, or None when it has none."""

    def arrange(self, how: Order, where: Filter) -> list[int]:
        """The samples listed, in order."""

    def overview(self) -> Overview:
        """The run at a glance."""
