"""``?``: every key the explorer answers to now, read from its active bindings."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def help_rows(screen: Screen) -> list[tuple[str, str]]:
    """``(key, what it does)`` for each binding active on ``screen`` that has a tooltip (the
    line the help gives it): the screen's keys, then the focused widget's, then the app's."""
    app = screen.app
    described = [active for active in screen.active_bindings.values() if active.binding.tooltip]
    described.sort(key=lambda active: 0 if active.node is screen else 2 if active.node is app else 1)
    return [(app.get_key_display(active.binding), active.binding.tooltip) for active in described]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in self.rows:
            table.add_row(Text(key), Text(what))
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys (Esc closes)"
            yield Static(table)

    def action_dismiss(self) -> None:
        self.dismiss(None)
