"""Snapshots of the explorer's screens, against the deterministic fake service."""

from __future__ import annotations

import pytest
from tui_fakes import FakeService

from alti_tui.app import AltiApp


async def settle(pilot) -> None:
    """Wait until the first sample, its curves and every prediction are on screen."""
    app = pilot.app
    for _ in range(500):
        if (
            app.session.explanation is not None
            and not app.session.pending
            and app.explorer.curves.status == "done"
            and None not in app.explorer.browser.predicted
        ):
            break
        await pilot.pause(0.02)
    await pilot.pause()


def explorer() -> AltiApp:
    return AltiApp(FakeService(), export_dir="unused")


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_main_screen(snap_compare, size):
    assert snap_compare(explorer(), terminal_size=size, run_before=settle)


def test_curves_tab(snap_compare):
    async def curves(pilot):
        await settle(pilot)
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(explorer(), terminal_size=(160, 48), run_before=curves)


def test_rolled_out_last_layer_with_cursor(snap_compare):
    async def scrub(pilot):
        await settle(pilot)
        await pilot.press("right_square_bracket", "right_square_bracket", "r", "right", "right")
        await pilot.pause()

    assert snap_compare(explorer(), terminal_size=(160, 48), run_before=scrub)


def test_help_screen(snap_compare):
    async def help_(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(explorer(), terminal_size=(80, 24), run_before=help_)
