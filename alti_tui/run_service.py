"""``alti-tui --attributions``: :class:`RunService`, an ``alti attribute`` file and the model behind it.

It implements :class:`alti_tui.models.RunFileService`: the file's rows, scores, curves and
statistics (:mod:`alti.runs`, torch-free) at once, and through the :class:`EngineService`
it holds, the model the file records for whatever the file lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alti_tui.models import AnswerSettings, CurveScore, ListedSample, ModelInfo, Overview, PlotPoint, RunInfo
from alti_tui.service import CURVES, EngineService

if TYPE_CHECKING:
    from alti.results import Explanation
    from alti.runs import Filter, Order, Run


class RunService:
    """An ``alti attribute`` file, read at once; the model behind it loads only when the
    explorer needs it (per-layer matrices, deletion curves the file lacks, typed text).

    The model is the one the file records (``demo`` and SmolLM2 by their load names)
    unless ``model`` names another; ``engine`` (an :class:`EngineService` without a
    dataset) computes whatever the file lacks.
    """

    def __init__(self, path: str, model: str | None = None, **engine) -> None:
        self.engine = EngineService(model=model or "", dataset=None, **engine)
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
            ListedSample(r["text"], None if lm else run.gold[i], run.gold[i] if lm else None)
            for i, r in enumerate(run.records)
        ]
        return RunInfo(
            self.path, info, samples, run.predicted, list(run.problems), run.has_curves, run.context_measures
        )

    def load(self, progress: Callable[[str], None]) -> ModelInfo:
        if not self.model_given and self.engine.explainer is None:
            from alti.loading import name_to_load

            self.engine.model = name_to_load(self.run.model if self.run is not None else "")
        return self.engine.load(progress)

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
        return self.engine.explain(text, methods, target, foil, should_stop, progress, like)

    def answer(
        self,
        prompt: str,
        methods: Sequence[str],
        settings: AnswerSettings,
        on_token: Callable[[str], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Explanation:
        return self.engine.answer(prompt, methods, settings, on_token, progress)

    def check_request(self, target: str | None, foil: str | None, predicted: int | None = None) -> None:
        self.engine.check_request(target, foil, predicted)

    def hold_slow_work(self, held: bool) -> None:
        self.engine.hold_slow_work(held)

    def curves(self, explanation: Explanation, methods: Sequence[str]) -> Iterator[PlotPoint | CurveScore]:
        return self.engine.curves(explanation, methods)

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]:
        return self.engine.export(explanation, directory, stem)

    def stored(self, index: int) -> Explanation:
        """Sample ``index``'s explanation as the file records it (scores, no matrices)."""
        from alti.runfile import explanation_from_record

        return explanation_from_record(self.run.records[index])

    def stored_curves(self, index: int) -> list[PlotPoint | CurveScore] | None:
        """Sample ``index``'s deletion curves from the file, or None when it has none."""
        faithfulness = self.run.records[index].get("faithfulness")
        if faithfulness is None:
            return None
        items: list[PlotPoint | CurveScore] = []
        for method, curves in faithfulness["methods"].items():
            for metric, short in CURVES.items():
                curve = curves[metric]
                items.extend(PlotPoint(method, short, x, y) for x, y in zip(curve["fractions"], curve["values"]))
                items.append(CurveScore(method, short, float(curve["score"])))
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
            context=runs.context_table(run),
        )
