"""``alti-tui``: browse samples, compare attribution methods, scrub layers, watch deletion curves."""

from __future__ import annotations

import argparse
import functools
import gc
import re
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from alti.errors import InputError
from alti.export import write_atomic
from alti.runs import Filter, Order
from alti_tui.explained import curve_quantity, target_spec
from alti_tui.messages import (
    CurvesDone,
    CurveUpdate,
    ExplanationReady,
    ExportDone,
    LoadFailed,
    LoadProgress,
    ModelLoaded,
    OverviewReady,
    PredictionsReady,
    RunOpened,
    WorkFailed,
)
from alti_tui.models import DatasetService, ListedSample, ModelInfo, RunFileService, RunInfo, TargetAndFoil, WorkStopped
from alti_tui.screens.help import HelpScreen
from alti_tui.screens.methods import MethodScreen
from alti_tui.screens.overview import OverviewScreen
from alti_tui.screens.sentence import SentenceScreen
from alti_tui.screens.sort import SortScreen
from alti_tui.screens.target import Choice, TargetScreen, shown_token
from alti_tui.widgets.attributions import AttributionPanel
from alti_tui.widgets.curves import CurvesPanel
from alti_tui.widgets.matrix import MatrixPanel
from alti_tui.widgets.samples import SampleBrowser

if TYPE_CHECKING:
    from alti.results import Explanation

PREDICT_BATCH = 16
#: Keys of a run file (alti-tui --attributions), hidden without one.
RUN_ACTIONS = frozenset({"sort", "wrong_only", "overview"})


def merge(first: Explanation, second: Explanation) -> Explanation:
    """``first`` with ``second``'s methods added (same input, same prediction); where both
    score a method (a run file's scores, recomputed for their matrices) ``first``'s stay."""
    return replace(
        first,
        scores={**first.scores, **{m: s for m, s in second.scores.items() if m not in first.scores}},
        layers={**first.layers, **second.layers},
        settings={**first.settings, **second.settings},
    )


def while_open(handler):
    """For handlers of the workers' messages: one may arrive after the app has begun to
    close and its widgets are gone; it is dropped then."""

    @functools.wraps(handler)
    def handle(app: AltiApp, message) -> None:
        if app.is_running and app.query("#main"):  # shutting down clears is_running first
            handler(app, message)

    return handle


