"""Browsing an ``alti attribute`` file (``alti-tui --attributions``): its rows at once, the model behind them.

The file's samples, predictions, scores and curves are shown before any model is
loaded; the model the file records loads after the first rows are painted, for the
per-layer matrices, the methods and curves the file lacks, typed text and chosen
targets.  Only here can the list be sorted (``s``), cut to the misclassified samples
(``w``) and the run be seen at a glance (``o``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.binding import Binding

from alti.runs import Filter, Order
from alti_tui.explained import curve_quantity, target_spec
from alti_tui.messages import LoadFailed, ModelLoaded, OverviewReady, RunOpened, WorkFailed
from alti_tui.models import RunFileService
from alti_tui.screens.explorer import SAMPLE_KEYS, VIEW_KEYS, ExplorerScreen, describe, while_open
from alti_tui.screens.overview import OverviewScreen
from alti_tui.screens.sort import SortScreen

if TYPE_CHECKING:
    from alti.results import Explanation
    from alti_tui.models import RunInfo
    from alti_tui.session import Session

RUN_KEYS = [
    Binding(
        "s", "sort", "sort", tooltip="sort the samples (misclassified, least confident, disagreement, curves, length)"
    ),
    Binding("w", "wrong_only", "✗ only", show=False, tooltip="list the misclassified samples only (w again: all)"),
    Binding(
        "o", "overview", "overview", tooltip="the run at a glance (faithfulness, agreement, distributions, top tokens)"
    ),
]


class RunScreen(ExplorerScreen[RunFileService]):
    """A run file's samples, each shown as the file records it, completed by the model once loaded."""

    BINDINGS = [*SAMPLE_KEYS, *RUN_KEYS, *VIEW_KEYS]

    def __init__(self, session: Session, service: RunFileService, methods: list[str] | None, export_dir: Path) -> None:
        super().__init__(session, service, methods, export_dir)
        self.run_info: RunInfo | None = None
        #: The model was asked for: once the first rows are painted.
        self.model_requested = False
        self.order = Order()
        self.only_wrong = False
        #: s was pressed before the file was read: the picker opens once it is
        self.sort_asked = False

    def start_work(self) -> None:
        self.open_run()

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
        self.app.sub_title = f"{Path(run.path).name} · {run.info.name}"
        self.show_model(run.info)
        self.matrix.note = "per-layer matrices need the model: loading it…"
        self.session.samples = run.samples
        self.browser.sample_order = self._arrange
        self.browser.set_samples(run.samples, run.info.labels, run.info.is_lm, predicted=run.predicted)
        self.set_status(self._run_status())
        self.refresh_bindings()
        for problem in run.problems:
            self.notify(problem, title="Run file", severity="warning", timeout=20, markup=False)
        if self.sort_asked:
            self.sort_asked = False
            self.action_sort()

    def _run_status(self) -> str:
        assert self.run_info is not None
        curves = "curves" if self.run_info.has_curves else "no curves"
        return f"{Path(self.run_info.path).name} · {len(self.run_info.samples)} samples · {curves}"

    def _arrange(self, text: str) -> list[int]:
        return self.service.arrange(self.order, Filter(text, self.only_wrong))

    # ------------------------------------------------------------ the model
    def loading_status(self, text: str) -> str:
        if self.run_info is None:
            return text
        return f"{self._run_status()} · model: {text}"

    def model_failed(self, error: str) -> None:
        if self.run_info is None:
            super().model_failed(error)
            return
        self.set_status(f"{self._run_status()} · model not loaded: {error}")
        self.matrix.note = f"per-layer matrices need the model, which did not load: {error}"
        self.matrix.refresh_view()
        if self.curves.status != "done":
            self.curves.finish("no model: the deletion curves need it")

    def model_loaded(self, message: ModelLoaded) -> None:
        """The run's model is loaded: the file's methods keep their recorded infos, the
        others that apply can be added (m); the current sample gets its matrices and curves."""
        assert self.run_info is not None
        info = self.session.info = replace(message.info, methods={**message.info.methods, **self.run_info.info.methods})
        self.show_methods(info)
        self.matrix.note = None
        self.set_status(f"{self._run_status()} · model {message.info.name} loaded")
        if self.session.text is not None:
            self.explain(self.session.text)

    # ------------------------------------------------------------ explaining
    def explain(self, text: str) -> None:
        """A sample as the file records it, at once; typed text or a chosen target as the model explains them."""
        stored = self.stored()
        if stored is None:
            super().explain(text)
            return
        self.switch_text(text)
        self._show_stored(stored)

    def stored(self) -> Explanation | None:
        """The current sample's explanation from the run file (None for typed text or a target chosen with c)."""
        index = self.session.sample_index
        if index is None or self.session.has_choice():
            return None
        return self.service.stored(index)

    def _show_stored(self, stored: Explanation) -> None:
        """A run file's sample: its rows at once; with the model loaded, the matrices of the
        methods computed from one forward pass, any method the file lacks, and deletion curves
        when the file has none."""
        session = self.session
        info = session.info
        assert info is not None and session.sample_index is not None
        session.request = target_spec(stored)
        session.explanation = stored
        session.hold_slow_work(False)
        missing = [m for m in session.methods if m not in stored.scores]
        matrices = [m for m in session.methods if m in stored.scores and info.methods[m].matrix and info.is_fast(m)]
        session.pending = missing if self.model_ready else []
        self._show_explanation()
        stored_curves = self.service.stored_curves(session.sample_index)
        self.curves_from_file = stored_curves is not None
        self.curves.reset(session.methods, "from the run file", *curve_quantity(stored))
        if stored_curves is not None:
            for item in stored_curves:
                if item.method in session.methods:
                    self.curves.add(item)
            self.curves.finish()
        elif not self.model_ready:
            self.curves.finish("the deletion curves need the model: loading it…")
        self.set_status(self._summary() if self.model_ready else f"{self._summary()} · loading the model…")
        if not self.model_requested:  # the first rows are up: the model may take the interpreter now
            self.model_requested = True
            self.call_after_refresh(self.load_model)
        if self.model_ready and (missing or matrices):
            self.explain_worker(session.generation, stored.text, missing + matrices, session.request, stored, stored)
        elif self.model_ready and stored_curves is None:
            self.curves.reset(session.methods, "computing…", *curve_quantity(stored))
            self.curves_worker(session.generation, stored, list(session.methods))

    # ------------------------------------------------------------- the keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The misclassified filter and the overview wait for the file to be read (sorting queues)."""
        if action in ("wrong_only", "overview"):
            return self.run_info is not None
        return super().check_action(action, parameters)

    def action_sort(self) -> None:
        """Order the sample list: misclassified, least confident, …  Pressed while the file is
        still being read, the picker opens once it is."""
        if self.run_info is None:
            self.sort_asked = True
            self.notify("Reading the run: the sort picker opens once it is read.", markup=False)
            return

        def apply(order: Order | None) -> None:
            if order is None:
                return
            previous, self.order = self.order, order
            try:
                self.browser.rearrange(self._order_note())
            except Exception as error:  # noqa: BLE001 - e.g. curves asked of a run without them
                self.order = previous
                self.notify(describe(error), severity="error", timeout=10, markup=False)

        info = self.run_info
        self.app.push_screen(SortScreen(info.info.methods, self.order, info.has_curves, info.context_measures), apply)

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
        self.app.push_screen(OverviewScreen(self.run_info.path))
        self.overview_worker()

    @work(thread=True, exclusive=True, group="overview", exit_on_error=False)
    def overview_worker(self) -> None:
        try:
            self.post_message(OverviewReady(self.service.overview()))
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"overview: {describe(error)}"))

    @while_open
    def on_overview_ready(self, message: OverviewReady) -> None:
        if isinstance(self.app.screen, OverviewScreen):
            self.app.screen.show(message.overview)
