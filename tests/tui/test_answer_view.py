"""The explorer's answer view, driven against the real engine with a tiny random causal LM:
g generates an answer and explains it whole; , and . move over its steps; the segments tab
and the steps × tokens heatmap show it."""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import Static, TabbedContent
from tui_fakes import ready, screen_text, wait_for

from alti import Explainer
from alti.runs import Order
from alti_tui.app import AltiApp
from alti_tui.models import AnswerSettings, ListedSample
from alti_tui.screens.overview import OverviewScreen
from alti_tui.screens.sort import SortScreen
from alti_tui.service import EngineService
from tests.conftest import tiny_pre_ln

pytestmark = pytest.mark.anyio

PROMPT = "the film was good. the cast was great. what was great?"
METHODS = ["alti", "alti_logit", "gxi_dot"]


@pytest.fixture(scope="module")
def lm():
    return Explainer(*tiny_pre_ln("llama", "causal_lm"), name="tiny-llama")


def answered(app) -> bool:
    explanation = app.session.explanation
    return ready(app) and explanation is not None and explanation.answer_steps > 0


@pytest.mark.slow  # seconds: the real engine generates and explains
async def test_g_answers_the_prompt_and_the_steps_are_each_next_token(lm, tmp_path):
    service = EngineService(explainer=lm, samples=[ListedSample("a sample to start with"), ListedSample("another")])
    app = AltiApp(service, methods=METHODS, export_dir=tmp_path, answer=AnswerSettings(tokens=4))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample", polls=1500)
        assert app.session.explanation.answer_steps == 0
        await pilot.press("full_stop")  # no answer shown: the step keys do nothing
        assert app.session.step is None
        await pilot.press("slash", *PROMPT, "enter")
        await wait_for(pilot, lambda: ready(app) and app.session.text == PROMPT, "the prompt", polls=1500)
        await pilot.press("g")
        await wait_for(pilot, lambda: answered(app), "the answer", polls=3000)

        whole = app.session.explanation
        expected = lm.explain(PROMPT, methods=METHODS, generate=4, segments="sentences")
        assert whole.input_ids == expected.input_ids and whole.target == expected.target
        for method in METHODS:
            np.testing.assert_allclose(whole.scores[method], expected.scores[method], atol=1e-6, err_msg=method)
        assert [s.text for s in whole.segments] == [s.text for s in expected.segments]
        assert app.explorer.attributions.answer == (whole.tokens[whole.target.start :], None)

        await pilot.press("full_stop", "full_stop")  # the whole answer, step 1, step 2
        assert app.session.step == 1
        shown = app.explorer.attributions.explanation
        assert shown.tokens == whole.tokens[: whole.target.start + 1]
        np.testing.assert_allclose(shown.scores["alti"], whole.steps["alti"][1][: len(shown.tokens)])
        assert app.explorer.attributions.methods == ["alti", "alti_logit"]  # gradients: the whole answer only
        for _ in range(whole.answer_steps + 2):
            await pilot.press("full_stop")
        assert app.session.step == whole.answer_steps - 1  # the last step holds
        for _ in range(whole.answer_steps + 2):
            await pilot.press("comma")
        assert app.session.step is None and app.explorer.attributions.explanation is whole

        tabs = app.explorer.query_one(TabbedContent)
        await pilot.press("t", "t")
        assert tabs.active == "tab-segments"
        body = str(app.explorer.segments.query_one("#segments-body", Static).render())
        for segment in whole.segments:
            assert segment.text in body and f"{segment.score(whole.scores['alti']):+.3f}" in body
        await pilot.press("t")
        assert tabs.active == "tab-matrix"
        await pilot.press("r", "r")  # per-layer -> rolled out -> the answer's steps x tokens
        np.testing.assert_allclose(app.explorer.matrix.current_matrix(), whole.steps["alti"])
        await pilot.press("r")  # -> the answer's steps x segments
        by_segment = [[segment.score(row) for segment in whole.segments] for row in whole.steps["alti"]]
        np.testing.assert_allclose(app.explorer.matrix.current_matrix(), by_segment)
        assert "answer steps × segments" in str(app.explorer.matrix.query_one("#matrix-title", Static).render())
        await pilot.press("r")
        assert not app.explorer.matrix.answer_rows and not app.explorer.matrix.rolled

        app.explorer.explain(PROMPT)  # explained again (as after m): still the answer generated
        await wait_for(pilot, lambda: answered(app) and app.session.explanation is not whole, "again", polls=3000)
        assert app.session.explanation.input_ids == whole.input_ids

        await pilot.press("n")  # a sample: its next token, and no segments tab
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index is not None, "a sample", polls=1500)
        assert app.session.explanation.answer_steps == 0 and app.session.explanation.segments is None
        await pilot.press("t", "t")
        assert tabs.active == "tab-matrix"