def describe(error: BaseException) -> str:
    from alti.errors import AltiError

    if isinstance(error, AltiError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class AltiApp(App[None]):
    """The explorer.  ``service`` is its only access to the engine."""

    CSS_PATH = "app.tcss"
    TITLE = "alti"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("n", "step(1)", "next"),
        Binding("p", "step(-1)", "prev"),
        Binding("slash", "sentence", "sentence"),
        Binding("f", "filter", "filter"),
        Binding("s", "sort", "sort"),
        Binding("w", "wrong_only", "✗ only", show=False),
        Binding("o", "overview", "overview"),
        Binding("m", "methods", "methods"),
        Binding("c", "target", "target/foil"),
        Binding("left_square_bracket", "layer(-1)", "layer-"),
        Binding("right_square_bracket", "layer(1)", "layer+"),
        Binding("r", "rolled", "rolled"),
        Binding("x", "matrix_method", "matrix", show=False),
        Binding("t", "tab", "matrix/curves"),
        Binding("z", "zoom", "zoom"),
        Binding("e", "export", "export"),
        Binding("left", "cursor(-1)", "token←", show=False),
        Binding("right", "cursor(1)", "token→", show=False),
    ]

    def __init__(
        self,
        service: DatasetService | RunFileService,
        methods: list[str] | None = None,
        export_dir: Path | str = "alti-exports",
        label: str = "",
        target: str | None = None,
        foil: str | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.requested_methods = methods
        #: What every sample explains unless it has its own (``--target`` / ``--foil``).
        self.default_request: TargetAndFoil = (target, foil)
        #: Targets and foils chosen with ``c``, per sample (or typed text).
        self.choices: dict[tuple, TargetAndFoil] = {}
        #: What the current explanation was asked for.
        self.request: TargetAndFoil = (None, None)
        self.export_dir = Path(export_dir)
        self.info: ModelInfo | None = None
        self.samples: list[ListedSample] = []
        self.methods: list[str] = []
        self.generation = 0
        self.sample_index: int | None = None
        self.text: str | None = None
        self.explanation: Explanation | None = None
        self.pending: list[str] = []
        self.matrix_method: str | None = None
        self.load_error: str | None = None
        self.predictions_started = False
        #: Held while a slow method (gradients, occlusion) computes for some sample.
        self._slow_turn = threading.Lock()
        #: Set once the current sample's ALTI rows are painted: its slow methods start after.
        self._rows_painted = threading.Event()
        #: Showing an ``alti attribute`` file: rows come from it, the model loads behind them.
        self.run_mode = hasattr(service, "open_run")
        self.run_info: RunInfo | None = None
        #: The model is loaded (in run mode it loads after the first rows are painted).
        self.model_ready = False
        self.model_requested = not self.run_mode
        self.order = Order()
        self.only_wrong = False
        #: The shown deletion curves were read from the run file (nothing to compute).
        self.curves_from_file = False
        self.sub_title = label or "loading…"

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield SampleBrowser(id="samples")
            with Vertical(id="right"):
                yield AttributionPanel(id="attributions")
                with TabbedContent(id="tabs"):
                    with TabPane("Contribution matrix", id="tab-matrix"):
                        yield MatrixPanel(id="matrix")
                    with TabPane("Deletion curves", id="tab-curves"):
                        yield CurvesPanel(id="curves")
        with Horizontal(id="status-bar"):
            yield Static("starting…", id="status")
            yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="progress")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sample-list").focus()
        if self.run_mode:
            self.open_run()
        else:
            self.load_model()

    def on_unmount(self) -> None:
        gc.unfreeze()  # the heap frozen at load is the collector's again once the app is gone

    @property
    def attributions(self) -> AttributionPanel:
        return self.query_one(AttributionPanel)

    @property
    def matrix(self) -> MatrixPanel:
        return self.query_one(MatrixPanel)

    @property
    def curves(self) -> CurvesPanel:
        return self.query_one(CurvesPanel)

    @property
    def browser(self) -> SampleBrowser:
        return self.query_one(SampleBrowser)

    def set_status(self, text: str, busy: bool = False) -> None:
        """``busy`` animates the progress bar: only while the model loads, as each frame
        of it repaints the screen and takes the interpreter from the workers.  A worker's
        message may arrive while the app closes: then there is no status bar left."""
        for status in self.query("#status").results(Static):
            status.update(text, layout=False)
        for bar in self.query("#progress"):
            bar.display = busy

    # ---------------------------------------------------------------- loading
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_model(self) -> None:
        try:
            info = self.service.load(lambda text: self.post_message(LoadProgress(text)))
        except Exception as error:  # noqa: BLE001 - shown in the app, never a crash
            self.post_message(LoadFailed(describe(error)))
            return
        if self.run_mode:
            self.post_message(ModelLoaded(info, []))
            return
        self.post_message(LoadProgress("reading the samples…"))
        try:
            samples = self.service.samples()
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"no samples: {describe(error)}; press / to type a sentence"))
            samples = []
        self.post_message(ModelLoaded(info, samples))

    @while_open
    def on_load_progress(self, message: LoadProgress) -> None:
        if self.run_mode and self.run_info is not None:
            self.set_status(f"{self._run_status()} · model: {message.text}", busy=True)
        else:
            self.set_status(message.text, busy=True)

    @while_open
    def on_load_failed(self, message: LoadFailed) -> None:
        self.load_error = message.error
        if self.run_mode and self.run_info is not None:
            self.set_status(f"{self._run_status()} · model not loaded: {message.error}")
            self.matrix.note = f"per-layer matrices need the model, which did not load: {message.error}"
            self.matrix.refresh_view()
            if self.curves.status != "done":
                self.curves.finish("no model: the deletion curves need it")
        else:
            self.set_status(f"model not loaded: {message.error}")
        self.notify(message.error, title="Loading failed", severity="error", timeout=30)

    # ------------------------------------------------------------- a run file
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def open_run(self) -> None:
        try:
            run = self.service.open_run()
        except Exception as error:  # noqa: BLE001 - shown in the app, never a crash
            self.post_message(LoadFailed(describe(error)))
            return
        self.post_message(RunOpened(run))

    @while_open
    def on_run_opened(self, message: RunOpened) -> None:
        run = self.run_info = message.run
        self.info = run.info
        self.sub_title = f"{Path(run.path).name} · {run.info.name}"
        self.methods = self._initial_methods(run.info)
        self.attributions.infos = run.info.methods
        self.matrix.cumulative_methods = frozenset(n for n, i in run.info.methods.items() if i.cumulative)
        self.matrix_method = self._first_matrix_method()
        self.matrix.note = "per-layer matrices need the model: loading it…"
        self.samples = run.samples
        self.predictions_started = True  # the file has them
        self.browser.sample_order = self._arrange
        self.browser.set_samples(run.samples, run.info.labels, run.info.kind, predicted=run.predicted)
        self.set_status(self._run_status())
        self.refresh_bindings()
        for problem in run.problems:
            self.notify(problem, title="Run file", severity="warning", timeout=20)

    def _run_status(self) -> str:
        assert self.run_info is not None
        curves = "curves" if self.run_info.has_curves else "no curves"
        return f"{Path(self.run_info.path).name} · {len(self.run_info.samples)} samples · {curves}"

    def _arrange(self, text: str) -> list[int]:
        return self.service.arrange(self.order, Filter(text, self.only_wrong))

    @while_open
    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.model_ready = True
        if self.run_mode:
            self._run_model_loaded(message.info)
            return
        self.info = message.info
        self.sub_title = message.info.name
        self.methods = self._initial_methods(message.info)
        self.attributions.infos = message.info.methods
        self.matrix.cumulative_methods = frozenset(
            name for name, info in message.info.methods.items() if info.cumulative
        )
        self.matrix_method = self._first_matrix_method()
        self.samples = message.samples
        self.set_status(f"{message.info.name} · {len(self.samples)} samples")
        self.browser.set_samples(self.samples, message.info.labels, message.info.kind)
        # What is alive now (torch, the model, Textual) lives as long as the app: freeze it out
        # of the collector's full passes, which scanned it all and paused a switch by up to 0.3 s.
        gc.freeze()
        if not self.samples:
            self.notify("The dataset has no samples; press / to type a sentence.", severity="warning")

    def _run_model_loaded(self, info: ModelInfo) -> None:
        """The run's model is loaded: the file's methods keep their recorded infos, the
        others that apply can be added (m); the current sample gets its matrices and curves."""
        self.info = replace(info, methods={**info.methods, **self.run_info.info.methods})
        self.attributions.infos = self.info.methods
        self.matrix.cumulative_methods = frozenset(n for n, i in self.info.methods.items() if i.cumulative)
        self.matrix.note = None
        self.set_status(f"{self._run_status()} · model {info.name} loaded")
        gc.freeze()
        if self.text is not None:
            self.explain(self.text)

    def _initial_methods(self, info: ModelInfo) -> list[str]:
        wanted = self.requested_methods or info.default_methods or list(info.methods)[:3]
        refused = [f"{m} ({info.unavailable[m]})" for m in wanted if m in info.unavailable]
        unknown = [m for m in wanted if m not in info.methods and m not in info.unavailable]
        if refused:
            self.notify(
                f"not for this model: {'; '.join(refused)}; methods that apply: {', '.join(info.methods)}",
                severity="error",
                timeout=15,
            )
        if unknown:
            self.notify(
                f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(info.methods)}",
                severity="error",
                timeout=15,
            )
        return [m for m in wanted if m in info.methods] or list(info.methods)[:1]

    def _first_matrix_method(self) -> str | None:
        assert self.info is not None
        if self.matrix_method in self.methods:
            return self.matrix_method
        return next((m for m in self.methods if self.info.methods[m].matrix), None)

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False)
    def predict_samples(self, texts: list[str], requests: list[TargetAndFoil] | None = None) -> None:
        worker = get_current_worker()
        try:
            for start in range(0, len(texts), PREDICT_BATCH):
                if worker.is_cancelled:
                    return
                chunk = None if requests is None else requests[start : start + PREDICT_BATCH]
                labels = self.service.predict(texts[start : start + PREDICT_BATCH], chunk)
                self.post_message(PredictionsReady(start, ["?" if label is None else label for label in labels]))
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"predicting the samples: {describe(error)}"))

    @while_open
    def on_predictions_ready(self, message: PredictionsReady) -> None:
        self.browser.set_predictions(message.start, message.labels)

    # -------------------------------------------------------------- explaining
    def on_sample_browser_chosen(self, message: SampleBrowser.Chosen) -> None:
        if message.index != self.sample_index or self.text is None:
            self.sample_index = message.index
            self.explain(self.samples[message.index].text)

    def _key(self, text: str | None = None) -> tuple:
        """What a chosen target belongs to: the current sample, or a typed text."""
        if self.sample_index is not None:
            return ("sample", self.sample_index)
        return ("text", self.text if text is None else text)

    def request_for(self, text: str) -> TargetAndFoil:
        """The target and foil to explain ``text`` with: chosen with ``c``, else the
        sample's own (language models), else ``--target`` / ``--foil``."""
        key = self._key(text)
        if key in self.choices:
            return self.choices[key]
        target, foil = self.default_request
        if self.sample_index is not None and self.info is not None and self.info.is_lm:
            sample = self.samples[self.sample_index]
            target = sample.target if sample.target is not None else target
            foil = sample.foil if sample.foil is not None else foil
        return target, foil

    def explain(self, text: str) -> None:
        """Start explaining ``text``; everything computed for older samples is dropped."""
        if self.info is None:
            self.notify("The model is still loading.", severity="warning")
            return
        stored = self._stored()
        if stored is None and not self.model_ready:
            self.notify("The model is still loading: typed text and chosen targets need it.", severity="warning")
            return
        self.generation += 1
        self.text = text
        self.workers.cancel_group(self, "curves")
        if stored is not None:
            self._show_stored(stored)
            return
        self.request = self.request_for(text)
        self.explanation = None
        self.curves_from_file = False
        self.pending = list(self.methods)
        has_fast = any(self.info.is_fast(m) for m in self.methods)
        self.service.hold_slow_work(has_fast)
        if has_fast:
            self._rows_painted.clear()
        else:
            self._rows_painted.set()
        self.curves.reset(self.methods, "waiting for the attributions")
        self.attributions.show(None, self.methods, self.pending)
        self.attributions.message = "explaining…"
        self.set_status("explaining…")
        self.explain_worker(self.generation, text, list(self.methods), self.request)

    def _stored(self) -> Explanation | None:
        """The current sample's explanation from the run file (None for typed text, a target
        chosen with c, or outside run mode)."""
        if not self.run_mode or self.sample_index is None or self._key() in self.choices:
            return None
        return self.service.stored(self.sample_index)

    def _show_stored(self, stored: Explanation) -> None:
        """A run file's sample: its rows at once; with the model loaded, the matrices of the
        methods computed from one forward pass, any method the file lacks, and deletion curves
        when the file has none."""
        assert self.info is not None
        self.request = target_spec(stored)
        self.explanation = stored
        self.service.hold_slow_work(False)
        self._rows_painted.set()
        missing = [m for m in self.methods if m not in stored.scores]
        matrices = [
            m for m in self.methods if m in stored.scores and self.info.methods[m].matrix and self.info.is_fast(m)
        ]
        self.pending = missing if self.model_ready else []
        self._show_explanation()
        stored_curves = self.service.stored_curves(self.sample_index)
        self.curves_from_file = stored_curves is not None
        self.curves.reset(self.methods, "from the run file", *curve_quantity(stored))
        if stored_curves is not None:
            for item in stored_curves:
                if item.method in self.methods:
                    self.curves.add(item)
            self.curves.finish()
        elif not self.model_ready:
            self.curves.finish("the deletion curves need the model: loading it…")
        self.set_status(self._summary() if self.model_ready else f"{self._summary()} · loading the model…")
        if not self.model_requested:  # the first rows are up: the model may take the interpreter now
            self.model_requested = True
            self.call_after_refresh(self.load_model)
        if self.model_ready and (missing or matrices):
            self.explain_worker(self.generation, stored.text, missing + matrices, self.request, stored)
        elif self.model_ready and stored_curves is None:
            self.curves.reset(self.methods, "computing…", *curve_quantity(stored))
            self.curves_worker(self.generation, stored, list(self.methods))

    @work(thread=True, exclusive=True, group="explain", exit_on_error=False)
    def explain_worker(
        self,
        generation: int,
        text: str,
        methods: list[str],
        request: TargetAndFoil = (None, None),
        base: Explanation | None = None,
    ) -> None:
        """The ALTI family first (one forward pass), then each slower method; their results
        are added to ``base`` (a run file's scores) when given."""
        assert self.info is not None
        worker = get_current_worker()
        fast = [m for m in methods if self.info.is_fast(m)]
        slow = [m for m in methods if m not in fast]
        stages = ([fast] if fast else []) + [[m] for m in slow]
        explanation = base
        try:
            for done, stage in enumerate(stages, start=1):
                if worker.is_cancelled:
                    return
                if stage is fast:
                    result = self.service.explain(text, stage, *request)
                elif self._take_slow_turn(worker):
                    try:
                        result = self.service.explain(text, stage, *request, should_stop=lambda: worker.is_cancelled)
                    except WorkStopped:
                        return
                    finally:
                        self._slow_turn.release()
                else:
                    return
                if base is not None and list(result.input_ids) != list(base.input_ids):
                    raise InputError(
                        f"the model reads this sample as other tokens than the run file ({len(result.input_ids)} "
                        f"against {len(base.input_ids)}): was the run written with another model? (--model)"
                    )
                explanation = result if explanation is None else merge(explanation, result)
                pending = [m for s in stages[done:] for m in s]
                self.post_message(ExplanationReady(generation, explanation, pending))
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(describe(error), generation))

    def _take_slow_turn(self, worker) -> bool:
        """Wait for the ALTI rows to be painted and for an older sample's slow method
        to finish; ``False`` once this worker is cancelled.

        Cancelled workers give up while they wait, so stale gradients never queue
        up behind each other (nor fill the thread pool the workers run in).
        """
        while not self._rows_painted.wait(timeout=0.05):
            if worker.is_cancelled:
                return False
        while not self._slow_turn.acquire(timeout=0.05):
            if worker.is_cancelled:
                return False
        return True

    @while_open
    def on_explanation_ready(self, message: ExplanationReady) -> None:
        if message.generation != self.generation:
            return
        first = self.explanation is None
        self.explanation = message.explanation
        self.pending = message.pending
        self._show_explanation()
        if first:
            self.call_after_refresh(self._release_slow_work, message.generation)
            for note in message.explanation.notes:
                self.notify(note, severity="warning", timeout=10)
        if not self.predictions_started:
            self.predictions_started = True
            requests = None
            if self.info is not None and self.info.kind == "masked_token":
                requests = [(s.target, s.foil) for s in self.samples]
            self.predict_samples([s.text for s in self.samples], requests)
        if message.pending:
            self.set_status(f"computing {', '.join(message.pending)}…")
        elif self.curves_from_file:
            self.set_status(self._summary())
        else:
            self.set_status(self._summary())
            self.curves.reset(self.methods, "computing…", *curve_quantity(message.explanation))
            self.curves_worker(self.generation, message.explanation, list(self.methods))

    def _release_slow_work(self, generation: int) -> None:
        """The ALTI rows of ``generation`` are painted: slow work may go on (unless a newer sample waits)."""
        if generation == self.generation:
            self.service.hold_slow_work(False)
            self._rows_painted.set()

    def _summary(self) -> str:
        assert self.explanation is not None and self.info is not None
        where = "typed sentence" if self.sample_index is None else f"sample {self.sample_index + 1}"
        gold = ""
        sample = self.samples[self.sample_index] if self.sample_index is not None else None
        if sample is not None and self.info.is_lm and sample.target is not None:
            gold = f" · data target {sample.target!r}" + (f" foil {sample.foil!r}" if sample.foil is not None else "")
        elif sample is not None and not self.info.is_lm and sample.label is not None:
            gold = f" · gold {sample.label}"
        return f"{self.info.name} · {where}{gold} · {len(self.explanation.tokens)} tokens"

    def _show_explanation(self) -> None:
        self.attributions.show(self.explanation, self.methods, self.pending)
        self.matrix.show(self.explanation, self.matrix_method, self.attributions.cursor)

    @work(thread=True, exclusive=True, group="curves", exit_on_error=False)
    def curves_worker(self, generation: int, explanation: Explanation, methods: list[str]) -> None:
        worker = get_current_worker()
        points = self.service.curves(explanation, methods)
        try:
            for item in points:
                if worker.is_cancelled:
                    return
                self.post_message(CurveUpdate(generation, item))
            self.post_message(CurvesDone(generation))
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"deletion curves: {describe(error)}", generation))
        finally:
            close = getattr(points, "close", None)
            if close is not None:
                close()

    @while_open
    def on_curve_update(self, message: CurveUpdate) -> None:
        if message.generation == self.generation:
            self.curves.add(message.item)

    @while_open
    def on_curves_done(self, message: CurvesDone) -> None:
        if message.generation == self.generation:
            self.curves.finish()

    @while_open
    def on_work_failed(self, message: WorkFailed) -> None:
        if message.generation is not None and message.generation != self.generation:
            return
        if message.generation is not None and re.search(r"\b(target|foil)\b", message.error):
            message.error += " (c chooses the target and the foil)"
        if message.generation is not None:
            self.service.hold_slow_work(False)
            self._rows_painted.set()
            self.pending = []
            if self.explanation is None:
                self.attributions.message = f"could not explain: {message.error}"
            else:
                self._show_explanation()
            self.curves.finish("stopped")
            self.set_status(message.error)
        self.notify(message.error, title="alti", severity="error", timeout=15)

    # ----------------------------------------------------------------- actions
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_step(self, delta: int) -> None:
        self.browser.step(delta)

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Sorting, the misclassified filter and the overview exist for run files only."""
        if action in RUN_ACTIONS:
            return self.run_info is not None
        return True

    def action_sort(self) -> None:
        """Order the sample list (a run file's samples): misclassified, least confident, …"""
        assert self.run_info is not None

        def apply(order: Order | None) -> None:
            if order is None:
                return
            previous, self.order = self.order, order
            try:
                self.browser.rearrange(self._order_note())
            except Exception as error:  # noqa: BLE001 - e.g. curves asked of a run without them
                self.order = previous
                self.notify(describe(error), severity="error", timeout=10)

        self.push_screen(SortScreen(self.run_info.info.methods, self.order, self.run_info.has_curves), apply)

    def action_wrong_only(self) -> None:
        self.only_wrong = not self.only_wrong
        self.browser.rearrange(self._order_note())

    def _order_note(self) -> str:
        """The order and filter in force, for the sample list's title."""
        parts = [] if self.order.key == "dataset" else [f"↓ {self.order.describe()}"]
        return " · ".join(parts + (["✗ only"] if self.only_wrong else []))

    def action_overview(self) -> None:
        """The run at a glance: faithfulness table, method agreement, top tokens, distributions."""
        assert self.run_info is not None
        screen = OverviewScreen(self.run_info.path)
        self.push_screen(screen)
        self.overview_worker()

    @work(thread=True, exclusive=True, group="overview", exit_on_error=False)
    def overview_worker(self) -> None:
        try:
            self.post_message(OverviewReady(self.service.overview()))
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"overview: {describe(error)}"))

    @while_open
    def on_overview_ready(self, message: OverviewReady) -> None:
        if isinstance(self.screen, OverviewScreen):
            self.screen.show(message.overview)

    def action_sentence(self) -> None:
        def explain_typed(text: str | None) -> None:
            if text is None:
                return
            if not text.strip():
                self.notify("Empty input: type a sentence to explain.", severity="error")
                return
            self.sample_index = None
            self.explain(text)

        self.push_screen(SentenceScreen(), explain_typed)

    def action_methods(self) -> None:
        if self.info is None:
            self.notify("The model is still loading.", severity="warning")
            return

        def apply(chosen: list[str] | None) -> None:
            if chosen is None or chosen == self.methods:
                return
            if not chosen:
                self.notify("Choose at least one method.", severity="error")
                return
            self.methods = chosen
            self.matrix_method = self._first_matrix_method()
            if self.text is not None:
                self.explain(self.text)

        self.push_screen(MethodScreen(self.info.methods, self.methods), apply)

    def action_target(self) -> None:
        """Choose the target and the foil among the likeliest tokens (or classes), or type one."""
        if self.info is None or not self.model_ready:
            self.notify("The model is still loading.", severity="warning")
            return
        if self.text is None:
            self.notify("Choose a sample or type a sentence (/) first.", severity="warning")
            return
        explanation = self.explanation
        choices: list[Choice] = []
        predicted = None
        if explanation is not None:
            p = explanation.prediction
            if p.ids is not None:
                choices = [
                    Choice(shown_token(t), f"id:{i}", float(q)) for t, i, q in zip(p.labels, p.ids, p.probabilities)
                ]
                predicted = f"id:{p.index}"
            else:
                choices = [Choice(label, label, float(q)) for label, q in zip(p.labels, p.probabilities)]
                predicted = p.label
        if self.info.is_lm:
            heading = "Next tokens" if self.info.kind == "next_token" else "Tokens at the mask"
        else:
            heading = "Classes"
        target, foil = self.request
        known: dict[str, str] = {}
        if explanation is not None and explanation.text == self.text and explanation.target:
            # what the engine resolved (a typed token's first piece) by its id, shown by its text
            resolved = target_spec(explanation)
            target = resolved[0] if target is not None else None
            foil = resolved[1] if foil is not None else None
            for spec, entry in zip(resolved, (explanation.target["target"], explanation.target.get("foil"))):
                if spec is not None and entry is not None:
                    name = str(entry.get("label", entry.get("token")))
                    known[spec] = shown_token(name) if self.info.is_lm else name
        text, key = self.text, self._key()

        def check(chosen: TargetAndFoil) -> str | None:
            predicted = None
            if explanation is not None and explanation.text == text and chosen[0] is None:
                predicted = int(explanation.prediction.index)
            try:
                self.service.check_request(chosen[0], chosen[1], predicted)
            except Exception as error:  # noqa: BLE001 - a message, never a crash
                return describe(error)
            return None

        def apply(chosen: TargetAndFoil | None) -> None:
            if chosen is None or self.text != text or self._key() != key:
                return
            self.choices[key] = chosen
            self.explain(text)

        screen = TargetScreen(choices, target, foil, self.info.is_lm, heading, predicted, known, check)
        self.push_screen(screen, apply)

    def action_layer(self, step: int) -> None:
        self.matrix.step_layer(step)

    def action_rolled(self) -> None:
        self.matrix.rolled = not self.matrix.rolled

    def action_matrix_method(self) -> None:
        if self.info is None:
            return
        options = [m for m in self.methods if self.info.methods[m].matrix]
        if not options:
            self.notify("No matrix method shown; press m to add one (e.g. alti).", severity="warning")
            return
        index = options.index(self.matrix_method) + 1 if self.matrix_method in options else 0
        self.matrix_method = options[index % len(options)]
        self.matrix.show(self.explanation, self.matrix_method, self.attributions.cursor)

    def action_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-curves" if tabs.active == "tab-matrix" else "tab-matrix"

    def action_zoom(self) -> None:
        """The focused panel fills the screen, or back to all panels (Esc too)."""
        if self.screen.maximized is not None:
            self.screen.minimize()
        else:
            self.screen.maximize(self.focused or self.attributions)

    def action_cursor(self, step: int) -> None:
        self.attributions.action_move(step)

    def on_attribution_panel_cursor_moved(self, message: AttributionPanel.CursorMoved) -> None:
        self.matrix.show(self.explanation, self.matrix_method, message.cursor)

    def action_export(self) -> None:
        if self.explanation is None or self.pending:
            self.notify("Nothing to export yet: wait for the attributions.", severity="warning")
            return
        stem = self._export_stem()
        screenshot = self.export_screenshot()
        self.export_worker(self.explanation, stem, screenshot)

    def _export_stem(self) -> str:
        if self.sample_index is not None:
            return f"sample-{self.sample_index + 1:04d}"
        words = re.sub(r"[^a-z0-9]+", "-", (self.text or "").lower()).strip("-")
        return f"typed-{words[:32] or 'sentence'}"

    @work(thread=True, group="export", exit_on_error=False)
    def export_worker(self, explanation: Explanation, stem: str, screenshot: str) -> None:
        try:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            paths = self.service.export(explanation, self.export_dir, stem)
            screen = self.export_dir / f"{stem}-screen.svg"
            write_atomic(screen, screenshot)
            paths.append(screen)
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"export: {describe(error)}"))
            return
        self.post_message(ExportDone([str(p.resolve()) for p in paths]))

    @while_open
    def on_export_done(self, message: ExportDone) -> None:
        folder = str(Path(message.paths[0]).parent)
        names = "\n".join(Path(p).name for p in message.paths)
        self.notify(f"{folder}/\n{names}", title="Exported", timeout=20)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alti-tui",
        description="Explore ALTI and the comparison methods in the terminal: a classifier's class, "
        "a causal LM's next token or a masked LM's token, against a foil if you like (key c).",
        epilog="examples:\n"
        "  alti-tui                                   demo sentiment classifier, embedded samples\n"
        "  alti-tui --model smollm2                   SmolLM2-135M-Instruct: press / and type a prompt\n"
        "  alti-tui --model smollm2 --foil ' London'  every prompt's prediction against ' London'\n"
        "  alti-tui --attributions run.jsonl          browse an 'alti attribute' run (s sort, o overview)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--attributions",
        "-a",
        metavar="RUN.jsonl",
        help="browse the output of 'alti attribute': rows come from the file at once, the model it records "
        "loads behind them for the heatmap, missing curves and typed text (s sorts, w ✗ only, o overview)",
    )
    parser.add_argument(
        "--model",
        help="Hugging Face name or local directory of a sequence classifier, causal LM or masked LM; "
        "'demo' (default) is the embedded sentiment classifier, 'smollm2' is SmolLM2-135M-Instruct; "
        "with --attributions: the model the file records",
    )
    parser.add_argument(
        "--dataset",
        default="samples",
        help="dataset name or csv/tsv/jsonl file (default: samples); for language models the target and "
        "foil columns say what each sample explains",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        help="methods shown first (default: alti rollout norm_rollout ig_l2 for classifiers, "
        "alti alti_logit logit gxi_dot for language models; m changes them)",
    )
    parser.add_argument(
        "--target",
        help="what to explain unless a sample says: a class (index or label), or a token as the tokenizer "
        "writes a continuation (' Paris', with its space) or id:1234 (default: the prediction; c changes it)",
    )
    parser.add_argument(
        "--foil",
        help="explain the target against this class or token: logit(target) - logit(foil) (default: none)",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    parser.add_argument("--limit", type=int, default=500, help="at most this many samples (default: 500)")
    parser.add_argument("--export-dir", default="alti-exports", help="where e writes (default: ./alti-exports)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (unsafe)")
    parser.add_argument(
        "--adapter",
        metavar="FILE.toml",
        help="module paths of an architecture alti does not know (as for alti explain --adapter)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from alti.errors import AltiError
    from alti.process import prepare
    from alti_tui.run_service import RunService
    from alti_tui.service import EngineService

    args = build_parser().parse_args(argv)
    prepare()
    methods = [m for item in args.methods or [] for m in item.split(",") if m] or None
    engine = {"device": args.device, "trust_remote_code": args.trust_remote_code, "adapter": args.adapter}
    if args.attributions:
        service = RunService(args.attributions, model=args.model, **engine)
        try:
            service.open_run()  # fast and torch-free: a file with nothing to show stops here, in one line
        except AltiError as error:
            print(f"alti-tui: {error}", file=sys.stderr)
            return 2
    else:
        model = args.model or "demo"
        service = EngineService(model=model, dataset=args.dataset, split=args.split, limit=args.limit, **engine)
    app = AltiApp(
        service,
        methods=methods,
        export_dir=args.export_dir,
        label=args.model or ("" if args.attributions else "demo"),
        target=args.target,
        foil=args.foil,
    )
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
