"""The explorer's door to the engine: :class:`EngineService`, a model and its dataset.

It implements :class:`alti_tui.models.DatasetService`, backed by :class:`alti.Explainer`
(and serves :class:`alti_tui.run_service.RunService` the model behind a run file).
Nothing here imports torch or the engine at module level: :meth:`EngineService.load`
does, inside the loading worker, so the first screen paints before torch is imported.

Every method may be called from a worker thread.  Errors the user can act on are
raised as :class:`alti.errors.AltiError` with a one-line message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from alti.catalog import INFOS, explorer_methods
from alti.runs import gold_label
from alti_tui.models import AnswerSettings, CurveScore, ListedSample, ModelInfo, PlotPoint, TargetAndFoil, WorkStopped

if TYPE_CHECKING:
    from alti.results import Explanation

#: Where the scores of methods computed from the one captured forward pass come from.
FAST_SOURCES = ("trace", "logit")
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
#: the curves panel's short name of each deletion curve
CURVES = {"comprehensiveness": "comp", "sufficiency": "suff"}


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
        samples: list[ListedSample] | None = None,
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
            answers=explainer.head.task == "causal_lm",
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

    def samples(self) -> list[ListedSample]:
        if self._samples is None:
            self._samples = [] if self.dataset is None else self._read_dataset()
        return list(self._samples)

    def _read_dataset(self) -> list[ListedSample]:
        from alti.data import load_dataset

        labels = list(self.explainer.labels) if self.explainer is not None else []
        items = load_dataset(self.dataset, split=self.split, limit=self.limit)
        return [
            ListedSample(
                item.text,
                gold_label(item.label, labels),
                getattr(item, "target", None),
                getattr(item, "foil", None),
                getattr(item, "answer", None),
                getattr(item, "segments", None),
            )
            for item in items
        ]

    def predict(self, texts: Sequence[str], requests: Sequence[TargetAndFoil] | None = None) -> list[str | None]:
        if self.explainer.target_type.tokens:
            return self._predict_tokens(texts, requests)
        ids = [self.explainer.encode(text) for text in texts]
        with self._slow_lock:
            probabilities = self._slow_explainer().predict_ids(ids)
        return [self.explainer.labels[int(row.argmax())] for row in probabilities]

    def _predict_tokens(self, texts: Sequence[str], requests: Sequence[TargetAndFoil] | None) -> list[str | None]:
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
        progress: Callable[[int, int], None] | None = None,
        like: Explanation | None = None,
    ) -> Explanation:
        if all(m in self._fast_methods for m in methods):
            with self._fast(progress):
                return _explain(self.explainer, text, methods, target, foil, like)
        options = {m: {chunk: SLOW_CHUNK} for m in methods if (chunk := INFOS[m].chunk_option) is not None}
        with self._slow_lock:
            self._should_stop = should_stop
            try:
                return _explain(self._slow_explainer(), text, methods, target, foil, like, options)
            finally:
                self._should_stop = None

    @contextmanager
    def _fast(self, progress: Callable[[int, int], None] | None) -> Iterator[None]:
        """Fast work on the main copy: the slow copy yields the cores meanwhile."""
        with self._fast_idle:
            self._fast_running += 1
        try:
            with self._lock:
                self.explainer.on_progress = progress
                try:
                    yield
                finally:
                    self.explainer.on_progress = None
        finally:
            with self._fast_idle:
                self._fast_running -= 1
                self._fast_idle.notify_all()

    def answer(
        self,
        prompt: str,
        methods: Sequence[str],
        settings: AnswerSettings,
        on_token: Callable[[str], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Explanation:
        from alti import answers

        with self._fast(progress):
            explainer = self.explainer
            heard = None if on_token is None else (lambda ids: on_token(explainer.tokenizer.decode(ids)))
            tokens = settings.tokens if settings.answer is None else None
            prepared = answers.prepare(
                explainer, prompt, settings.answer, tokens, settings.chat, settings.system, on_token=heard
            )
            found = explainer.explain_answer_ids(prepared.ids, prepared.target, list(methods))
            return answers.finish(found, prepared, settings.spans if settings.spans is not None else settings.segments)

    def curves(self, explanation: Explanation, methods: Sequence[str]) -> Iterator[PlotPoint | CurveScore]:
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
            yield PlotPoint(point.method, CURVES[point.metric], point.fraction, point.value)
            if point.step == last_step:
                curve = collect(seen[(point.method, point.metric)], p_full=p_full)
                yield CurveScore(point.method, CURVES[point.metric], curve[(point.method, point.metric)].score)

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


def _explain(explainer, text, methods, target, foil, like, options=None) -> Explanation:
    """``text`` explained for ``target``/``foil``; a run file's whole answer (``like``) is
    explained again as that answer, from the file's tokens."""
    from alti.targets import AnswerTarget

    if like is not None and isinstance(like.target, AnswerTarget):
        result = explainer.explain_answer_ids(like.input_ids, like.target, list(methods), options)
        result.text = like.text
        return result
    return explainer.explain(text, methods=list(methods), options=options, target=target, foil=foil)