@pytest.mark.slow  # seconds: the real engine generates and explains
async def test_a_dataset_sample_is_explained_as_its_own_answer(lm, tmp_path):
    """An answer dataset (prompt, answer, segments columns) in the explorer: choosing a sample
    explains its answer as given, with its segments; g writes the model's own answer instead."""
    import json

    rows = [
        {"prompt": PROMPT, "answer": " the cast", "segments": [[0, 18], [19, 38]]},
        {"prompt": "a plain prompt", "answer": " and more"},
    ]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    service = EngineService(explainer=lm, dataset=str(data))
    methods = [*METHODS, "value_zeroing"]  # a slow method with steps of its own
    app = AltiApp(service, methods=methods, export_dir=tmp_path, answer=AnswerSettings(tokens=3))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: answered(app), "the first sample's answer", polls=3000)
        whole = app.session.explanation
        expected = lm.explain(PROMPT, methods=methods, answer=" the cast", segments=[(0, 18), (19, 38)])
        assert whole.input_ids == expected.input_ids and whole.target == expected.target
        for method in methods:
            np.testing.assert_allclose(whole.scores[method], expected.scores[method], atol=1e-6, err_msg=method)
        assert [s.text for s in whole.segments] == ["the film was good.", "the cast was great."]
        await pilot.press("full_stop", "full_stop")  # step 2: the slow method's row is there too
        shown = app.explorer.attributions
        assert shown.methods == ["alti", "alti_logit", "value_zeroing"]
        np.testing.assert_allclose(shown.explanation.scores["value_zeroing"], expected.step(1).scores["value_zeroing"])
        assert shown.explanation.prediction.ids == expected.step(1).prediction.ids
        await pilot.pause()
        top = expected.step(1).prediction  # the model's likeliest tokens at the step's row, drawn
        assert f"{top.labels[0]!r} {float(top.probabilities[0]):.3f}" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: answered(app) and app.session.text == "a plain prompt", "sample 2", polls=3000)
        assert app.session.explanation.segments is not None  # no spans given: the settings' sentences
        await pilot.press("p")
        await wait_for(pilot, lambda: answered(app) and app.session.text == PROMPT, "sample 1 again", polls=3000)
        await pilot.press("g")  # the model's own answer replaces the dataset's
        generated = lm.explain(PROMPT, methods=METHODS, generate=3, segments="sentences")
        await wait_for(
            pilot,
            lambda: answered(app) and app.session.explanation.input_ids == generated.input_ids,
            "the generated answer",
            polls=3000,
        )


async def test_a_long_answer_without_per_layer_matrices_says_so(tmp_path):
    """Past the layer budget an answer keeps no per-layer matrices: the matrix tab says why,
    and the answer's steps × tokens are still drawn."""
    ex = Explainer(*tiny_pre_ln("llama", "causal_lm"), name="tiny-llama")
    ex.layer_budget = 0
    service = EngineService(explainer=ex, samples=[ListedSample(PROMPT)])
    app = AltiApp(service, methods=METHODS, export_dir=tmp_path, answer=AnswerSettings(tokens=3))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "the sample", polls=1500)
        await pilot.press("g")
        await wait_for(pilot, lambda: answered(app), "the answer", polls=3000)
        matrix = app.explorer.matrix
        assert matrix.current_matrix() is None and app.session.explanation.layers == {}
        title = str(matrix.query_one("#matrix-title", Static).render())
        assert "alti: per-layer matrices not kept for an input this long" in title
        await pilot.press("r", "r")
        np.testing.assert_allclose(matrix.current_matrix(), app.session.explanation.steps["alti"])


