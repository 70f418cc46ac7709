"""The explorer's main screen, as both modes share it: the layout, the keys, and explaining.

:class:`ExplorerScreen` lays out the sample list, the attributions, the matrix and the
curves, and runs the heavy work in thread workers: loading the model, explaining a
sample (the fast methods first, then each slow one in its turn), the deletion curves,
exporting.  What is explained and which results still count is its :class:`Session`'s.
The modes are its subclasses: :class:`alti_tui.screens.explore.ExploreScreen` (a model's
dataset) and :class:`alti_tui.screens.run.RunScreen` (an ``alti attribute`` file).
"""

from __future__ import annotations

import functools
import gc
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from alti.errors import AltiError, InputError
from alti.export import write_atomic
from alti_tui.explained import curve_quantity, target_spec
from alti_tui.messages import (
    AnswerProgress,
    CurvesDone,
    CurveUpdate,
    ExplainProgress,
    ExplanationReady,
    ExportDone,
    LoadFailed,
    LoadProgress,
    ModelLoaded,
    WorkFailed,
)
from alti_tui.models import AnswerSettings, ListedSample, ModelInfo, TargetAndFoil, WorkStopped
from alti_tui.screens.help import HelpScreen, help_rows
from alti_tui.screens.methods import MethodScreen
from alti_tui.screens.sentence import SentenceScreen
from alti_tui.screens.target import Choice, TargetScreen, shown_token
from alti_tui.widgets.attributions import AttributionPanel
from alti_tui.widgets.curves import CurvesPanel
from alti_tui.widgets.matrix import MatrixPanel
from alti_tui.widgets.samples import SampleBrowser
from alti_tui.widgets.segments import SegmentsPanel

if TYPE_CHECKING:
    from alti.results import Explanation
    from alti_tui.models import ModelService
    from alti_tui.session import Session

#: Keys to move through the samples, before a mode's own (the footer's order).
#: a long explanation says how far its forward pass is once it has run this long (seconds) ...
PROGRESS_AFTER_S = 1.0
#: ... and then at most this often
PROGRESS_EVERY_S = 0.25

SAMPLE_KEYS = [
    Binding("q", "app.quit", "quit", tooltip="quit"),
    Binding("question_mark", "help", "help", tooltip="this help"),
    Binding("n", "step(1)", "next", tooltip="next sample"),
    Binding("p", "step(-1)", "prev", show=False, tooltip="previous sample"),
    Binding("slash", "sentence", "sentence", tooltip="explain a sentence you type"),
    Binding("f", "filter", "filter", tooltip="filter the samples by typing (Enter or Esc returns to the list)"),
]
#: Keys of the panels, after a mode's own.
VIEW_KEYS = [
    Binding("m", "methods", "methods", tooltip="choose the methods shown"),
    Binding("c", "target", "target/foil", tooltip="choose what is explained: the target and a foil"),
    Binding("left_square_bracket", "layer(-1)", "layer-", tooltip="previous layer (or click / scroll the slider)"),
    Binding("right_square_bracket", "layer(1)", "layer+", tooltip="next layer (or click / scroll the slider)"),
    Binding(
        "r",
        "rolled",
        "rolled",
        tooltip="per-layer matrix ↔ rolled out up to the layer (an answer: → its steps × tokens, × segments)",
    ),
    Binding("x", "matrix_method", "matrix", show=False, tooltip="next matrix method in the contribution-matrix panel"),
    Binding(
        "t", "tab", "tabs", tooltip="the next lower tab: contribution matrix, deletion curves, an answer's segments"
    ),
    Binding("z", "zoom", "zoom", tooltip="zoom: the focused panel fills the screen (z or Esc again to return)"),
    Binding("e", "export", "export", tooltip="export HTML, SVG, LaTeX, JSON and a screenshot"),
    Binding("g", "generate", "answer", tooltip="generate an answer to the prompt and explain it whole (causal LMs)"),
    Binding(
        "comma",
        "answer_step(-1)",
        "step←",
        show=False,  # the answer's line says how to move
        tooltip="an answer's previous step (before the first: the whole answer)",
    ),
    Binding(
        "full_stop",
        "answer_step(1)",
        "step→",
        show=False,
        tooltip="an answer's next step (its token against the prompt and the answer before it)",
    ),
    Binding("left", "cursor(-1)", "token←", show=False, tooltip="token cursor left (values shown under the rows)"),
    Binding("right", "cursor(1)", "token→", show=False, tooltip="token cursor right"),
    Binding("tab", "app.focus_next", "next panel", show=False, tooltip="move the focus between panels"),
]


