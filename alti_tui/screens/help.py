"""``?``: every key the explorer answers to."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("n / p", "next / previous sample"),
    ("↑ ↓", "move in the sample list"),
    ("f", "filter the samples by typing (Enter or Esc returns to the list)"),
    ("s", "run files: sort the samples (misclassified, least confident, disagreement, curves, length)"),
    ("w", "run files: list the misclassified samples only (w again: all)"),
    ("o", "run files: the run at a glance (faithfulness, agreement, distributions, top tokens)"),
    ("/", "explain a sentence you type"),
    ("← → Home End", "move the token cursor (values shown under the rows)"),
    ("m", "choose the methods shown"),
    ("c", "choose what is explained: the target and a foil"),
    ("x", "next matrix method in the contribution-matrix panel"),
    ("[ / ]", "previous / next layer (or click / scroll the slider)"),
    ("r", "per-layer matrix ↔ rolled out up to the layer"),
    ("t", "switch between the matrix and the deletion curves"),
    ("z", "zoom: the focused panel fills the screen (z or Esc again to return)"),
    ("↑ ↓ PgUp PgDn", "scroll the focused panel (attributions, matrix)"),
    ("e", "export HTML, SVG, LaTeX, JSON and a screenshot"),
    ("Tab", "move the focus between panels"),
    ("?", "this help"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys (Esc closes)"
            yield Static(table)

    def action_dismiss(self) -> None:
        self.dismiss(None)
