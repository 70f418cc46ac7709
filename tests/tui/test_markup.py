"""Every string from a user or a file reaches the screen as text, never as Rich/Textual markup:
brackets in model paths, labels, texts, tokens, method descriptions and errors neither crash
the explorer (a closing tag like ``[/good]`` raised MarkupError) nor vanish (``[exp-1]``
parsed as a style)."""

from __future__ import annotations

import json

import pytest
from run_records import records
from textual.widgets import Input
from tui_fakes import FakeService, screen_text, wait_for

from alti import runfile
from alti_tui.app import AltiApp
from alti_tui.models import ListedSample
from alti_tui.run_service import RunService
from alti_tui.screens.methods import MethodScreen
from alti_tui.screens.overview import OverviewScreen
from alti_tui.screens.target import TargetScreen

pytestmark = pytest.mark.anyio

MODEL = "runs/[exp-1]/ckpt [b]x[/b]"


@pytest.fixture
def marked_run(tmp_path):
    items = [json.loads(runfile.line(r)) for r in records(6, methods=("alti", "ig_dot"))]
    for record in items:
        record["model"] = MODEL
        record["tokens"][1] = "[/x]"
        record["text"] = "[/x] " + record["text"] + " [b]bold[/b]"
        record["label"] = "[/good]"
    path = tmp_path / "marked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    service = RunService(str(path))
    service.open_run()
    return service


async def test_a_run_file_full_of_markup_shows_it_as_text(marked_run):
    app = AltiApp(marked_run)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.session.explanation is not None, "the first sample's rows")
        await wait_for(pilot, lambda: app.explorer.load_error is not None, "the named model fails to load")
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert "[exp-1]/ckpt [b]x[/b]" in shown  # header, status and the load error
        assert "[/x]" in shown and "[/g→" in shown  # tokens, texts and the gold label (shortened)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, MethodScreen), "the methods dialog")
        assert "from [CLS] [MAS" in screen_text(app)  # ig_dot's description, shortened to the width
        await pilot.press("escape", "o")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "the overview")
        await wait_for(pilot, lambda: app.screen.overview is not None, "the overview's numbers")
        await pilot.pause(0.1)
        overview = screen_text(app)
        assert "[exp-1]" in overview and "[/x]" in overview and "marked.jsonl" in overview


async def test_typed_text_targets_and_labels_with_markup(tmp_path):
    samples = [ListedSample("[/x] a [b]gripping[/b] film", "[/good]"), ListedSample("plain text", "negative")]
    app = AltiApp(FakeService(samples), export_dir=tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.session.explanation is not None, "the first sample")
        assert "[b]gripping[/b]" in screen_text(app)
        await pilot.press("slash")
        await pilot.press(*"[/y] typed [i]text[/i]", "enter")
        await wait_for(pilot, lambda: app.session.text == "[/y] typed [i]text[/i]", "the typed sentence")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen), "the target dialog")
        app.screen.query_one("#target", Input).value = "[/z]"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "[/z]" in screen_text(app), "the refusal, naming what was typed")
