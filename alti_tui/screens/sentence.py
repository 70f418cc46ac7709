"""``/``: type a sentence to explain."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class SentenceScreen(ModalScreen[str | None]):
    """Dismisses with the typed text (possibly empty), or ``None`` on Escape."""

    DEFAULT_CSS = """
    SentenceScreen { align: center middle; }
    SentenceScreen > Vertical {
        width: 80%; height: auto; border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sentence to explain (Enter explains, Esc cancels)")
            yield Input(id="sentence")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