async def test_g_is_for_causal_lms(tmp_path):
    from tests.conftest import tiny_model

    service = EngineService(explainer=Explainer(*tiny_model("bert")), samples=[ListedSample("a fine film")])
    app = AltiApp(service, methods=["alti"], export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample", polls=1500)
        await pilot.press("g")
        await pilot.pause(0.2)
        assert app.session.explanation.answer_steps == 0 and app.session.step is None
        footer_keys = {active.binding.key for active in app.explorer.active_bindings.values()}
        assert "g" not in footer_keys


@pytest.mark.slow  # seconds: the real engine generates and explains
async def test_an_answer_run_shows_its_steps_and_segments(tmp_path):
    """alti-tui --attributions on an answer run: each sample's answer listed, its steps and
    segments from the file, the matrices from the model it records."""
    import json

    from alti.cli import main
    from alti_tui.run_service import RunService

    model, tokenizer = tiny_pre_ln("gpt2", "causal_lm")
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    rows = [
        {
            "context": "the film was good. the cast was great.",
            "question": "what was great?",
            "answer": " the cast",
            "support": 2,
        }
    ]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run.jsonl"
    command = ["attribute", "--model", str(tmp_path / "lm"), "--dataset", str(tmp_path / "qa.jsonl")]
    assert main([*command, "--methods", "alti,alti_logit", "--curves", "-o", str(run)]) == 0
    app = AltiApp(RunService(str(run)), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(
            pilot, lambda: answered(app) and app.explorer.model_ready and app.session.explanation.layers, "matrices"
        )
        whole = app.session.explanation
        assert app.explorer.browser.predicted[0] == " the cast"
        assert [s.text for s in whole.segments][-1] == "Question: what was great?"
        await pilot.press("full_stop")
        np.testing.assert_allclose(
            app.explorer.attributions.explanation.scores["alti"], whole.steps["alti"][0][: whole.target.start]
        )
        assert app.explorer.matrix.current_matrix().shape[0] == whole.target.start  # the step's rows only
        await pilot.press("t", "t")
        assert app.explorer.query_one(TabbedContent).active == "tab-segments"

        await pilot.press("o")  # the overview: the answers' context table
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen) and app.screen.overview, "o")
        await pilot.pause(0.1)
        drawn = screen_text(app)
        assert "Context faithfulness" in drawn and "support_mrr" in drawn and "random" in drawn
        await pilot.press("escape", "s")  # the sorts by an answer's context
        await wait_for(pilot, lambda: isinstance(app.screen, SortScreen), "s")
        keys = [key for key, _ in app.screen.choices]
        assert {"drop:worst", "drop:best", "support:worst"} <= set(keys)
        app.screen.query_one("#sort-keys").highlighted = keys.index("drop:worst")
        await pilot.press("enter")  # then its method: the first, alti
        await pilot.pause(0.1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.explorer, "sorted")
        assert app.explorer.order == Order("drop", ("alti",))


def test_the_segment_table_fits_its_width_and_says_what_it_leaves_out():
    import io

    from rich.console import Console

    from alti.results import Explanation, Prediction, Segment
    from alti_tui.widgets.segments import segment_table

    scores = {"alti": np.array([0.0, 0.5, 0.25, 0.25]), "logit": np.array([0.0, -2.0, 1.0, 1.0])}
    explanation = Explanation(
        "a b c", ["<s>", "a", "b", "c"], [0, 1, 2, 3], Prediction("x", 0, np.ones(1), ["x"]), scores
    )
    explanation.segments = [Segment("a [bold]long[/bold] first segment of the prompt", 1, 2), Segment("b c", 2, 4)]
    for width, methods in ((120, ["alti", "logit"]), (48, ["alti"])):
        console = Console(width=200, file=io.StringIO(), color_system=None)
        console.print(segment_table(explanation, ["alti", "logit"], width))
        drawn = console.file.getvalue()
        lines = drawn.rstrip("\n").split("\n")
        assert max(len(line.rstrip()) for line in lines) <= width
        assert lines[0].split() == methods
        assert "+0.500" in lines[1] and "+0.500" in lines[2]  # the sums of the segments' tokens
        assert ("-2.000" in lines[1]) == ("logit" in methods)
        assert ("not shown, no room: logit" in lines[-1]) == ("logit" not in methods)
        assert "a [bold]long[/bold] f" in drawn  # a segment's text is text, never markup
