"""A deterministic stand-in for the engine (a :class:`alti_tui.models.DatasetService`) and a wait helper."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alti.catalog import MethodInfo
from alti.errors import InputError
from alti.export import write_atomic
from alti.results import Explanation, Prediction
from alti.targets import NextTokenTarget
from alti_tui.models import CurveScore, ListedSample, ModelInfo, PlotPoint, WorkStopped

LABELS = ["negative", "positive"]
LAYERS = 3
INFOS = {
    "alti": MethodInfo("alti", "alti", False, "representation", True, "ALTI, L1 distance, rolled out"),
    "rollout": MethodInfo("rollout", "attention", False, "representation", True, "attention rollout"),
    "attention": MethodInfo("attention", "attention", False, "representation", False, "last layer"),
    "ig_dot": MethodInfo("ig_dot", "gradient", True, "probability", False, "integrated gradients"),
    "parts": MethodInfo(
        "parts", "decompx", True, "logit", True, "each layer's parts, already cumulative", cumulative=True
    ),
}
SAMPLES = [
    ListedSample("a gripping , funny and moving film", "positive"),
    ListedSample("the plot is thin and the jokes fall flat", "negative"),
    ListedSample("not bad at all", "negative"),
    ListedSample("an unforgettable performance", "positive"),
]
BINS = (0.0, 0.1, 0.2, 0.3, 0.5)


def ready(app) -> bool:
    """The explained sample has every method's scores and its deletion curves."""
    return app.session.explanation is not None and not app.session.pending and app.explorer.curves.status == "done"


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

    def __init__(self, samples: list[ListedSample] | None = None, fail_load: str | None = None) -> None:
        self._samples = SAMPLES if samples is None else samples
        self.fail_load = fail_load
        self.gate: threading.Event | None = None
        self.explained: list[tuple[str, tuple[str, ...]]] = []
        #: The (target, foil) of every explain call, in order.
        self.requests: list[tuple] = []
        self.exported: list[Path] = []
        #: Every call of ``hold_slow_work``, in order.
        self.holds: list[bool] = []
        #: Texts whose slow method stopped because the app had moved on.
        self.stopped: list[str] = []
        #: Seconds each layer of a fast explanation takes (its progress is reported per layer).
        self.layer_seconds = 0.0

    def load(self, progress):
        progress("loading the fake model…")
        if self.fail_load:
            raise RuntimeError(self.fail_load)
        fast = frozenset(m for m, info in INFOS.items() if info.family in ("alti", "attention"))
        return ModelInfo("fake-model", LABELS, dict(INFOS), ["alti", "rollout", "ig_dot"], fast)

    def samples(self) -> list[ListedSample]:
        return list(self._samples)

    def predict(self, texts: Sequence[str], requests=None) -> list[str]:
        return [LABELS[int(np.argmax(fake_predict(t)))] for t in texts]

    def check_request(self, target, foil, predicted=None) -> None:
        index = predicted if target is None else self._class(target, "target")
        if foil is not None and self._class(foil, "foil") == index:
            raise InputError("the target and the foil are the same class; choose another foil")

    @staticmethod
    def _class(spec: str, role: str) -> int:
        if spec.isdigit() and int(spec) < len(LABELS):
            return int(spec)
        if spec in LABELS:
            return LABELS.index(spec)
        raise InputError(f"the {role} {spec!r} is not a class of this model; its classes: {', '.join(LABELS)}")

    def explain(
        self, text: str, methods: Sequence[str], target=None, foil=None, should_stop=None, progress=None, like=None
    ) -> Explanation:
        if not text.strip():
            raise InputError("empty text: give a sentence to explain")
        if self.gate is not None and not all(INFOS[m].family in ("alti", "attention") for m in methods):
            self.wait_at_gate(text, should_stop)
        if progress is not None:
            for layer in range(1, LAYERS + 1):
                time.sleep(self.layer_seconds)
                progress(layer, LAYERS)
        self.explained.append((text, tuple(methods)))
        self.requests.append((target, foil))
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

    def wait_at_gate(self, text: str, should_stop) -> None:
        """A slow method's steps: wait for the gate, stopping (as the engine's would) once its sample is left."""
        deadline = time.monotonic() + 10
        while not self.gate.wait(timeout=0.01) and time.monotonic() < deadline:
            if should_stop is not None and should_stop():
                self.stopped.append(text)
                raise WorkStopped

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
                    yield PlotPoint(method, kind, q, float(np.clip(y, 0, 1)))
                yield CurveScore(method, kind, 0.1 * (k + 1) if kind == "comp" else 0.05 * (k + 1))

    def export(self, explanation: Explanation, directory: Path, stem: str) -> list[Path]:
        Path(directory).mkdir(parents=True, exist_ok=True)
        path = Path(directory) / f"{stem}.json"
        write_atomic(path, '{"fake": true}')
        self.exported.append(path)
        return [path]


# ------------------------------------------------------------------ a causal LM
LM_INFOS = {
    "alti": INFOS["alti"],
    "rollout": INFOS["rollout"],
    "alti_logit": MethodInfo("alti_logit", "logit", True, "logit", False, "ALTI-Logit"),
    "logit": MethodInfo("logit", "logit", True, "logit", False, "logit attribution without mixing"),
    "gxi_dot": MethodInfo("gxi_dot", "gradient", True, "probability", False, "input x gradient"),
}
LM_FAST = frozenset({"alti", "rollout", "alti_logit", "logit"})
#: The fake vocabulary, likeliest next token first, and its probabilities.
VOCAB = [" Paris", " the", " London", " Le", " New", " La", " a", " not", " Mon", " capital", " Berlin", " Rome"]
VOCAB_P = [0.77, 0.065, 0.012, 0.01, 0.009, 0.0089, 0.0073, 0.0072, 0.0064, 0.004]
LM_SAMPLES = [
    ListedSample("The capital of France is", target=" Paris"),
    ListedSample("The capital of England is", target=" London", foil=" Paris"),
    ListedSample("Once upon a"),
]


