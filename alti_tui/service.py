"""The explorer's only door to the engine.

The app talks to a :class:`Service`; :class:`EngineService` is the real one,
backed by :class:`alti.Explainer`.  Nothing here imports torch or the engine at
module level: :meth:`EngineService.load` does, inside the loading worker, so the
first screen paints before torch is imported.

Every method may be called from a worker thread.  Errors the user can act on are
raised as :class:`alti.errors.AltiError` with a one-line message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alti.catalog import INFOS, explorer_methods
from alti.runs import Filter, Order, TokenStat, gold_label
from alti.targets import ClassTarget, Target

if TYPE_CHECKING:
    from alti.catalog import MethodInfo
    from alti.results import Explanation
    from alti.runs import Run

#: Where the scores of methods computed from the one captured forward pass come from.
FAST_SOURCES = ("trace", "logit")
#: A target and a foil as the user gives them (``None``: the prediction, no foil).
Request = tuple[str | None, str | None]


@dataclass(frozen=True)
class Sample:
    """One dataset sample: its text and gold label (``None`` when unlabelled).

    ``target`` / ``foil``: what a language model explains on this sample (a token
    such as ``" Paris"`` or ``id:1234``; ``None``: the prediction, no foil).
    """

    text: str
    label: str | None = None
    target: str | None = None
    foil: str | None = None


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

    def is_fast(self, method: str) -> bool:
        return method in self.fast

    @property
    def is_lm(self) -> bool:
        return self.target.tokens


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

    def predict(self, texts: Sequence[str], requests: Sequence[Request] | None = None) -> list[str | None]:
        """The predicted label (a class, or a language model's next token) of each text;
        ``None`` where there is none (e.g. a masked LM's text without one mask)."""

    def explain(
        self,
        text: str,
        methods: Sequence[str],
        target: str | None = None,
        foil: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Explanation:
        """Explain ``text``; slow methods raise :class:`WorkStopped` at their next step once
        ``should_stop()`` is true (the sample they were for has been left)."""

    def check_request(self, target: str | None, foil: str | None, predicted: int | None = None) -> None:
        """Raise :class:`alti.errors.AltiError` (one line) when ``target`` / ``foil`` cannot be
        explained; ``predicted`` (the index or token id predicted) stands for a ``None`` target."""

    def hold_slow_work(self, held: bool) -> None:
        """While held, slow work (gradients, curves, predictions) pauses at its next step."""

    def curves(self, explanation: Explanation, methods: Sequence[str]) -> Iterator[CurvePoint | CurveScore]: ...

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]: ...


class WorkStopped(Exception):
    """A slow method stopped because its sample is no longer shown."""


#: Points of the deletion curves computed per batch: small, so the plots fill in steadily.
CURVE_BATCH = 8
#: Inputs per forward pass of a slow method that declares a chunk option (integrated
#: gradients' interpolated inputs, occlusion's occluded inputs, ...): each pass is a point
#: where the slow copy can give the cores to a new sample's ALTI rows.
SLOW_CHUNK = 10
#: Texts per forward pass when a language model predicts the sample list.
PREDICT_CHUNK = 16
#: The longest a forward pass of the slow copy waits for the ALTI rows to be done.
YIELD_LIMIT_S = 2.0
KINDS = {"comprehensiveness": "comp", "sufficiency": "suff"}


class EngineService:
    """The real service: one :class:`alti.Explainer` and one dataset.

    Pass ``explainer`` (and ``samples``) to use an already loaded model, as the
    tests and benchmarks do; otherwise :meth:`load` loads ``model`` by name.

    Two copies of the model, each behind its own lock: the engine's capture
    hooks (and Captum's) would record or alter a forward pass that another
    worker runs on the same modules at the same time.  The trace methods (the
    ALTI and attention families, one forward pass) run on the first copy; the
    slow work (gradients, occlusion, predictions, deletion curves) on the second,
    so a new sample's ALTI rows never wait for an old sample's integrated
    gradients to finish.  On a CPU both copies would share the cores, so every
    forward pass of the slow copy first waits until no trace explanation runs
    and the app does not hold slow work (:meth:`hold_slow_work`, from a sample
    switch until its rows are painted): the ALTI rows of a new sample get the
    machine to themselves.
    """

    def __init__(
        self,
        model: str = "demo",
        dataset: str | None = "samples",
        device: str = "auto",
        split: str | None = None,
        limit: int | None = 500,
        trust_remote_code: bool = False,
        explainer=None,
        samples: list[Sample] | None = None,
        adapter: str | None = None,
    ) -> None:
        self.model = model
        self.adapter = adapter
        self.dataset = dataset
        self.device = device
        self.split = split
        self.limit = limit
        self.trust_remote_code = trust_remote_code
        self.explainer = explainer
        self._samples = samples
        self._lock = threading.RLock()
        self._slow = None
        self._slow_lock = threading.RLock()
        self._should_stop: Callable[[], bool] | None = None  # the running slow explanation's
        self._fast_methods: frozenset[str] = frozenset()
        self._fast_running = 0
        self._held = False
        self._fast_idle = threading.Condition()

    def load(self, progress: Callable[[str], None]) -> ModelInfo:
        if self.explainer is None:
            from alti.process import quiet_libraries

            quiet_libraries()  # library warnings on stderr would draw over the screen
            progress("importing torch…")
            from alti import Explainer

            if self.adapter:
                from alti.adapters import load_adapter_file

                progress(f"reading the adapter {self.adapter}…")
                load_adapter_file(self.adapter)
            progress(f"loading the model {self.model}…")
            self.explainer = Explainer.from_pretrained(
                self.model, device=self.device, trust_remote_code=self.trust_remote_code, progress=progress
            )
        from alti.errors import UnsupportedModelError
        from alti.methods import METHODS

        explainer = self.explainer
        if explainer.target_type is None:
            raise UnsupportedModelError(
                f"{self.model} has no head to explain (a bare encoder); load a sequence classifier, "
                "a causal LM or a masked LM"
            )
        applicable = explainer.applicable_methods()
        infos = {name: METHODS[name].info for name in applicable}
        unavailable = {name: method.refusal(explainer) or "" for name, method in METHODS.items() if name not in infos}
        fast = frozenset(name for name in applicable if METHODS[name].source in FAST_SOURCES)
        self._fast_methods = fast
        return ModelInfo(
            name=explainer.name,
            labels=list(explainer.labels),
            methods=infos,
            default_methods=[m for m in explorer_methods(explainer.target_type.tokens) if m in infos],
            fast=fast,
            target=explainer.target_type,
            unavailable=unavailable,
        )

    def _slow_explainer(self):
        """The second copy, made on first use (call it holding ``_slow_lock``)."""
        if self._slow is None:
            import copy

            from alti import Explainer

            explainer = self.explainer
            model = copy.deepcopy(explainer.model)
            model.register_forward_pre_hook(lambda module, args: self._pause())
            self._slow = Explainer(model, explainer.tokenizer, name=explainer.name, device=explainer.device)
            self._slow.on_pause = self._pause  # DecompX and Value Zeroing between their steps
        return self._slow

    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = [] if self.dataset is None else self._read_dataset()
        return list(self._samples)

    def _read_dataset(self) -> list[Sample]:
        from alti.data import load_dataset

        labels = list(self.explainer.labels) if self.explainer is not None else []
        items = load_dataset(self.dataset, split=self.split, limit=self.limit)
        return [
            Sample(
                item.text, gold_label(item.label, labels), getattr(item, "target", None), getattr(item, "foil", None)
            )
            for item in items
        ]

    def predict(self, texts: Sequence[str], requests: Sequence[Request] | None = None) -> list[str | None]:
        if self.explainer.target_type.tokens:
            return self._predict_tokens(texts, requests)
        ids = [self.explainer.encode(text) for text in texts]
        with self._slow_lock:
            probabilities = self._slow_explainer().predict_ids(ids)
        return [self.explainer.labels[int(row.argmax())] for row in probabilities]

    def _predict_tokens(self, texts: Sequence[str], requests: Sequence[Request] | None) -> list[str | None]:
        """A language model's token at the row it reads: the likeliest in the vocabulary, or
        for a masked LM given a target and a foil, the likelier of the two; ``None`` for a
        text that cannot be read (a masked LM's text without one mask)."""
        from alti import targets as T

        asked = None if requests is None else [T.Request(*request) for request in requests]
        with self._slow_lock:
            predictions = self._slow_explainer().predictions(texts, asked, batch_size=PREDICT_CHUNK, skip_errors=True)
        return [None if p is None else p.label for p in predictions]

    def check_request(self, target: str | None, foil: str | None, predicted: int | None = None) -> None:
        from alti import targets as T

        explainer = self.explainer
        explainer.target_type.ids_of(
            T.Request(target, foil),
            predicted,
            explainer.labels,
            explainer.tokenizer,
            explainer.vocab_size,
        )

    def hold_slow_work(self, held: bool) -> None:
        """The app holds the slow copy from a sample switch until the new ALTI rows are
        painted: its rendering then has the interpreter and the cores to itself."""
        with self._fast_idle:
            self._held = held
            self._fast_idle.notify_all()

    def _pause(self) -> None:
        """Each step of the slow copy: give the cores to a new sample's ALTI rows, and stop
        a slow explanation whose sample has been left."""
        with self._fast_idle:
            self._fast_idle.wait_for(lambda: self._fast_running == 0 and not self._held, timeout=YIELD_LIMIT_S)
        if self._should_stop is not None and self._should_stop():
            raise WorkStopped

    def explain(
        self,
        text: str,
        methods: Sequence[str],
        target: str | None = None,
        foil: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Explanation:
        if all(m in self._fast_methods for m in methods):
            with self._fast_idle:
                self._fast_running += 1
            try:
                with self._lock:
                    return self.explainer.explain(text, methods=list(methods), target=target, foil=foil)
            finally:
                with self._fast_idle:
                    self._fast_running -= 1
                    self._fast_idle.notify_all()
        options = {m: {chunk: SLOW_CHUNK} for m in methods if (chunk := INFOS[m].chunk_option) is not None}
        with self._slow_lock:
            self._should_stop = should_stop
            try:
                return self._slow_explainer().explain(
                    text, methods=list(methods), options=options, target=target, foil=foil
                )
            finally:
                self._should_stop = None

    def curves(self, explanation: Explanation, methods: Sequence[str]) -> Iterator[CurvePoint | CurveScore]:
        """The paper's protocol (removal, bins, monotone envelope), point by point."""
        from alti.faithfulness import Protocol, collect, explained_target, sample_points

        special = explanation.special
        protocol = Protocol()
        last_step = len(protocol.ks(sum(1 for s in special if not s))) - 1
        points = sample_points(
            _Locked(self, self._slow_lock),
            explanation.input_ids,
            special,
            {m: explanation.scores[m] for m in methods},
            target=explained_target(explanation),
            protocol=protocol,
            batch_size=CURVE_BATCH,
        )
        seen: dict[tuple[str, str], list] = {}
        p_full = None
        for point in points:
            if point.metric == "comprehensiveness" and point.step == 0:
                p_full = point.probability
            seen.setdefault((point.method, point.metric), []).append(point)
            yield CurvePoint(point.method, KINDS[point.metric], point.fraction, point.value)
            if point.step == last_step:
                curve = collect(seen[(point.method, point.metric)], p_full=p_full)
                yield CurveScore(point.method, KINDS[point.metric], curve[(point.method, point.metric)].score)

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]:
        from alti.export import FILE_FORMATS, render, write_atomic

        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for fmt in FILE_FORMATS:
            path = directory / f"{stem}{fmt.suffixes[0]}"
            write_atomic(path, render(explanation, fmt.name, methods=list(explanation.scores)))
            written.append(path)
        return written


class _Locked:
    """The slow copy as the curve generator sees it: each batch runs under its lock."""

    def __init__(self, service: EngineService, lock: threading.RLock) -> None:
        self._service = service
        self._lock = lock
        self.tokenizer = service.explainer.tokenizer

    def quantities(self, id_lists, target, batch_size: int = 32):
        with self._lock:
            return self._service._slow_explainer().quantities(id_lists, target, batch_size=batch_size)


# ------------------------------------------------------------------ a run file
@dataclass(frozen=True)
class RunInfo:
    """An ``alti attribute`` file as the explorer shows it before any model is loaded.

    ``info`` describes the run's model from the file alone (its methods, labels and
    kind); ``predicted`` is each sample's recorded prediction; ``problems`` are one-line
    notes on lines that could not be read.
    """

    path: str
    info: ModelInfo
    samples: list[Sample]
    predicted: list[str]
    problems: list[str]
    has_curves: bool


@dataclass(frozen=True)
class Overview:
    """The run at a glance (:mod:`alti.runs`): mean curve scores per method (empty without
    curves), mean Spearman ρ per pair, top tokens per method, and per-sample histograms
    ``(title, counts, (low, high))``."""

    samples: int
    model: str
    protocol: dict[str, Any] | None
    table: dict[str, dict[str, float]]
    agreement: dict[str, dict[str, float]]
    top_tokens: dict[str, list[TokenStat]]
    histograms: list[tuple[str, list[int], tuple[float, float]]]


class RunService(EngineService):
    """An ``alti attribute`` file, read at once; the model behind it loads only when the
    explorer needs it (per-layer matrices, deletion curves the file lacks, typed text).

    The model is the one the file records (``demo`` and SmolLM2 by their load names)
    unless ``model`` names another.
    """

    def __init__(self, path: str, model: str | None = None, **engine) -> None:
        super().__init__(model=model or "", dataset=None, **engine)
        self.path = path
        self.model_given = model is not None
        self.run: Run | None = None
        self._opened: RunInfo | None = None

    def open_run(self) -> RunInfo:
        """Read the file (once; later calls return what the first read)."""
        if self._opened is None:
            self._opened = self._read()
        return self._opened

    def _read(self) -> RunInfo:
        from alti.catalog import INFOS
        from alti.runs import read_run

        run = self.run = read_run(self.path)
        unknown = [m for m in run.methods if m not in INFOS]
        if unknown:
            from alti.errors import InputError

            raise InputError(f"{self.path} scores methods this alti does not know: {', '.join(unknown)}")
        lm = run.target_type.tokens
        info = ModelInfo(
            name=run.model,
            labels=run.labels,
            methods={m: INFOS[m] for m in run.methods},
            default_methods=run.methods,
            target=run.target_type,
        )
        samples = [
            Sample(r["text"], None if lm else run.gold[i], run.gold[i] if lm else None)
            for i, r in enumerate(run.records)
        ]
        return RunInfo(self.path, info, samples, run.predicted, list(run.problems), run.has_curves)

    def load(self, progress: Callable[[str], None]) -> ModelInfo:
        if not self.model_given and self.explainer is None:
            from alti.loading import name_to_load

            self.model = name_to_load(self.run.model if self.run is not None else "")
        return super().load(progress)

    def stored(self, index: int) -> Explanation:
        """Sample ``index``'s explanation as the file records it (scores, no matrices)."""
        from alti.runfile import explanation_from_record

        return explanation_from_record(self.run.records[index])

    def stored_curves(self, index: int) -> list[CurvePoint | CurveScore] | None:
        """Sample ``index``'s deletion curves from the file, or None when it has none."""
        faithfulness = self.run.records[index].get("faithfulness")
        if faithfulness is None:
            return None
        items: list[CurvePoint | CurveScore] = []
        for method, curves in faithfulness["methods"].items():
            for metric, kind in KINDS.items():
                curve = curves[metric]
                items.extend(CurvePoint(method, kind, x, y) for x, y in zip(curve["fractions"], curve["values"]))
                items.append(CurveScore(method, kind, float(curve["score"])))
        return items

    def arrange(self, how: Order, where: Filter) -> list[int]:
        """The samples listed, in order (:func:`alti.runs.order`)."""
        from alti.runs import order

        return order(self.run, how, where)

    def overview(self) -> Overview:
        from alti import runs

        run = self.run
        histograms = []
        if run.has_curves:
            for method in run.methods:
                for metric in ("comprehensiveness", "sufficiency"):
                    counts, edges = runs.histogram(run.curve_scores(method, metric))
                    histograms.append((f"{metric[:4]}. {method}", counts.tolist(), (float(edges[0]), float(edges[-1]))))
        else:
            counts, _ = runs.histogram(run.confidence, span=(0.0, 1.0))
            histograms.append(("confidence", counts.tolist(), (0.0, 1.0)))
            first = run.methods[0]
            for other in run.methods[1:]:
                counts, _ = runs.histogram(run.spearman(first, other), span=(-1.0, 1.0))
                histograms.append((f"ρ {first}–{other}", counts.tolist(), (-1.0, 1.0)))
        return Overview(
            samples=len(run),
            model=run.model,
            protocol=run.protocol,
            table=runs.faithfulness_table(run),
            agreement=runs.agreement(run),
            top_tokens={m: runs.top_tokens(run, m) for m in run.methods},
            histograms=histograms,
        )
