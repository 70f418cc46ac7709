"""Pilot tests of ``alti-tui --attributions``: a run file's rows before any model, sorting,
filtering, the overview, damaged files, and the model's matrices once it loads."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from rich.console import Console
from run_records import records, write_run
from tui_fakes import FakeService, wait_for

from alti import runs as R
from alti.targets import NextTokenTarget
from alti_tui.app import AltiApp
from alti_tui.cli import main
from alti_tui.run_service import RunService
from alti_tui.screens.help import HelpScreen
from alti_tui.screens.overview import OverviewScreen, render
from alti_tui.screens.run import RunScreen
from alti_tui.screens.sort import SortScreen

pytestmark = pytest.mark.anyio


class HeldRunService(RunService):
    """A run whose model never finishes loading while the test runs."""

    def __init__(self, path) -> None:
        super().__init__(str(path))
        self.release = threading.Event()
        self.loads = 0

    def load(self, progress):
        self.loads += 1
        progress("loading the model…")
        self.release.wait(20)
        raise RuntimeError("no model in this test")


@pytest.fixture
def held(tmp_path):
    service = HeldRunService(write_run(tmp_path / "run.jsonl", records(30)))
    service.open_run()
    yield service
    service.release.set()


@contextlib.asynccontextmanager
async def running(app: AltiApp, held, size=(120, 40)):
    """``app.run_test`` for a held run: the held load ends (failing) before the app closes, which
    would otherwise wait for it."""
    async with app.run_test(size=size) as pilot:
        try:
            yield pilot
        finally:
            held.release.set()


def head_text(app: AltiApp) -> str:
    _, head, rows, _, _ = app.explorer.attributions._built()
    return "\n".join(strip.text for strip in head + rows)


async def opened(pilot, app) -> None:
    await wait_for(
        pilot, lambda: app.session.explanation is not None and app.explorer.browser.shown, "the first sample's rows"
    )


async def test_first_rows_come_from_the_file_without_a_model(held):
    app = AltiApp(held)
    async with running(app, held) as pilot:
        await opened(pilot, app)
        first = held.run.records[0]
        assert held.engine.explainer is None and not app.explorer.model_ready
        assert app.session.explanation.tokens == first["tokens"]
        for method, values in first["scores"].items():
            assert np.allclose(app.session.explanation.scores[method], values)
        text = head_text(app)
        assert all(method in text for method in first["scores"]) and first["tokens"][1] in text
        assert app.explorer.browser.predicted == [r["prediction"]["label"] for r in held.run.records]
        wrong = int(np.nansum(held.run.misclassified))
        assert app.explorer.browser.border_title == f"Samples 30 · ✗ {wrong}"
        assert "need the model" in str(app.explorer.matrix.query_one("#matrix-title").render())
        # the curves are the file's, drawn at once
        assert app.explorer.curves.status == "done" and app.explorer.curves.point_count() == 3 * 2 * 6
        assert app.explorer.curves.scores[("alti", "comp")] == pytest.approx(
            first["faithfulness"]["methods"]["alti"]["comprehensiveness"]["score"]
        )
        await wait_for(pilot, lambda: held.loads == 1, "the model loading behind the rows")
        assert "loading" in str(app.query_one("#status").render())
        # typed text needs the model: a message, nothing explained
        await pilot.press("slash")
        await pilot.press(*"great film", "enter")
        await pilot.pause(0.1)
        assert app.session.text == first["text"]


async def test_the_run_keys_are_the_run_screens(held, tmp_path):
    app = AltiApp(held)
    async with app.run_test(size=(120, 40)) as pilot:
        await opened(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = dict(app.screen.rows)
        assert rows["s"].startswith("sort the samples") and rows["w"].startswith("list the misclassified")
        assert rows["o"].startswith("the run at a glance")
        held.release.set()  # the model's load ends (failing), so the app closes at once
    explore = AltiApp(FakeService(), export_dir=tmp_path)
    async with explore.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: explore.session.explanation is not None, "a dataset's first sample")
        await pilot.press("s", "o")
        assert explore.screen is explore.explorer and not isinstance(explore.explorer, RunScreen)


SORT_KEYS = {
    # presses after "s": the order it must give
    ("down", "enter"): R.Order("misclassified"),
    ("down", "down", "enter"): R.Order("confidence"),
    ("down", "down", "down", "enter", "enter"): R.Order("disagreement", ("alti", "rollout")),
    ("down", "down", "down", "enter", "space", "down", "down", "space", "enter"): R.Order(
        "disagreement", ("rollout", "ig_dot")
    ),
    ("down",) * 4 + ("enter", "down", "enter"): R.Order("comprehensiveness", ("rollout",)),
    ("down",) * 5 + ("enter", "enter"): R.Order("comprehensiveness", ("alti",), best=True),
    ("down",) * 6 + ("enter", "down", "down", "enter"): R.Order("sufficiency", ("ig_dot",)),
    ("down",) * 7 + ("enter", "enter"): R.Order("sufficiency", ("alti",), best=True),
    ("down",) * 8 + ("enter",): R.Order("length"),
    ("down",) * 9 + ("enter",): R.Order("length", best=True),
}


@pytest.mark.slow
async def test_each_sort_key_orders_the_list_as_computed_from_the_file(held):
    app = AltiApp(held)
    async with running(app, held) as pilot:
        await opened(pilot, app)
        for keys, expected in SORT_KEYS.items():
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SortScreen), "the sort screen")
            await pilot.press("home", *keys)
            await wait_for(pilot, lambda: not isinstance(app.screen, SortScreen), "the sort applied")
            assert app.explorer.order == expected
            assert app.explorer.browser.shown == R.order(held.run, expected), expected.describe()
            assert expected.describe() in app.explorer.browser.border_subtitle


async def test_the_order_survives_moving_through_samples_and_filters_keep_it(held):
    app = AltiApp(held)
    async with running(app, held) as pilot:
        await opened(pilot, app)
        await pilot.press("s", "down", "down", "enter")
        order = R.order(held.run, R.Order("confidence"))
        await wait_for(pilot, lambda: app.explorer.browser.shown == order, "sorted by confidence")
        app.explorer.browser.option_list.highlighted = 0
        for step in range(1, 4):
            await pilot.press("n")
            await wait_for(
                pilot, lambda wanted=order[step]: app.session.sample_index == wanted, f"sample {order[step]}"
            )
            assert app.session.explanation.text == held.run.records[order[step]]["text"]
        await pilot.press("p")
        await wait_for(pilot, lambda: app.session.sample_index == order[2], "back one")
        await pilot.press("w")
        wrong = [i for i in order if held.run.misclassified[i] == 1.0]
        assert app.explorer.browser.shown == wrong and "✗ only" in app.explorer.browser.border_subtitle
        await pilot.press("f", *"film", "enter")
        await pilot.pause(0.05)
        assert app.explorer.browser.shown == [i for i in wrong if "film" in held.run.records[i]["text"]]
        await pilot.press("w")
        assert app.explorer.browser.shown == [i for i in order if "film" in held.run.records[i]["text"]]


async def test_curve_sorts_are_refused_without_curves(tmp_path):
    service = HeldRunService(write_run(tmp_path / "plain.jsonl", records(6, curves=False)))
    service.open_run()
    app = AltiApp(service)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await opened(pilot, app)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SortScreen), "the sort screen")
            keys = app.screen.query_one("#sort-keys")
            disabled = [o.id for o in keys.options if o.disabled]
            assert disabled == [
                "comprehensiveness:worst",
                "comprehensiveness:best",
                "sufficiency:worst",
                "sufficiency:best",
            ]
            await pilot.press("escape")
            assert app.explorer.curves.status.startswith("the deletion curves need the model")
    finally:
        service.release.set()


async def test_overview_numbers_are_the_runs(held):
    app = AltiApp(held)
    async with running(app, held, size=(160, 48)) as pilot:
        await opened(pilot, app)
        await pilot.press("o")
        await wait_for(
            pilot, lambda: isinstance(app.screen, OverviewScreen) and app.screen.overview is not None, "the overview"
        )
        overview = app.screen.overview
        assert overview.samples == 30
        assert overview.table == R.faithfulness_table(held.run)
        expected = R.agreement(held.run)
        for a in expected:
            assert overview.agreement[a] == pytest.approx(expected[a], nan_ok=True)
        assert overview.top_tokens["alti"] == R.top_tokens(held.run, "alti")
        assert [title for title, _, _ in overview.histograms][:2] == ["comp. alti", "suff. alti"]
        assert sum(overview.histograms[0][1]) == 30
        console = Console(width=160, record=True, color_system=None)
        console.print(render(overview))
        shown = console.export_text()
        assert "Faithfulness" in shown and "Method agreement" in shown
        best_comp = max(row["comprehensiveness"] for row in overview.table.values())
        assert f"{best_comp:.3f}" in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, OverviewScreen)


async def test_a_damaged_file_shows_its_valid_records_and_says_what_was_wrong(tmp_path):
    items = records(5)
    path = write_run(tmp_path / "damaged.jsonl", items[:3], tail="not json\n" + '{"id": "9", "text"')
    service = HeldRunService(path)
    service.open_run()
    app = AltiApp(service)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await opened(pilot, app)
            assert app.explorer.browser.shown == [0, 1, 2]
            messages = [n.message for n in app._notifications]
            assert any("line 4 not an 'alti attribute' record" in m for m in messages)
            assert any("cut short" in m for m in messages)
    finally:
        service.release.set()


def test_a_file_with_no_record_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("id,text\n1,hello\n")
    assert main(["--attributions", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no 'alti attribute' record" in err


async def test_the_recorded_model_loads_behind_the_rows_and_fills_the_heatmap(tmp_path):
    from alti.cli import main as alti

    path = tmp_path / "demo.jsonl"
    assert alti(["attribute", "--limit", "3", "--methods", "alti,rollout,grad_l2", "--output", str(path)]) == 0
    service = RunService(str(path))
    service.open_run()
    app = AltiApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await opened(pilot, app)
        stored = app.session.explanation
        assert stored.layers == {}
        await wait_for(pilot, lambda: app.explorer.model_ready, "the demo model", polls=1500)
        assert service.engine.model == "demo"
        await wait_for(pilot, lambda: "alti" in app.session.explanation.layers, "ALTI's matrices", polls=1500)
        record = service.run.records[0]
        assert np.allclose(app.session.explanation.scores["alti"], record["scores"]["alti"])
        assert app.session.explanation.layers["alti"].shape[1:] == (len(record["tokens"]),) * 2
        rolled = app.session.explanation.rolled_out("alti")[record["target_position"]]
        assert np.allclose(rolled, record["scores"]["alti"], atol=1e-5)
        await wait_for(pilot, lambda: app.explorer.curves.status == "done", "the curves the file lacks", polls=1500)
        assert app.explorer.curves.point_count() == 3 * 2 * 6


async def test_a_language_model_run_opens_and_its_model_fills_the_causal_heatmap(tmp_path):
    import json

    from alti.cli import main as alti
    from tests.conftest import tiny_pre_ln

    model_dir = tmp_path / "tiny-llama"
    model, tokenizer = tiny_pre_ln("llama")
    model.float().config.architectures = ["LlamaForCausalLM"]
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"text": "a warm , funny and beautifully acted", "target": "film", "foil": "plot"},
        {"text": "the plot is thin but the acting is"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "lm.jsonl"
    argv = [
        "attribute",
        "--model",
        str(model_dir),
        "--dataset",
        str(prompts),
        "--methods",
        "alti,alti_logit,logit",
        "--output",
        str(path),
    ]
    assert alti(argv) == 0
    service = RunService(str(path))
    run = service.open_run()
    assert run.info.target is NextTokenTarget and run.samples[0].target == "film"
    app = AltiApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await opened(pilot, app)
        assert app.session.explanation.target.foil_label == "plot"
        assert "against" in head_text(app)
        record = service.run.records[0]
        predicted_film = record["prediction"]["index"] == record["target"]["id"]
        assert app.explorer.browser.border_title.endswith(f"✗ {0 if predicted_film else 1}")
        await wait_for(pilot, lambda: "alti" in app.session.explanation.layers, "ALTI's matrices", polls=1500)
        layers = app.session.explanation.layers["alti"]
        assert np.triu(layers, 1).max() == 0  # causal: nothing above the diagonal
        assert np.allclose(app.session.explanation.scores["alti_logit"], record["scores"]["alti_logit"])
