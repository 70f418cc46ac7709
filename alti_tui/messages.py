"""Messages the workers post back to the app.

Results about a sample carry the ``generation`` they were computed for; the app
drops any whose generation is no longer the current one, so a slow result for an
old sample never overwrites a newer one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from alti.results import Explanation
    from alti_tui.models import CurveScore, ListedSample, ModelInfo, Overview, PlotPoint, RunInfo


class LoadProgress(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ModelLoaded(Message):
    def __init__(self, info: ModelInfo, samples: list[ListedSample]) -> None:
        super().__init__()
        self.info = info
        self.samples = samples


class RunOpened(Message):
    """An ``alti attribute`` file was read: its samples and scores, no model yet."""

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run


class ExplainProgress(Message):
    """``done`` of ``layers`` layers of an explanation's forward pass are decomposed."""

    def __init__(self, generation: int, done: int, layers: int) -> None:
        super().__init__()
        self.generation = generation
        self.done = done
        self.layers = layers


class AnswerProgress(Message):
    """The answer to the current prompt so far, as ``g`` generates it."""

    def __init__(self, generation: int, text: str) -> None:
        super().__init__()
        self.generation = generation
        self.text = text


class OverviewReady(Message):
    def __init__(self, overview: Overview) -> None:
        super().__init__()
        self.overview = overview


class LoadFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class PredictionsReady(Message):
    """Predicted labels for a slice of the sample list, starting at ``start``."""

    def __init__(self, start: int, labels: list[str]) -> None:
        super().__init__()
        self.start = start
        self.labels = labels


class ExplanationReady(Message):
    """Scores for some methods of the current sample; ``pending`` are still computing."""

    def __init__(self, generation: int, explanation: Explanation, pending: list[str]) -> None:
        super().__init__()
        self.generation = generation
        self.explanation = explanation
        self.pending = pending


class CurveUpdate(Message):
    def __init__(self, generation: int, item: PlotPoint | CurveScore) -> None:
        super().__init__()
        self.generation = generation
        self.item = item


class CurvesDone(Message):
    def __init__(self, generation: int) -> None:
        super().__init__()
        self.generation = generation


class WorkFailed(Message):
    """A worker failed; ``generation`` is ``None`` for work not tied to a sample."""

    def __init__(self, error: str, generation: int | None = None) -> None:
        super().__init__()
        self.error = error
        self.generation = generation


class ExportDone(Message):
    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.paths = paths
