"""Exploring a model's dataset (``alti-tui``): the model loads first, then its samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.worker import get_current_worker

from alti_tui.messages import LoadProgress, ModelLoaded, PredictionsReady, WorkFailed
from alti_tui.models import DatasetService, ListedSample, TargetAndFoil
from alti_tui.screens.explorer import SAMPLE_KEYS, VIEW_KEYS, ExplorerScreen, describe, while_open

if TYPE_CHECKING:
    from pathlib import Path

    from alti_tui.session import Session

#: Texts per prediction call of the sample list.
PREDICT_BATCH = 16


class ExploreScreen(ExplorerScreen[DatasetService]):
    """A dataset's samples, each explained when chosen; the model's predictions of the
    whole list fill in behind the first explanation."""

    BINDINGS = [*SAMPLE_KEYS, *VIEW_KEYS]

    def __init__(self, session: Session, service: DatasetService, methods: list[str] | None, export_dir: Path) -> None:
        super().__init__(session, service, methods, export_dir)
        #: The model was asked to predict the sample list (once, after the first explanation).
        self.predictions_started = False

    def start_work(self) -> None:
        self.load_model()

    def read_samples(self) -> list[ListedSample]:
        self.post_message(LoadProgress("reading the samples…"))
        try:
            return self.service.samples()
        except Exception as error:  # noqa: BLE001
            self.post_message(WorkFailed(f"no samples: {describe(error)}; press / to type a sentence"))
            return []

    def model_loaded(self, message: ModelLoaded) -> None:
        info = message.info
        self.app.sub_title = info.name
        self.show_model(info)
        self.session.samples = message.samples
        self.set_status(f"{info.name} · {len(message.samples)} samples")
        self.browser.set_samples(message.samples, info.labels, info.is_lm)
        foreign = self.browser.foreign_labels()
        if foreign:
            self.notify(
                f"Gold labels {', '.join(map(repr, foreign))} are none of the model's "
                f"({', '.join(map(repr, info.labels))}): those samples are not marked ✓ or ✗.",
                severity="warning",
                timeout=15,
                markup=False,
            )
        if not message.samples:
            self.notify("The dataset has no samples; press / to type a sentence.", severity="warning")

    def choice_follows_load(self) -> bool:
        return bool(self.session.samples)

    def explanation_shown(self) -> None:
        """The first explanation is up: the model predicts the sample list behind it."""
        if self.predictions_started:
            return
        self.predictions_started = True
        session = self.session
        requests = None
        if session.info is not None and session.info.target.per_sample:
            requests = [(s.target, s.foil) for s in session.samples]
        self.predict_samples([s.text for s in session.samples], requests)

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
