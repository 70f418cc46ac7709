"""Pilot tests of a language model in the explorer, against the deterministic fake LM service."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Input
from tui_fakes import LM_SAMPLES, FakeLMService, FakeService, ready, token_id, wait_for

from alti.targets import NextTokenTarget
from alti_tui.app import AltiApp
from alti_tui.cli import build_parser
from alti_tui.models import ListedSample
from alti_tui.screens.target import TargetScreen
from alti_tui.widgets.curves import plot, y_range
from alti_tui.widgets.matrix import heatmap_strips

pytestmark = pytest.mark.anyio


def head_text(app: AltiApp) -> str:
    """The attribution panel's fixed lines (prediction, what is explained), as plain text."""
    _, head, _, _, _ = app.explorer.attributions._built()
    return "\n".join(strip.text for strip in head)


def plain(renderable, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


async def test_top_tokens_explained_target_and_logit_split(tmp_path):
    service = FakeLMService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt explained")
        assert app.session.info.target is NextTokenTarget
        assert app.session.methods == ["alti", "alti_logit", "logit", "gxi_dot"]
        # the logit methods come with the one forward pass, before the gradients
        assert service.explained[0] == (LM_SAMPLES[0].text, ("alti", "alti_logit", "logit"))
        assert service.requests[0] == (" Paris", None)  # the sample's own target
        head = head_text(app)
        assert "Next token ' Paris' 0.770 · ' the' 0.065 · ' London' 0.012" in head
        assert "explaining p(' Paris') · logit 17.371 = " in head
        assert app.explorer.curves.quantity == "probability" and app.explorer.curves.label == "p(' Paris')"
        await wait_for(pilot, lambda: None not in app.explorer.browser.predicted, "predicted tokens")
        prompts = [str(app.explorer.browser.option_list.prompt(i)) for i in range(3)]
        assert prompts[0].startswith("✓ ' Paris' The capital of France")
        assert prompts[1].startswith("✗ ' London'→' Paris' The capital of England")
        assert prompts[2].startswith("  →' Paris' Once upon a")
        assert app.explorer.browser.border_title == "Samples 3 · ✗ 1"
        assert "row ▶ = last token" in str(app.explorer.matrix.query_one("#matrix-title").render())


async def test_c_picks_target_and_foil_from_the_top_tokens_and_re_explains(tmp_path):
    service = FakeLMService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt")
        await pilot.press("n", "n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 2, "the prompt without a target")
        assert service.requests[-1] == (None, None)
        await pilot.press("c")
        assert isinstance(app.screen, TargetScreen)
        await pilot.press("down", "t", "down", "f", "enter")
        await wait_for(pilot, lambda: ready(app) and app.session.explanation.target.foil is not None, "re-explained")
        assert service.requests[-1] == (f"id:{token_id(' the')}", f"id:{token_id(' London')}")
        head = head_text(app)
        assert "explaining ' the' against ' London' · logit difference 4.126 = " in head
        assert app.explorer.curves.quantity == "logit difference"
        assert app.explorer.curves.label == "logit(' the') − logit(' London')"
        # the choice belongs to this prompt: it comes back with it, the others keep theirs
        await pilot.press("p")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "previous sample")
        assert service.requests[-1] == (" London", " Paris")
        await pilot.press("n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 2, "back again")
        assert service.requests[-1] == (f"id:{token_id(' the')}", f"id:{token_id(' London')}")
        # c clears the foil, d makes the prediction the target again
        await pilot.press("c")
        screen = app.screen
        assert screen.query_one("#target", Input).value == "' the'"
        assert screen.query_one("#foil", Input).value == "' London'"
        await pilot.press("c", "d", "enter")
        await wait_for(pilot, lambda: ready(app) and app.session.explanation.target.foil is None, "default again")
        assert service.requests[-1] == (None, None)
        assert "explaining p(' Paris')" in head_text(app)


async def test_typed_target_and_bad_targets_get_a_message(tmp_path):
    service = FakeLMService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt")
        calls = len(service.requests)
        await pilot.press("c", "tab")
        field = app.screen.query_one("#target", Input)
        assert app.focused is field
        field.value = ""
        await pilot.press(*"id:99", "enter")
        assert isinstance(app.screen, TargetScreen)  # stays open to correct the token
        assert any("outside the vocabulary" in n.message for n in app._notifications)
        field.value = ""
        await pilot.press("tab")
        app.screen.query_one("#foil", Input).value = "' Paris'"
        await pilot.press("enter")  # an empty target is the prediction: ' Paris' against itself
        assert isinstance(app.screen, TargetScreen)
        assert any("the same token" in n.message for n in app._notifications)
        assert len(service.requests) == calls
        field.value = "' Rome'"
        app.screen.query_one("#foil", Input).value = "id:7010"
        await pilot.press("enter")
        await wait_for(pilot, lambda: ready(app) and service.requests[-1] == (" Rome", "id:7010"), "typed target")
        assert "explaining ' Rome' against ' Berlin'" in head_text(app)
        await pilot.press("c", "escape")
        assert service.requests[-1] == (" Rome", "id:7010")
        assert app.is_running


async def test_default_target_and_foil_from_the_command_line(tmp_path):
    service = FakeLMService(samples=[ListedSample("The capital of Italy is"), ListedSample("Rome is", target=" Rome")])
    app = AltiApp(service, export_dir=tmp_path, foil=" London")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt")
        assert service.requests[0] == (None, " London")
        await pilot.press("n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "second prompt")
        assert service.requests[-1] == (" Rome", " London")  # the sample's target, the default foil


async def test_logit_difference_curves_fit_their_values(tmp_path):
    service = FakeLMService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt")
        await pilot.press("n", "t")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "the sample with a foil")
        curves = app.explorer.curves
        assert curves.quantity == "logit difference"
        values = [y for points in curves.points.values() for _, y in points]
        assert min(values) < 0 < 1 < max(values)
        text = plain(curves.render())
        assert "done · y: logit(' London') − logit(' Paris')" in text
        assert " 4.6 ┤" in text and " 0.0 ┤" in text and "-8.6 ┤" in text  # values from -8.0 to 4.0
        assert "1.500" in text  # the table's scores, in logits
        await pilot.pause()
        assert curves.region.height > 10


def test_curve_y_range_and_ticks():
    assert y_range([0.2, 0.9], "probability") == (0.0, 1.0)
    low, high = y_range([3.0, 5.0], "logit difference")
    assert low == 0.0 and high == pytest.approx(5.25)
    low, high = y_range([-2.0, 4.0], "logit difference")
    assert (low, high) == (pytest.approx(-2.3), pytest.approx(4.3))
    drawn = plot([("alti", [(0.0, -2.0), (0.5, 4.0)])], {"alti": "red"}, 40, 22, 0.5, (low, high)).plain
    lines = drawn.splitlines()
    assert lines[0].startswith(" 4.3 ┤") and lines[19].startswith("-2.3 ┤")
    assert lines[12].startswith(" 0.0 ┤")  # where the difference changes sign
    # probabilities keep the fixed 0..1 axis
    drawn = plot([("alti", [(0.0, 0.5)])], {"alti": "red"}, 40, 12, 0.5).plain
    assert drawn.splitlines()[0].startswith(" 1.0 ┤") and "0.0 ┤" in drawn


def test_heatmap_marks_the_row_read_and_none_for_mean_pooling():
    n = 4
    matrix = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    tokens = ["a", "b", "c", "d"]
    _, rows = heatmap_strips(tokens, matrix, n - 1, 0)
    labels = [label.text for label, _ in rows]
    assert labels[-1].rstrip().endswith("d▶") and not any("▶" in label for label in labels[:-1])
    # upper triangle: the lowest colour (white) in every row above the diagonal
    first_row = rows[0][1]
    styles = [segment.style.bgcolor for segment in first_row]
    assert styles[1] == styles[2] == styles[3] != styles[0]
    _, rows = heatmap_strips(tokens, matrix, None, 0)
    assert not any("▶" in label.text for label, _ in rows)


def test_parser_takes_adapter_target_and_foil():
    args = build_parser().parse_args(
        ["--model", "smollm2", "--adapter", "my.toml", "--target", " Paris", "--foil", "id:4528"]
    )
    assert (args.adapter, args.target, args.foil) == ("my.toml", " Paris", "id:4528")
    text = build_parser().format_help()
    assert "--adapter FILE.toml" in text and "causal LM" in text and "smollm2" in text


async def test_c_on_a_classifier_lists_the_classes(tmp_path):
    service = FakeService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("c")
        screen = app.screen
        assert [c.shown for c in screen.choices] == ["negative", "positive"]
        await pilot.press("f", "enter")  # 'negative' against the predicted 'positive'
        await wait_for(pilot, lambda: ready(app) and service.requests[-1] == (None, "negative"), "contrast")
        await pilot.press("c", "down", "f", "enter")  # the prediction against itself: refused
        assert isinstance(app.screen, TargetScreen)
        assert any("the same class" in n.message for n in app._notifications)
        await pilot.press("escape")
        assert service.requests[-1] == (None, "negative")


async def test_a_prompt_cut_to_the_window_says_its_end_was_kept(tmp_path):
    service = FakeLMService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first prompt")
        app.explorer.explain(" ".join(["word"] * 20) + " is")
        await wait_for(pilot, lambda: ready(app) and app.session.explanation.truncated, "the long prompt")
        assert "input truncated to the model's maximum length (its end kept)" in head_text(app)


async def shown_toasts(pilot) -> str:
    """The text of the notifications on the screen."""
    await pilot.pause(0.1)
    return "\n".join(str(toast.render()) for toast in pilot.app.screen.query("Toast"))


async def test_brackets_from_the_user_are_shown_as_typed(tmp_path):
    """Rich markup in typed text reaches the messages as text: '[b]x' is shown, not a bold 'x'."""
    app = AltiApp(FakeLMService(), export_dir=tmp_path, foil="[b]x")
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await wait_for(pilot, lambda: "could not explain" in app.explorer.attributions.message, "the foil refused")
        assert "the foil '[b]x' is no token" in await shown_toasts(pilot)
        await pilot.press("c")
        assert isinstance(app.screen, TargetScreen)
        app.screen.query_one("#target", Input).value = "'[i]y'"
        await pilot.press("enter")
        assert "the target '[i]y' is no token" in await shown_toasts(pilot)