def token_id(token: str) -> int:
    return 7000 + VOCAB.index(token)


#: Prompts of more words than this come back marked truncated, as from a model's window.
LM_WINDOW = 12


class FakeLMService(FakeService):
    """A causal LM: predicts ' Paris' after anything; scores from positions, lower-triangular layers.

    Targets and foils are tokens of :data:`VOCAB`, as text or ``id:N``; curves
    read p(target), or ``logit(target) - logit(foil)`` (from +4 down to -2) with a foil.
    """

    def __init__(self, samples: list[ListedSample] | None = None) -> None:
        super().__init__(LM_SAMPLES if samples is None else samples)

    def load(self, progress):
        progress("loading the fake language model…")
        return ModelInfo(
            "fake-lm",
            [],
            dict(LM_INFOS),
            ["alti", "alti_logit", "logit", "gxi_dot"],
            LM_FAST,
            target=NextTokenTarget,
            unavailable={"globenc": "pre-LN blocks"},
        )

    def predict(self, texts, requests=None):
        return [" Paris" for _ in texts]

    @staticmethod
    def _token(spec: str, role: str) -> int:
        if spec.startswith("id:"):
            value = int(spec[3:])
            if not 7000 <= value < 7000 + len(VOCAB):
                raise InputError(f"the {role} id {value} is outside the vocabulary (7000-{7000 + len(VOCAB) - 1})")
            return value
        if spec not in VOCAB:
            raise InputError(f"the {role} {spec!r} is no token for this tokenizer")
        return token_id(spec)

    def check_request(self, target, foil, predicted=None) -> None:
        index = predicted if target is None else self._token(target, "target")
        if foil is not None and self._token(foil, "foil") == index:
            raise InputError("the target and the foil are the same token; choose another foil")

    def explain(
        self, text: str, methods: Sequence[str], target=None, foil=None, should_stop=None, progress=None, like=None
    ) -> Explanation:
        if not text.strip():
            raise InputError("empty text: give a sentence to explain")
        if self.gate is not None and not all(m in LM_FAST for m in methods):
            self.wait_at_gate(text, should_stop)
        index = token_id(" Paris") if target is None else self._token(target, "target")
        other = None if foil is None else self._token(foil, "foil")
        if other == index:
            raise InputError("the target and the foil are the same token; choose another foil")
        self.explained.append((text, tuple(methods)))
        self.requests.append((target, foil))
        tokens = text.split()
        n = len(tokens)
        scores, layers = {}, {}
        for k, method in enumerate(methods):
            values = np.cos(np.arange(n) * (k + 1) * 0.7)
            scores[method] = values * (3.0 if LM_INFOS[method].family == "logit" else 1.0)
            if LM_INFOS[method].matrix:
                base = np.tril(np.abs(np.sin(np.add.outer(np.arange(n), np.arange(n)) * (k + 1))) + 0.1)[None]
                stack = np.tril(base + np.arange(LAYERS)[:, None, None])
                layers[method] = stack / stack.sum(-1, keepdims=True)
        special = np.zeros(n, bool)
        special[-1] = True
        name = VOCAB[index - 7000]
        explained = NextTokenTarget(index, other, n - 1, name, None if other is None else VOCAB[other - 7000])
        logit = 17.371 if other is None else 4.126
        terms = None
        if any(LM_INFOS[m].family == "logit" for m in methods):
            tokens_part = float(np.sum(scores[next(m for m in methods if LM_INFOS[m].family == "logit")]))
            terms = {
                "logit": logit,
                "tokens": tokens_part,
                "embedding": 0.0,
                "attention_bias": [0.0] * LAYERS,
                "mlp": [logit - tokens_part, 0.0, 0.0],
                "final_norm_bias": 0.0,
                "head_bias": 0.0,
            }
        top = VOCAB[:10]
        return Explanation(
            text=text,
            tokens=[("Ġ" if i else "") + t for i, t in enumerate(tokens)],
            input_ids=list(range(100, 100 + n)),
            prediction=Prediction(" Paris", token_id(" Paris"), np.array(VOCAB_P), top, [token_id(t) for t in top]),
            scores=scores,
            layers=layers,
            target_position=n - 1,
            special=special,
            truncated=n > LM_WINDOW,
            model_name="fake-lm",
            target=explained,
            logit_terms=terms,
        )

    def curves(self, explanation: Explanation, methods: Sequence[str]):
        contrast = explanation.target.foil is not None
        for k, method in enumerate(methods):
            for kind in ("comp", "suff"):
                for q in BINS:
                    if self.gate is not None:
                        self.gate.wait(timeout=10)
                    if contrast:
                        y = 4.0 - 12 * q * (k + 1) / 2 if kind == "comp" else -2.0 + 10 * q
                    else:
                        y = 0.77 - q if kind == "comp" else 0.1 + q
                    yield PlotPoint(method, kind, q, float(y))
                yield CurveScore(method, kind, 1.5 * (k + 1) if contrast else 0.2)


def screen_text(app) -> str:
    """What the terminal shows, as plain text (from the screenshot)."""
    svg = app.export_screenshot()
    text = html.unescape(re.sub(r"<[^>]+>", "", svg))
    return text.replace("\u00a0", " ")
