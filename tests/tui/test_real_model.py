"""The explorer driven against the real engine with a tiny random BERT classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_model
from tui_fakes import wait_for

from alti import Explainer
from alti_tui.app import AltiApp
from alti_tui.service import EngineService, Sample

pytestmark = pytest.mark.anyio

SAMPLES = [
    Sample("a warm and funny film", "LABEL_1"),
    Sample("the plot is thin and the jokes fall flat", "LABEL_0"),
]
METHODS = ["alti", "rollout", "ig_l2"]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def explainer():
    model, tokenizer = tiny_model("bert")
    return Explainer(model, tokenizer, name="tiny-bert")


def ready(app: AltiApp) -> bool:
    return app.explanation is not None and not app.pending and app.curves.status == "done"


async def test_real_engine_behind_every_key(explainer, tmp_path):
    service = EngineService(explainer=explainer, samples=SAMPLES)
    app = AltiApp(service, methods=METHODS, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample with curves", polls=1500)
        explanation = app.explanation
        assert app.info.fast >= {"alti", "rollout"} and "ig_l2" not in app.info.fast
        assert list(explanation.scores) == METHODS
        expected = explainer.explain(SAMPLES[0].text, methods=["alti"])
        np.testing.assert_allclose(explanation.scores["alti"], expected.scores["alti"], atol=1e-6)
        await wait_for(pilot, lambda: None not in app.browser.predicted, "predicted labels")
        assert set(app.browser.predicted) <= set(explainer.labels)
        # one score per method and curve kind, from alti.faithfulness
        assert set(app.curves.scores) == {(m, k) for m in METHODS for k in ("comp", "suff")}

        await pilot.press("right_square_bracket", "r")
        layers = explanation.layers["alti"]
        np.testing.assert_allclose(app.matrix.current_matrix(), layers[1] @ layers[0])
        await pilot.press("x")
        assert app.matrix.method == "rollout"

        await pilot.press("n")
        await wait_for(pilot, lambda: ready(app) and app.sample_index == 1, "second sample", polls=1500)
        assert app.explanation.text == SAMPLES[1].text

        await pilot.press("slash", *"not good", "enter")
        await wait_for(pilot, lambda: ready(app) and app.text == "not good", "typed sentence", polls=1500)
        assert app.explanation.tokens == ["[CLS]", "not", "good", "[SEP]"]

        await pilot.press("e")
        await wait_for(pilot, lambda: any(n.title == "Exported" for n in app._notifications), "export")
        names = sorted(p.name for p in tmp_path.iterdir())
        stem = "typed-not-good"
        assert names == sorted(f"{stem}{s}" for s in (".html", ".svg", ".tex", ".json", "-screen.svg"))
        exported = json.loads((tmp_path / f"{stem}.json").read_text())
        assert exported["model"] == "tiny-bert"
        assert exported["text"] == "not good"
        assert list(exported["attributions"]) == METHODS
        await pilot.press("q")
    assert not app.is_running


def test_slow_copy_waits_for_a_running_trace_explanation(explainer):
    """While the ALTI rows of a sample compute, the slow copy's next forward pass waits."""
    import threading

    service = EngineService(explainer=explainer, samples=SAMPLES)
    service._fast_methods = frozenset({"alti"})
    ids = [explainer.encode(SAMPLES[0].text)]
    service.predict([SAMPLES[0].text])
    order: list[str] = []
    with service._fast_idle:
        service._fast_running += 1
    worker = threading.Thread(target=lambda: (service._slow.predict_ids(ids), order.append("slow")))
    worker.start()
    worker.join(0.2)
    order.append("fast done")
    with service._fast_idle:
        service._fast_running -= 1
        service._fast_idle.notify_all()
    worker.join()
    assert order == ["fast done", "slow"]


def test_held_slow_work_waits_for_the_release(explainer):
    import threading

    service = EngineService(explainer=explainer, samples=SAMPLES)
    service.predict([SAMPLES[0].text])
    order: list[str] = []
    service.hold_slow_work(True)
    worker = threading.Thread(target=lambda: (service.predict([SAMPLES[1].text]), order.append("slow")))
    worker.start()
    worker.join(0.2)
    order.append("released")
    service.hold_slow_work(False)
    worker.join()
    assert order == ["released", "slow"]
