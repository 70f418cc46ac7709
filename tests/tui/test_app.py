"""Pilot tests: every key of the explorer, against the deterministic fake service."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Input, SelectionList, Static, TabbedContent
from tui_fakes import SAMPLES, FakeService, ready, wait_for

from alti_tui.app import AltiApp
from alti_tui.models import ListedSample
from alti_tui.screens.help import HelpScreen
from alti_tui.screens.methods import MethodScreen
from alti_tui.screens.sentence import SentenceScreen
from alti_tui.widgets.matrix import LayerSlider

pytestmark = pytest.mark.anyio


async def test_first_sample_explained_with_predictions_marked(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample explained")
        assert app.sub_title == "fake-model"
        assert app.session.sample_index == 0
        assert app.session.explanation.text == SAMPLES[0].text
        assert set(app.session.explanation.scores) == {"alti", "rollout", "ig_dot"}
        await wait_for(pilot, lambda: None not in app.explorer.browser.predicted, "predictions")
        assert app.explorer.browser.predicted == ["positive", "negative", "positive", "positive"]
        assert app.explorer.browser.border_title == "Samples 4 · ✗ 1"
        assert str(app.explorer.browser.option_list.prompt(2)).startswith("✗ ")
        assert app.explorer.curves.point_count() == 3 * 2 * 5
        assert app.explorer.curves.scores[("ig_dot", "comp")] == pytest.approx(0.3)
        assert not app.query_one("#progress").display


async def test_gold_labels_the_model_does_not_have_are_not_marked_wrong(tmp_path):
    """A dataset labelled 'bad'/'good' for a negative/positive model: those samples get no ✗
    (nor ✓), the count leaves them out, and one notification says why."""
    samples = [ListedSample("a gripping film", "good"), ListedSample("the plot is thin", "[b]bad[/b]"), *SAMPLES[2:]]
    app = AltiApp(FakeService(samples), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample explained")
        await wait_for(pilot, lambda: None not in app.explorer.browser.predicted, "predictions")
        assert app.explorer.browser.border_title == "Samples 4 · ✗ 1"  # sample 3 only
        assert str(app.explorer.browser.option_list.prompt(1)).startswith("  ")
        notes = [n.message for n in app._notifications]
        assert any("'[b]bad[/b]', 'good' are none of the model's" in note for note in notes), notes


async def test_n_and_p_switch_samples(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "second sample")
        assert app.session.explanation.text == SAMPLES[1].text
        await pilot.press("n", "n", "n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 3, "last sample")
        await pilot.press("p")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 2, "back one")
        assert app.session.explanation.text == SAMPLES[2].text


async def test_filter_by_typing(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("f")
        assert isinstance(app.focused, Input)
        await pilot.press(*"plot")
        assert app.explorer.browser.shown == [1]
        await pilot.press("enter")
        assert app.focused is app.explorer.browser.option_list
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "filtered sample")
        assert app.explorer.browser.border_title.startswith("Samples 1/4")
        await pilot.press("f", "backspace", "escape")  # focusing selects the filter text
        assert app.focused is app.explorer.browser.option_list
        assert app.explorer.browser.shown == [0, 1, 2, 3]
        assert app.explorer.browser.current == 1


async def test_slash_explains_a_typed_sentence_and_rejects_empty_input(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("slash")
        assert isinstance(app.screen, SentenceScreen)
        await pilot.press("enter")
        assert not isinstance(app.screen, SentenceScreen)
        assert any("Empty input" in n.message for n in app._notifications)
        assert app.session.explanation.text == SAMPLES[0].text
        await pilot.press("slash", *"so very good", "enter")
        await wait_for(pilot, lambda: ready(app) and app.session.text == "so very good", "typed sentence")
        assert app.session.sample_index is None
        assert app.session.explanation.tokens == ["[CLS]", "so", "very", "good", "[SEP]"]


async def test_engine_error_is_shown_not_raised(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        app.explorer.explain("   ")
        await wait_for(pilot, lambda: "could not explain" in app.explorer.attributions.message, "error shown")
        assert any("empty text" in n.message for n in app._notifications)
        assert app.is_running


async def test_m_chooses_methods(tmp_path):
    service = FakeService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("m")
        assert isinstance(app.screen, MethodScreen)
        selection = app.screen.query_one(SelectionList)
        assert selection.selected == ["alti", "rollout", "ig_dot"]
        await pilot.press("space", "down", "down", "space", "enter")
        await wait_for(
            pilot, lambda: ready(app) and app.session.methods == ["rollout", "attention", "ig_dot"], "new methods"
        )
        assert set(app.session.explanation.scores) == {"rollout", "attention", "ig_dot"}
        assert app.explorer.matrix_method == "rollout"
        assert app.explorer.curves.methods == ["rollout", "attention", "ig_dot"]
        await pilot.press("m", "escape")
        assert app.session.methods == ["rollout", "attention", "ig_dot"]


async def test_layer_keys_rolled_toggle_and_matrix_method(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        matrix = app.explorer.matrix
        assert (matrix.method, matrix.layer_index, matrix.rolled) == ("alti", 0, False)
        np.testing.assert_allclose(matrix.current_matrix(), app.session.explanation.layers["alti"][0])
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert matrix.layer_index == 2
        assert app.query_one(LayerSlider).layer_index == 2
        await pilot.press("left_square_bracket")
        assert matrix.layer_index == 1
        await pilot.press("r")
        assert matrix.rolled
        layers = app.session.explanation.layers["alti"]
        np.testing.assert_allclose(matrix.current_matrix(), layers[1] @ layers[0])
        await pilot.press("x")
        assert matrix.method == "rollout"
        await pilot.press("x")
        assert matrix.method == "alti"


async def test_cumulative_layers_are_shown_as_they_are(tmp_path):
    """A method whose layers already relate tokens to the input (DecompX) is never rolled out."""
    app = AltiApp(FakeService(), methods=["alti", "parts"], export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        matrix = app.explorer.matrix
        await pilot.press("x")
        assert matrix.method == "parts" and matrix.cumulative
        await pilot.press("right_square_bracket", "r")
        assert matrix.rolled
        np.testing.assert_allclose(matrix.current_matrix(), app.session.explanation.layers["parts"][1])
        assert "after layer 2 (cumulative)" in str(matrix.query_one("#matrix-title").render())


async def test_mouse_moves_the_layer_slider(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        slider = app.query_one(LayerSlider)
        last_track_cell = 2 + slider._track_width() - 1
        await pilot.click(LayerSlider, offset=(last_track_cell, 0))
        assert app.explorer.matrix.layer_index == 2
        await pilot.click(LayerSlider, offset=(0, 0))
        assert app.explorer.matrix.layer_index == 1


async def test_cursor_keys_move_the_token_cursor(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("right", "right")
        assert app.explorer.attributions.cursor == 2
        assert app.explorer.matrix.cursor == 2
        await pilot.press("left")
        assert app.explorer.attributions.cursor == 1
        line = app.explorer.attributions._cursor_line(app.session.explanation)
        assert "'a' #1" in line.plain and "alti +" in line.plain


async def test_t_switches_between_matrix_and_curves(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "tab-matrix"
        await pilot.press("t")
        assert tabs.active == "tab-curves"
        await pilot.press("t")
        assert tabs.active == "tab-matrix"


async def test_e_exports_the_sample_and_a_screenshot(tmp_path):
    service = FakeService()
    app = AltiApp(service, export_dir=tmp_path / "out")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        await pilot.press("e")
        await wait_for(pilot, lambda: any(n.title == "Exported" for n in app._notifications), "export")
        written = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert written == ["sample-0001-screen.svg", "sample-0001.json"]
        assert (tmp_path / "out" / "sample-0001-screen.svg").read_text().startswith("<svg")
        message = next(n.message for n in app._notifications if n.title == "Exported")
        assert str((tmp_path / "out").resolve()) in message and "sample-0001.json" in message


async def test_help_lists_keys_and_q_quits(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        assert not app.is_running


async def test_help_is_made_of_the_active_bindings(tmp_path):
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        bound = {app.get_key_display(active.binding) for active in app.explorer.active_bindings.values()}
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = dict(app.screen.rows)
        answer_keys = {"g", ",", "."}
        for binding in type(app.explorer).BINDINGS:  # every key of the screen, shown in the footer or not
            if app.get_key_display(binding) not in answer_keys:
                assert rows[app.get_key_display(binding)] == binding.tooltip, binding.key
        assert set(rows) <= bound  # and no key that does nothing
        assert not {"s", "w", "o"} & set(rows)  # a run file's keys
        assert not answer_keys & set(rows)  # a causal LM's answers: this model is a classifier
        console = Console(width=200, record=True, color_system=None)
        console.print(app.screen.query_one(Static).content)
        drawn = console.export_text()
        assert all(key in drawn and what in drawn for key, what in app.screen.rows)


async def test_load_failure_is_shown_in_the_app(tmp_path):
    app = AltiApp(FakeService(fail_load="no such model"), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app._notifications, "error notified")
        assert "no such model" in next(iter(app._notifications)).message
        assert "model not loaded" in str(app.query_one("#status").render())
        await pilot.press("n", "m", "slash")
        assert app.is_running


async def test_keys_answered_and_stale_results_dropped_while_slow_methods_compute(tmp_path):
    service = FakeService()
    service.gate = threading.Event()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.session.explanation is not None, "ALTI family first")
        assert set(app.session.explanation.scores) == {"alti", "rollout"}
        assert app.session.pending == ["ig_dot"]
        await pilot.press("right_square_bracket", "t", "t", "right")
        assert app.explorer.matrix.layer_index == 1 and app.explorer.attributions.cursor == 1
        await pilot.press("n")
        await wait_for(
            pilot,
            lambda: app.session.explanation is not None and app.session.sample_index == 1,
            "next sample fast rows",
        )
        assert app.session.explanation.text == SAMPLES[1].text
        # the first sample's slow method stops at its next step instead of running to its end
        await wait_for(pilot, lambda: service.stopped == [SAMPLES[0].text], "stale slow method stopped")
        service.gate.set()
        await wait_for(pilot, lambda: ready(app), "slow method and curves of the new sample")
        assert app.session.explanation.text == SAMPLES[1].text
        assert set(app.session.explanation.scores) == {"alti", "rollout", "ig_dot"}
        assert app.explorer.curves.point_count() == 30


async def test_sample_change_cancels_running_curves(tmp_path):
    service = FakeService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample")
        service.gate = threading.Event()
        await pilot.press("n")
        await wait_for(
            pilot, lambda: app.session.explanation is not None and app.session.sample_index == 1, "fast rows"
        )
        service.gate.set()
        await wait_for(pilot, lambda: app.explorer.curves.point_count() > 0, "curves started")
        service.gate.clear()
        await pilot.press("n")
        assert app.explorer.curves.point_count() == 0
        curves_workers = [w for w in app.workers if w.group == "curves"]
        service.gate.set()
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 2, "third sample")
        assert app.explorer.curves.point_count() == 30
        assert all(w.is_cancelled or w.is_finished for w in curves_workers)


async def test_small_terminal_rows_follow_the_cursor_and_z_zooms_the_focused_panel(tmp_path):
    long_text = " ".join(f"word{i}" for i in range(40))
    app = AltiApp(FakeService(samples=[ListedSample(long_text, "positive")]), export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: ready(app), "long sample")
        panel = app.explorer.attributions
        assert panel.max_scroll_y > 0 and panel.scroll_y == 0
        await pilot.press(*["right"] * 30)
        await wait_for(pilot, lambda: panel.scroll_y > 0, "rows scrolled to the cursor")
        assert panel.cursor == 30
        await pilot.press("z")
        assert app.screen.maximized is app.explorer.browser
        await pilot.press("z")
        assert app.screen.maximized is None
        panel.focus()
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is panel
        assert panel.size.height > 20
        await pilot.press("escape")
        assert app.screen.maximized is None


async def test_slow_work_is_held_from_a_switch_until_the_new_rows_are_painted(tmp_path):
    service = FakeService()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app) and service.holds[-1:] == [False], "first sample")
        service.holds.clear()
        await pilot.press("n")
        await wait_for(pilot, lambda: ready(app) and app.session.sample_index == 1, "second sample")
        assert service.holds == [True, False]


async def test_heap_frozen_at_load_and_given_back_on_exit(tmp_path):
    import gc

    gc.unfreeze()
    app = AltiApp(FakeService(), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: ready(app), "first sample explained")
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
