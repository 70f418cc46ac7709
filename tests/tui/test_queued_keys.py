"""Keys typed while the model (or a run file) loads are kept: the request waits and is carried
out once what it needs is ready, saying so meanwhile."""

from __future__ import annotations

import threading

import pytest
from run_records import records, write_run
from tui_fakes import FakeService, wait_for

from alti_tui.app import AltiApp
from alti_tui.run_service import RunService
from alti_tui.screens.sort import SortScreen

pytestmark = pytest.mark.anyio


class SlowLoad(FakeService):
    """A model that loads only once the test says so."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.loaded = threading.Event()

    def load(self, progress):
        progress("loading the fake model…")
        self.loaded.wait(10)
        return super().load(progress)


def status(app) -> str:
    return str(app.explorer.query_one("#status").render())


async def test_a_sentence_typed_while_the_model_loads_is_explained_once_it_is_ready(tmp_path):
    service = SlowLoad()
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("slash", *"so very good", "enter")
        await wait_for(pilot, lambda: app.explorer.queued_text == "so very good", "the sentence kept")
        assert "loading the model" in status(app) and app.session.explanation is None
        service.loaded.set()
        await wait_for(pilot, lambda: app.session.explanation is not None, "an explanation")
        assert app.session.text == "so very good" and app.session.sample_index is None
        assert app.session.explanation.text == "so very good"
        assert app.explorer.queued_text is None
        await pilot.press("n")  # the list works as before afterwards
        await wait_for(pilot, lambda: app.session.sample_index == 1, "the next sample")


async def test_a_sample_chosen_before_the_model_is_ready_replaces_the_typed_sentence(tmp_path):
    path = write_run(tmp_path / "run.jsonl", records(5))
    service = RunService(str(path))
    held = threading.Event()
    load = service.engine.load

    def slow_load(progress):
        held.wait(10)
        raise RuntimeError("no model in this test")

    service.engine.load = slow_load
    app = AltiApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.session.explanation is not None, "the file's first rows")
        await pilot.press("slash", *"typed meanwhile", "enter")
        await wait_for(pilot, lambda: app.explorer.queued_text == "typed meanwhile", "the sentence kept")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.session.sample_index == 1, "the next sample from the file")
        assert app.explorer.queued_text is None
        held.set()
    assert load is not None


async def test_sort_pressed_before_the_run_is_read_opens_once_it_is(tmp_path):
    path = write_run(tmp_path / "run.jsonl", records(5))

    class SlowRun(RunService):
        def __init__(self, path) -> None:
            super().__init__(path)
            self.read = threading.Event()

        def open_run(self):
            self.read.wait(10)
            return super().open_run()

        def load(self, progress):
            raise RuntimeError("no model in this test")

    service = SlowRun(str(path))
    app = AltiApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("s")
        assert app.explorer.sort_asked and not isinstance(app.screen, SortScreen)
        service.read.set()
        await wait_for(pilot, lambda: isinstance(app.screen, SortScreen), "the sort picker")


async def test_a_long_explanation_shows_the_layers_done(tmp_path):
    service = FakeService()
    service.layer_seconds = 0.6  # three layers: the explanation runs past the second it stays quiet for
    seen = []
    app = AltiApp(service, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(300):
            seen.append(status(app))
            if app.session.explanation is not None:
                break
            await pilot.pause(0.01)
    assert any(line.startswith("explaining… layer 2 of 3") for line in seen), seen[-5:]
