"""The explorer driven against the real engine with a tiny random BERT classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tui_fakes import ready, wait_for

from alti import Explainer
from alti.targets import ClassTarget, MaskedTokenTarget, NextTokenTarget
from alti_tui.app import AltiApp
from alti_tui.models import ListedSample
from alti_tui.service import EngineService
from tests.conftest import tiny_model

pytestmark = pytest.mark.anyio

SAMPLES = [
    ListedSample("a warm and funny film", "LABEL_1"),
    ListedSample("the plot is thin and the jokes fall flat", "LABEL_0"),
]
METHODS = ["alti", "rollout", "ig_l2"]


@pytest.fixture(scope="module")
def explainer():
    model, tokenizer = tiny_model("bert")
    return Explainer(model, tokenizer, name="tiny-bert")


async def test_real_engine_behind_every_key(explainer, tmp_path):
    service = EngineService(explainer=explainer, samples=SAMPLES)
    app = AltiApp(service, methods=METHODS, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample with curves", polls=1500)
        explanation = app.session.explanation
        assert app.session.info.fast >= {"alti", "rollout"} and "ig_l2" not in app.session.info.fast
        assert list(explanation.scores) == METHODS
        expected = explainer.explain(SAMPLES[0].text, methods=["alti"])
        np.testing.assert_allclose(explanation.scores["alti"], expected.scores["alti"], atol=1e-6)
        await wait_for(pilot, lambda: None not in app.explorer.browser.predicted, "predicted labels")
        assert set(app.explorer.browser.predicted) <= set(explainer.labels)
        # one score per method and curve kind, from alti.faithfulness
        assert set(app.explorer.curves.scores) == {(m, k) for m in METHODS for k in ("comp", "suff")}

        await pilot.press("right_square_bracket", "r")
        layers = explanation.layers["alti"]
        np.testing.assert_allclose(app.explorer.matrix.current_matrix(), layers[1] @ layers[0])
        await pilot.press("x")
        assert app.explorer.matrix.method == "rollout"

        await pilot.press("n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "second sample", polls=1500)
        assert app.session.explanation.text == SAMPLES[1].text

        await pilot.press("slash", *"not good", "enter")
        await wait_for(pilot, lambda: ready(app) and app.session.text == "not good", "typed sentence", polls=1500)
        assert app.session.explanation.tokens == ["[CLS]", "not", "good", "[SEP]"]

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


# ------------------------------------------------------------ a causal language model
LM_SAMPLES = [
    ListedSample("the capital of france is", target="paris"),
    ListedSample("once upon a time"),
]


@pytest.fixture(scope="module")
def lm_explainer():
    from tests.conftest import tiny_pre_ln

    model, tokenizer = tiny_pre_ln("llama", dtype=torch.float32)
    return Explainer(model, tokenizer, name="tiny-llama")


async def test_real_causal_lm_with_a_target_and_a_foil(lm_explainer, tmp_path):
    from alti_tui.screens.target import TargetScreen

    service = EngineService(explainer=lm_explainer, samples=LM_SAMPLES)
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt with curves", polls=1500)
        info = app.session.info
        assert info.target is NextTokenTarget and info.labels == []
        assert set(info.methods) == set(lm_explainer.applicable_methods())
        assert {"alti", "alti_logit", "logit"} <= info.fast and "gxi_dot" not in info.fast
        assert app.session.methods == ["alti", "alti_logit", "logit", "gxi_dot"]
        explanation = app.session.explanation
        assert explanation.target.label == "paris"  # the sample's own target
        expected = lm_explainer.explain(LM_SAMPLES[0].text, methods=["alti_logit"], target="paris")
        np.testing.assert_allclose(explanation.scores["alti_logit"], expected.scores["alti_logit"], atol=1e-5)
        assert explanation.target_position == len(explanation.tokens) - 1
        assert np.allclose(np.triu(explanation.layers["alti"], 1), 0)  # causal: nothing from later tokens
        await wait_for(pilot, lambda: None not in app.explorer.browser.predicted, "predicted next tokens")
        assert app.explorer.browser.predicted == [
            lm_explainer.explain(s.text, methods=["alti"]).prediction.label for s in LM_SAMPLES
        ]

        # a foil from the top tokens: the curves read the logit difference
        await pilot.press("c")
        assert isinstance(app.screen, TargetScreen)
        await pilot.press("down", "f", "enter")
        await wait_for(
            pilot, lambda: ready(app) and app.session.explanation.target.foil is not None, "contrast", polls=1500
        )
        foil_id = app.session.explanation.prediction.ids[1]
        assert app.session.explanation.target.foil == foil_id
        assert app.session.explanation.target.quantity == "logit difference"
        assert app.explorer.curves.quantity == "logit difference"
        terms = app.session.explanation.logit_terms
        assert terms["logit"] == pytest.approx(
            float(np.sum(app.session.explanation.scores["alti_logit"]))
            + sum(terms["mlp"])
            + sum(terms["attention_bias"])
            + terms["final_norm_bias"]
            + terms["head_bias"],
            abs=1e-3,
        )
        # the first curve point is the full input's logit difference
        first = app.explorer.curves.points[("alti", "comp")][0]
        assert first[1] == pytest.approx(terms["logit"], abs=1e-3)

        await pilot.press("e")
        await wait_for(pilot, lambda: any(n.title == "Exported" for n in app._notifications), "export")
        exported = json.loads((tmp_path / "sample-0001.json").read_text())
        assert exported["target"]["token"] == "paris" and exported["foil"]["id"] == foil_id
        assert list(exported["attributions"]) == app.session.methods
        await pilot.press("q")


def test_adapter_file_problems_are_one_line(tmp_path):
    from alti.errors import AltiError

    service = EngineService(model="unused", adapter=str(tmp_path / "missing.toml"))
    with pytest.raises(AltiError, match="adapter file .*missing.toml does not exist"):
        service.load(lambda text: None)


def test_masked_lm_and_mean_pooling_through_the_service():
    from alti.errors import AltiError
    from alti_tui.widgets.matrix import row_note
    from tests.conftest import tiny_pre_ln

    model, tokenizer = tiny_pre_ln("modernbert", task="masked_lm", dtype=torch.float32)
    service = EngineService(explainer=Explainer(model, tokenizer, name="tiny-mlm"), samples=[])
    info = service.load(lambda text: None)
    assert info.target is MaskedTokenTarget and info.is_lm
    texts = ["the keys [MASK] here", "no mask here"]
    predicted = service.predict(texts, [("are", "is"), (None, None)])
    assert predicted[0] in ("are", "is") and predicted[1] is None
    assert service.predict(texts[:1], [("are", "no such words")]) == [service.predict(texts[:1])[0]]
    with pytest.raises(AltiError, match="give both"):
        service.check_request("are", None)
    service.check_request("are", "is")
    explanation = service.explain(texts[0], ["alti"], "are", "is")
    assert row_note(explanation) == "row ▶ = the mask"

    model, tokenizer = tiny_pre_ln("modernbert", task="classifier", dtype=torch.float32, pooling="mean")
    service = EngineService(explainer=Explainer(model, tokenizer, name="tiny-mean"), samples=[])
    assert service.load(lambda text: None).target is ClassTarget
    explanation = service.explain("a warm film", ["alti"])
    assert explanation.target_position is None and "mean of the rows" in row_note(explanation)


@pytest.mark.parametrize("method", ["ig_l2", "decompx", "value_zeroing"])
def test_a_slow_method_of_a_left_sample_stops_at_its_next_step(explainer, method):
    from alti_tui.models import WorkStopped

    service = EngineService(explainer=explainer, samples=list(SAMPLES))
    service.load(lambda text: None)
    with pytest.raises(WorkStopped):
        service.explain(SAMPLES[0].text, [method], should_stop=lambda: True)
    done = service.explain(SAMPLES[0].text, [method], should_stop=lambda: False)
    assert set(done.scores) == {method}
    # the slow copy is left without the stop condition of a finished explanation
    assert service.explain(SAMPLES[1].text, [method]).scores[method].shape == (len(explainer.encode(SAMPLES[1].text)),)


def test_a_run_files_answer_is_explained_again_as_that_answer():
    """The run explorer adds methods and matrices to a stored whole answer: the service
    explains the file's tokens as that answer, not the prompt's next token."""
    from alti.targets import AnswerTarget
    from tests.conftest import tiny_pre_ln

    explainer = Explainer(*tiny_pre_ln("llama", "causal_lm"))
    stored = explainer.explain("the film was good and the cast", methods=["alti"], answer=" was great")
    service = EngineService(explainer=explainer, samples=[])
    service.load(lambda _: None)
    for methods in (["alti", "attention"], ["ig_l2"]):  # the fast copy, then the slow one
        again = service.explain(stored.text, methods, like=stored)
        assert isinstance(again.target, AnswerTarget) and again.target == stored.target
        assert again.input_ids == stored.input_ids and again.text == stored.text
    fast = service.explain(stored.text, ["alti"], like=stored)
    np.testing.assert_allclose(fast.scores["alti"], stored.scores["alti"], atol=1e-6)
    assert not isinstance(service.explain(stored.text, ["alti"]).target, AnswerTarget)