def merge(first: Explanation, second: Explanation) -> Explanation:
    """``first`` with ``second``'s methods added (same input, same prediction); where both
    score a method (a run file's scores, recomputed for their matrices) ``first``'s stay."""
    return replace(
        first,
        scores={**first.scores, **{m: s for m, s in second.scores.items() if m not in first.scores}},
        layers={**first.layers, **second.layers},
        settings={**first.settings, **second.settings},
        steps={**first.steps, **{m: s for m, s in second.steps.items() if m not in first.steps}},
    )


def while_open(handler):
    """For handlers of the workers' messages: one may arrive after the app has begun to
    close and its widgets are gone; it is dropped then."""

    @functools.wraps(handler)
    def handle(screen: ExplorerScreen, message) -> None:
        if screen.app.is_running and screen.query("#main"):  # shutting down clears is_running first
            handler(screen, message)

    return handle


def describe(error: BaseException) -> str:
    """An error as one line: its message when the user can act on it, else its type too."""
    if isinstance(error, AltiError):
        return str(error)
    return f"{type(error).__name__}: {error}"


#: The service of a mode: what its screen asks of the engine.
ServiceT = TypeVar("ServiceT", bound="ModelService")


class ExplorerScreen(Screen[None], Generic[ServiceT]):
    """A mode of the explorer; ``service`` is its only access to the engine.

    A mode starts its work in :meth:`start_work` and says what a loaded model changes in
    :meth:`model_loaded`; the other hooks have defaults.
    """

    def __init__(self, session: Session, service: ServiceT, methods: list[str] | None, export_dir: Path) -> None:
        super().__init__()
        self.session = session
        self.service = service
        self.requested_methods = methods
        self.export_dir = export_dir
        self.matrix_method: str | None = None
        self.load_error: str | None = None
        #: The model is loaded (a run file's loads after the first rows are painted).
        self.model_ready = False
        #: The shown deletion curves were read from the run file (nothing to compute).
        self.curves_from_file = False
        #: A sentence typed while the model loads, explained once it is ready.
        self.queued_text: str | None = None

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
                    with TabPane("Segments", id="tab-segments"):
                        yield SegmentsPanel(id="segments")
        with Horizontal(id="status-bar"):
            yield Static("starting…", id="status")
            yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="progress")
        yield Footer(show_command_palette=False)  # every key fits at 160 columns; ^p still opens it

    def on_mount(self) -> None:
        self.query_one("#sample-list").focus()
        self.start_work()

    def start_work(self) -> None:
        """Start the mode's work once the screen is up."""
        raise NotImplementedError

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
    def segments(self) -> SegmentsPanel:
        return self.query_one(SegmentsPanel)

    @property
    def browser(self) -> SampleBrowser:
        return self.query_one(SampleBrowser)

    def set_status(self, text: str, busy: bool = False) -> None:
        """``busy`` animates the progress bar: only while the model loads, as each frame
        of it repaints the screen and takes the interpreter from the workers.  A worker's
        message may arrive while the app closes: then there is no status bar left."""
        for status in self.query("#status").results(Static):
            status.update(Text(text), layout=False)  # it names models, labels, files: text, never markup
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
        self.post_message(ModelLoaded(info, self.read_samples()))

    def read_samples(self) -> list[ListedSample]:
        """In the loading worker, once the model is loaded: the samples it brings (none)."""
        return []

    def loading_status(self, text: str) -> str:
        """The status line while the model loads, ``text`` saying what it does."""
        return text

    def model_failed(self, error: str) -> None:
        """The model did not load."""
        self.set_status(f"model not loaded: {error}")

    def model_loaded(self, message: ModelLoaded) -> None:
        """The model is loaded: the mode shows what it brings."""
        raise NotImplementedError

    def choice_follows_load(self) -> bool:
        """Whether the sample list chooses a sample once the model is loaded (a dataset's first
        sample): a sentence typed meanwhile is explained then, in its place."""
        return False

    def queue(self, text: str) -> None:
        """Keep a sentence typed while the model loads; it is explained once the model is ready."""
        self.queued_text = text
        self.set_status("loading the model… the typed sentence is explained once it is ready", busy=True)
        self.notify("The model is loading: your sentence is explained as soon as it is ready.", markup=False)

    def explain_queued(self) -> None:
        text, self.queued_text = self.queued_text, None
        assert text is not None
        self.session.sample_index = None
        self.explain(text)

    @while_open
    def on_load_progress(self, message: LoadProgress) -> None:
        self.set_status(self.loading_status(message.text), busy=True)

    @while_open
    def on_load_failed(self, message: LoadFailed) -> None:
        self.load_error = message.error
        self.model_failed(message.error)
        self.notify(message.error, title="Loading failed", severity="error", timeout=30, markup=False)

    @while_open
    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.model_ready = True
        self.model_loaded(message)
        if self.queued_text is not None and not self.choice_follows_load():
            self.explain_queued()
        # What is alive now (torch, the model, Textual) lives as long as the app: freeze it out
        # of the collector's full passes, which scanned it all and paused a switch by up to 0.3 s.
        gc.freeze()

    def show_model(self, info: ModelInfo) -> None:
        """The panels learn ``info``'s methods (the methods shown: those asked for that apply)."""
        self.session.info = info
        self.session.methods = self._initial_methods(info)
        self.show_methods(info)
        self.matrix_method = self._first_matrix_method()

    def show_methods(self, info: ModelInfo) -> None:
        self.attributions.infos = info.methods
        self.matrix.cumulative_methods = frozenset(name for name, i in info.methods.items() if i.cumulative)

    def _initial_methods(self, info: ModelInfo) -> list[str]:
        wanted = self.requested_methods or info.default_methods or list(info.methods)[:3]
        refused = [f"{m} ({info.unavailable[m]})" for m in wanted if m in info.unavailable]
        unknown = [m for m in wanted if m not in info.methods and m not in info.unavailable]
        if refused:
            self.notify(
                f"not for this model: {'; '.join(refused)}; methods that apply: {', '.join(info.methods)}",
                severity="error",
                timeout=15,
                markup=False,
            )
        if unknown:
            self.notify(
                f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(info.methods)}",
                severity="error",
                timeout=15,
                markup=False,
            )
        return [m for m in wanted if m in info.methods] or list(info.methods)[:1]

    def _first_matrix_method(self) -> str | None:
        info = self.session.info
        assert info is not None
        if self.matrix_method in self.session.methods:
            return self.matrix_method
        return next((m for m in self.session.methods if info.methods[m].matrix), None)

    # -------------------------------------------------------------- explaining
    def on_sample_browser_chosen(self, message: SampleBrowser.Chosen) -> None:
        if self.queued_text is not None:
            if self.model_ready:  # the list's first choice after loading: the typed sentence instead
                self.explain_queued()
                return
            self.queued_text = None  # the user moved on to a sample before the model was ready
        session = self.session
        if message.index != session.sample_index or session.text is None:
            session.sample_index = message.index
            self.explain(session.samples[message.index].text)

    def explain(self, text: str, generate: bool = False) -> None:
        """Start explaining ``text`` (as the answer generated for it, if any; ``generate``: a
        new answer); everything computed for older samples is dropped."""
        session = self.session
        if session.info is None or not self.model_ready:
            if session.sample_index is None:  # typed text waits for the model
                self.queue(text)
            else:
                self.notify("The model is still loading: chosen targets need it.", severity="warning")
            return
        self.switch_text(text)
        session.request = session.request_for(text)
        session.explanation = None
        self.curves_from_file = False
        session.pending = list(session.methods)
        session.hold_slow_work(any(session.info.is_fast(m) for m in session.methods))
        self.curves.reset(session.methods, "waiting for the attributions")
        self.attributions.show(None, session.methods, session.pending)
        session.step = None
        # an answer generated now, one generated before (explained again), or a sample's own
        like = None if generate else session.answer()
        if generate:
            settings = session.answer_settings
        else:
            settings = session.given_answer() if like is None else None
        doing = "generating the answer…" if generate else "explaining…"
        if settings is not None and settings.answer is not None:
            doing = "explaining the sample's answer…"
        self.attributions.message = doing
        self.set_status(doing)
        self.explain_worker(
            session.generation, text, list(session.methods), session.request, like=like, answer=settings
        )

    def switch_text(self, text: str) -> None:
        """``text`` is explained from now on: its curves replace the previous text's."""
        self.session.begin(text)
        self.workers.cancel_group(self, "curves")

    @work(thread=True, exclusive=True, group="explain", exit_on_error=False)
    def explain_worker(
        self,
        generation: int,
        text: str,
        methods: list[str],
        request: TargetAndFoil = (None, None),
        base: Explanation | None = None,
        like: Explanation | None = None,
        answer: AnswerSettings | None = None,
    ) -> None:
        """The ALTI family first (one forward pass), then each slower method; their results
        are added to ``base`` (a run file's scores) when given.  ``like``: an answer explained
        before, explained again as that answer; ``answer``: generate one first (the fast
        methods explain it in the same turn)."""
        info = self.session.info
        assert info is not None
        worker = get_current_worker()
        fast = [m for m in methods if info.is_fast(m)]
        slow = [m for m in methods if m not in fast]
        stages = ([fast] if fast else []) + [[m] for m in slow]
        explanation = base
        try:
            if answer is not None:
                try:
                    like = explanation = self.service.answer(
                        text, fast, answer, self._heard(generation), self._progress(generation)
                    )
                except WorkStopped:
                    return
                stages = stages[1:] if fast else stages
                self.post_message(ExplanationReady(generation, explanation, [m for s in stages for m in s]))
            for done, stage in enumerate(stages, start=1):
                if worker.is_cancelled:
                    return
                if stage is fast:
                    result = self.service.explain(text, stage, *request, progress=self._progress(generation), like=like)
                else:
                    with self.session.slow_turn(lambda: worker.is_cancelled) as mine:
                        if not mine:
                            return
                        try:
                            result = self.service.explain(
                                text, stage, *request, should_stop=lambda: worker.is_cancelled, like=like
                            )
                        except WorkStopped:
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

    def _heard(self, generation: int):
        """A generating worker's ``on_token(answer so far)``: the answer on screen as it
        grows; a sample left meanwhile stops the generation."""
        worker = get_current_worker()

        def heard(text: str) -> None:
            if worker.is_cancelled or not self.session.is_current(generation):
                raise WorkStopped
            self.post_message(AnswerProgress(generation, text))

        return heard

    def _progress(self, generation: int):
        """A worker's ``progress(done, layers)``: a message a few times a second at most, once
        the explanation has run for a moment (short ones say nothing)."""
        start = time.monotonic()
        said = [start]

        def report(done: int, layers: int) -> None:
            now = time.monotonic()
            if now - start >= PROGRESS_AFTER_S and (now - said[0] >= PROGRESS_EVERY_S or done == layers):
                said[0] = now
                self.post_message(ExplainProgress(generation, done, layers))

        return report

    @while_open
    def on_answer_progress(self, message: AnswerProgress) -> None:
        if self.session.is_current(message.generation):
            self.attributions.message = f"generating the answer… {message.text!r}"
            self.set_status(f"generating the answer… {len(message.text)} characters")

    @while_open
    def on_explain_progress(self, message: ExplainProgress) -> None:
        if self.session.is_current(message.generation) and self.session.explanation is None:
            self.set_status(f"explaining… layer {message.done} of {message.layers}")

    @while_open
    def on_explanation_ready(self, message: ExplanationReady) -> None:
        session = self.session
        if not session.is_current(message.generation):
            return
        first = session.explanation is None
        session.explanation = message.explanation
        session.pending = message.pending
        if message.explanation.answer_steps:
            session.answers[session.key()] = message.explanation
        self._show_explanation()
        if first:
            self.call_after_refresh(session.rows_painted, message.generation)
            for note in message.explanation.notes:
                self.notify(note, severity="warning", timeout=10, markup=False)
        self.explanation_shown()
        if message.pending:
            self.set_status(f"computing {', '.join(message.pending)}…")
        elif self.curves_from_file:
            self.set_status(self._summary())
        else:
            self.set_status(self._summary())
            self.curves.reset(session.methods, "computing…", *curve_quantity(message.explanation))
            self.curves_worker(session.generation, message.explanation, list(session.methods))

    def explanation_shown(self) -> None:
        """Scores of the current text are on screen (the first, or more of them)."""

    def _summary(self) -> str:
        session = self.session
        assert session.explanation is not None and session.info is not None
        index = session.sample_index
        where = "typed sentence" if index is None else f"sample {index + 1}"
        gold = ""
        sample = session.samples[index] if index is not None else None
        if sample is not None and session.info.is_lm and sample.target is not None:
            gold = f" · data target {sample.target!r}" + (f" foil {sample.foil!r}" if sample.foil is not None else "")
        elif sample is not None and not session.info.is_lm and sample.label is not None:
            gold = f" · gold {sample.label}"
        return f"{session.info.name} · {where}{gold} · {len(session.explanation.tokens)} tokens"

    def _show_explanation(self) -> None:
        session = self.session
        shown = session.shown()
        methods = session.methods
        if shown is not None and shown is not session.explanation:  # a step: the methods with steps
            methods = [m for m in methods if m in shown.scores]
        self.attributions.show(shown, methods, session.pending, self._answer_cursor())
        self._show_matrix(shown)
        self.segments.show(shown, methods)
        self._segments_tab()
        self.refresh_bindings()  # the step keys are in the footer while an answer is shown

    def _answer_cursor(self) -> tuple[list[str], int | None] | None:
        """The answer's tokens and the step shown, when an answer is shown."""
        explanation = self.session.explanation
        if explanation is None or not explanation.answer_steps:
            return None
        start = len(explanation.tokens) - explanation.answer_steps
        return list(explanation.tokens[start:]), self.session.step

    def _show_matrix(self, shown: Explanation | None = None) -> None:
        session = self.session
        shown = session.shown() if shown is None else shown
        whole = session.explanation if session.explanation is not None and session.explanation.answer_steps else None
        self.matrix.show(shown, self.matrix_method, self.attributions.cursor, whole, session.step)

    def _segments_tab(self) -> None:
        """The segments tab is there while an explanation with segments is shown."""
        tabs = self.query_one(TabbedContent)
        explanation = self.session.explanation
        if explanation is not None and explanation.segments is not None:
            tabs.show_tab("tab-segments")
        else:
            if tabs.active == "tab-segments":
                tabs.active = "tab-matrix"
            tabs.hide_tab("tab-segments")

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
        if self.session.is_current(message.generation):
            self.curves.add(message.item)

    @while_open
    def on_curves_done(self, message: CurvesDone) -> None:
        if self.session.is_current(message.generation):
            self.curves.finish()

    @while_open
    def on_work_failed(self, message: WorkFailed) -> None:
        session = self.session
        if message.generation is not None and not session.is_current(message.generation):
            return
        if message.generation is not None and re.search(r"\b(target|foil)\b", message.error):
            message.error += " (c chooses the target and the foil)"
        if message.generation is not None:
            session.hold_slow_work(False)
            session.pending = []
            if session.explanation is None:
                self.attributions.message = f"could not explain: {message.error}"
            else:
                self._show_explanation()
            self.curves.finish("stopped")
            self.set_status(message.error)
        self.notify(message.error, title="alti", severity="error", timeout=15, markup=False)

    # ----------------------------------------------------------------- actions
    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(help_rows(self)))

    def action_step(self, delta: int) -> None:
        self.browser.step(delta)

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_sentence(self) -> None:
        def explain_typed(text: str | None) -> None:
            if text is None:
                return
            if not text.strip():
                self.notify("Empty input: type a sentence to explain.", severity="error")
                return
            self.session.sample_index = None
            self.explain(text)

        self.app.push_screen(SentenceScreen(), explain_typed)

    def action_methods(self) -> None:
        session = self.session
        if session.info is None:
            self.notify("The model is still loading.", severity="warning")
            return

        def apply(chosen: list[str] | None) -> None:
            if chosen is None or chosen == session.methods:
                return
            if not chosen:
                self.notify("Choose at least one method.", severity="error")
                return
            session.methods = chosen
            self.matrix_method = self._first_matrix_method()
            if session.text is not None:
                self.explain(session.text)

        self.app.push_screen(MethodScreen(session.info.methods, session.methods), apply)

    def action_target(self) -> None:
        """Choose the target and the foil among the likeliest tokens (or classes), or type one."""
        session = self.session
        if session.info is None or not self.model_ready:
            self.notify("The model is still loading.", severity="warning")
            return
        if session.text is None:
            self.notify("Choose a sample or type a sentence (/) first.", severity="warning")
            return
        explanation = session.explanation
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
        heading = session.info.target.choices_heading
        target, foil = session.request
        known: dict[str, str] = {}
        if explanation is not None and explanation.text == session.text and explanation.target is not None:
            # what the engine resolved (a typed token's first piece) by its id, shown by its text
            resolved = target_spec(explanation)
            target = resolved[0] if target is not None else None
            foil = resolved[1] if foil is not None else None
            for spec, name in zip(resolved, (explanation.target.label, explanation.target.foil_label)):
                if spec is not None and name is not None:
                    known[spec] = shown_token(name) if session.info.is_lm else name
        text, key = session.text, session.key()

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
            if chosen is None or session.text != text or session.key() != key:
                return
            session.choose(key, chosen)
            self.explain(text)

        screen = TargetScreen(choices, target, foil, session.info.is_lm, heading, predicted, known, check)
        self.app.push_screen(screen, apply)

    def action_layer(self, step: int) -> None:
        self.matrix.step_layer(step)

    def action_rolled(self) -> None:
        """Per-layer ↔ rolled out; with an answer shown: per-layer → rolled out → its steps ×
        tokens → its steps × segments (where the prompt has them)."""
        matrix = self.matrix
        explanation = self.session.explanation
        if explanation is None or not explanation.answer_steps:
            matrix.answer_rows = matrix.by_segments = False
            matrix.rolled = not matrix.rolled
        elif matrix.answer_rows and not matrix.by_segments and explanation.segments:
            matrix.by_segments = True
        elif matrix.answer_rows:
            matrix.answer_rows = matrix.by_segments = False
        elif matrix.rolled:
            matrix.rolled, matrix.answer_rows = False, True
        else:
            matrix.rolled = True

    def action_matrix_method(self) -> None:
        session = self.session
        if session.info is None:
            return
        options = [m for m in session.methods if session.info.methods[m].matrix]
        if not options:
            self.notify("No matrix method shown; press m to add one (e.g. alti).", severity="warning")
            return
        index = options.index(self.matrix_method) + 1 if self.matrix_method in options else 0
        self.matrix_method = options[index % len(options)]
        self._show_matrix()

    def action_tab(self) -> None:
        """The next tab: matrix, curves, and an answer's segments when it has them."""
        tabs = self.query_one(TabbedContent)
        order = ["tab-matrix", "tab-curves"]
        explanation = self.session.explanation
        if explanation is not None and explanation.segments is not None:
            order.append("tab-segments")
        where = order.index(tabs.active) if tabs.active in order else -1
        tabs.active = order[(where + 1) % len(order)]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """g is for models that answer, the step keys for an answer shown (else not in the footer)."""
        info = self.session.info
        if action == "generate":
            return info is None or info.answers
        if action == "answer_step":
            return self.session.explanation is not None and bool(self.session.explanation.answer_steps)
        return True

    def action_generate(self) -> None:
        """Generate an answer to the current prompt (typed, or the sample's text) and explain it whole."""
        session = self.session
        if session.info is None or not self.model_ready:
            self.notify("The model is still loading: g generates once it is ready.", severity="warning")
            return
        if not session.info.answers:
            self.notify(f"{session.info.name} does not write answers: g is for causal LMs.", severity="warning")
            return
        if session.text is None:
            self.notify("Type a prompt first (/), then press g.", severity="warning")
            return
        self.explain(session.text, generate=True)

    def action_answer_step(self, delta: int) -> None:
        if self.session.move_step(delta):
            self._show_explanation()

    def action_zoom(self) -> None:
        """The focused panel fills the screen, or back to all panels (Esc too)."""
        if self.maximized is not None:
            self.minimize()
        else:
            self.maximize(self.focused or self.attributions)

    def action_cursor(self, step: int) -> None:
        self.attributions.action_move(step)

    def on_attribution_panel_cursor_moved(self, message: AttributionPanel.CursorMoved) -> None:
        self._show_matrix()

    def action_export(self) -> None:
        session = self.session
        if session.explanation is None or session.pending:
            self.notify("Nothing to export yet: wait for the attributions.", severity="warning")
            return
        stem = self._export_stem()
        screenshot = self.app.export_screenshot()
        self.export_worker(session.explanation, stem, screenshot)

    def _export_stem(self) -> str:
        if self.session.sample_index is not None:
            return f"sample-{self.session.sample_index + 1:04d}"
        words = re.sub(r"[^a-z0-9]+", "-", (self.session.text or "").lower()).strip("-")
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
        self.notify(f"{folder}/\n{names}", title="Exported", timeout=20, markup=False)
