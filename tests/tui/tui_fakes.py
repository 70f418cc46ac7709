"""A deterministic stand-in for the engine (:class:`alti_tui.service.Service`) and a wait helper."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alti.errors import InputError
from alti.methods.base import MethodInfo
from alti.results import Explanation, Prediction
from alti.export import write_atomic
from alti_tui.service import CurvePoint, CurveScore, ModelInfo, Sample

LABELS = ["negative", "positive"]
LAYERS = 3
INFOS = {
    "alti": MethodInfo("alti", "alti", False, "representation", True, "ALTI, L1 distance, rolled out"),
    "rollout": MethodInfo("rollout", "attention", False, "representation", True, "attention rollout"),
    "attention": MethodInfo("attention", "attention", False, "representation", False, "last layer"),
    "ig_dot": MethodInfo("ig_dot", "gradient", True, "probability", False, "integrated gradients"),
}
SAMPLES = [
    Sample("a gripping , funny and moving film", "positive"),
    Sample("the plot is thin and the jokes fall flat", "negative"),
    Sample("not bad at all", "negative"),
    Sample("an unforgettable performance", "positive"),
]
BINS = (0.0, 0.1, 0.2, 0.3, 0.5)


async def wait_for(pilot, condition, what: str, polls: int = 500) -> None:
    """Let the app run until ``condition()`` holds (workers run in threads)."""
    for _ in range(polls):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"never happened: {what}")


def fake_predict(text: str) -> np.ndarray:
    positive = sum(w in text for w in ("gripping", "funny", "unforgettable", "bad"))
    p = 0.9 if positive else 0.2
    return np.array([1 - p, p])


class FakeService:
    """Scores come from token positions, so every screen is reproducible.

    ``gate`` (when set) holds every slow method until the test releases it, to
    check that keys are answered and stale results dropped meanwhile.
    """

    def __init__(self, samples: list[Sample] | None = None, fail_load: str | None = None) -> None:
        self._samples = SAMPLES if samples is None else samples
        self.fail_load = fail_load
        self.gate: threading.Event | None = None
        self.explained: list[tuple[str, tuple[str, ...]]] = []
        self.exported: list[Path] = []
        #: Every call of ``hold_slow_work``, in order.
        self.holds: list[bool] = []

    def load(self, progress):
        progress("loading the fake model…")
        if self.fail_load:
            raise RuntimeError(self.fail_load)
        fast = frozenset(m for m, info in INFOS.items() if info.family in ("alti", "attention"))
        return ModelInfo("fake-model", LABELS, dict(INFOS), ["alti", "rollout", "ig_dot"], fast)

    def samples(self) -> list[Sample]:
        return list(self._samples)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [LABELS[int(np.argmax(fake_predict(t)))] for t in texts]

    def explain(self, text: str, methods: Sequence[str]) -> Explanation:
        if not text.strip():
            raise InputError("empty text: give a sentence to explain")
        if self.gate is not None and not all(INFOS[m].family in ("alti", "attention") for m in methods):
            self.gate.wait(timeout=10)
        self.explained.append((text, tuple(methods)))
        tokens = ["[CLS]", *text.split(), "[SEP]"]
        n = len(tokens)
        probs = fake_predict(text)
        scores, layers = {}, {}
        for k, method in enumerate(methods):
            values = np.cos(np.arange(n) * (k + 1) * 0.7)
            scores[method] = values if INFOS[method].signed else np.abs(values)
            if INFOS[method].matrix:
                base = np.abs(np.sin(np.add.outer(np.arange(n), np.arange(n)) * (k + 1)))[None]
                stack = base + np.arange(LAYERS)[:, None, None]
                layers[method] = stack / stack.sum(-1, keepdims=True)
        special = np.zeros(n, bool)
        special[[0, -1]] = True
        index = int(np.argmax(probs))
        return Explanation(
            text=text,
            tokens=tokens,
            input_ids=list(range(100, 100 + n)),
            prediction=Prediction(LABELS[index], index, probs, LABELS),
            scores=scores,
            layers=layers,
            special=special,
            model_name="fake-model",
        )

    def hold_slow_work(self, held: bool) -> None:
        self.holds.append(held)

    def curves(self, explanation: Explanation, methods: Sequence[str]):
        for k, method in enumerate(methods):
            for kind in ("comp", "suff"):
                start = 0.9 if kind == "comp" else 0.3
                for q in BINS:
                    if self.gate is not None:
                        self.gate.wait(timeout=10)
                    y = start - (0.6 * q * (k + 1) if kind == "comp" else -0.8 * q / (k + 1))
                    yield CurvePoint(method, kind, q, float(np.clip(y, 0, 1)))
                yield CurveScore(method, kind, 0.1 * (k + 1) if kind == "comp" else 0.05 * (k + 1))

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]:
        Path(directory).mkdir(parents=True, exist_ok=True)
        path = Path(directory) / f"{stem}.json"
        write_atomic(path, '{"fake": true}')
        self.exported.append(path)
        return [path]
