"""``m``: choose the methods shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList

if TYPE_CHECKING:
    from alti.catalog import MethodInfo


class MethodScreen(ModalScreen[list[str] | None]):
    """Space toggles, Enter applies, Escape cancels."""

    DEFAULT_CSS = """
    MethodScreen { align: center middle; }
    MethodScreen > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    MethodScreen SelectionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("enter", "apply", "apply", priority=True)]

    def __init__(self, infos: dict[str, MethodInfo], chosen: list[str]) -> None:
        super().__init__()
        self.infos = infos
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Methods (Space toggles, Enter applies, Esc cancels)")
            yield SelectionList[str](
                *[
                    (Text(f"{name:<14} {info.family:<12} {info.description}"), name, name in self.chosen)
                    for name, info in self.infos.items()
                ]
            )

    def action_apply(self) -> None:
        selected = set(self.query_one(SelectionList).selected)
        self.dismiss([name for name in self.infos if name in selected])

    def action_cancel(self) -> None:
        self.dismiss(None)
