"""``s``: the order of a run file's sample list.

The first list picks what to sort by; sorts that need methods (the disagreement of two,
the curve scores of one, an answer run's drop@1 or support rank of one) then ask for them.  Enter picks, Escape goes back or cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, SelectionList
from textual.widgets.option_list import Option

from alti.runs import Order

if TYPE_CHECKING:
    from alti.catalog import MethodInfo

#: The first list: (option id, text); ``key:which`` says worst/best (curves, then a method) or the length's direction.
CHOICES = (
    ("dataset", "dataset order"),
    ("misclassified", "misclassified first"),
    ("confidence", "least confident first"),
    ("disagreement", "largest disagreement between two methods (lowest Spearman ρ)…"),
    ("comprehensiveness:worst", "worst comprehensiveness of a method…"),
    ("comprehensiveness:best", "best comprehensiveness of a method…"),
    ("sufficiency:worst", "worst sufficiency of a method…"),
    ("sufficiency:best", "best sufficiency of a method…"),
    ("length:longest", "longest first"),
    ("length:shortest", "shortest first"),
)
#: Sorts by an answer's context (answer runs only): (option id, text, the measure it needs).
CONTEXT_CHOICES = (
    ("drop:worst", "lowest drop@1 of a method (its top segment matters least)…", "drop@1"),
    ("drop:best", "highest drop@1 of a method…", "drop@1"),
    ("support:worst", "supporting segment ranked lowest by a method…", "support_mrr"),
)
#: The sorts that then ask for one method.
ONE_METHOD = ("comprehensiveness", "sufficiency", "drop", "support")


class SortScreen(ModalScreen[Order | None]):
    DEFAULT_CSS = """
    SortScreen { align: center middle; }
    SortScreen > Vertical {
        width: 72; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    SortScreen OptionList, SortScreen SelectionList { height: auto; max-height: 16; }
    """
    BINDINGS = [Binding("escape", "back", "back"), Binding("enter", "pick", "pick", priority=True)]

    def __init__(
        self, methods: dict[str, MethodInfo], current: Order, has_curves: bool, measures: Sequence[str] = ()
    ) -> None:
        """``measures``: an answer run's context measures, which its context sorts need."""
        super().__init__()
        self.methods = list(methods)
        self.current = current
        self.has_curves = has_curves
        self.choices = [*CHOICES, *((key, text) for key, text, needs in CONTEXT_CHOICES if needs in measures)]
        #: The sort whose methods are being chosen (None: the first list is shown).
        self.step: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sort the samples by (Enter picks, Esc cancels)", id="sort-title")
            yield self._first_list()

    def _first_list(self) -> OptionList:
        options = []
        for key, text in self.choices:
            needs_curves = key.split(":")[0] in ("comprehensiveness", "sufficiency")
            if needs_curves and not self.has_curves:
                text += "  (needs a run written with --curves)"
            options.append(Option(Text(text), id=key, disabled=needs_curves and not self.has_curves))
        first = OptionList(*options, id="sort-keys")
        first.highlighted = next(
            (i for i, (key, _) in enumerate(self.choices) if key.split(":")[0] == self.current.key), 0
        )
        return first

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        choice = event.option.id or "dataset"
        if self.step is not None:  # a method for a curve sort
            key, which = self.step.split(":")
            self.dismiss(Order(key, (choice,), best=which == "best"))
            return
        key, _, which = choice.partition(":")
        if key == "length":
            self.dismiss(Order("length", best=which == "shortest"))
        elif key in ONE_METHOD:
            self._ask_methods(choice, f"{which} {key} of (Enter picks, Esc back)")
        elif key == "disagreement":
            self._ask_methods(choice, "Two methods (Space marks, Enter sorts, Esc back)")
        else:
            self.dismiss(Order(key))

    def _ask_methods(self, step: str, title: str) -> None:
        self.step = step
        self.query_one("#sort-keys").remove()
        self.query_one("#sort-title", Label).update(title)
        box = self.query_one(Vertical)
        if step == "disagreement":
            chosen = self.current.methods if self.current.key == "disagreement" else tuple(self.methods[:2])
            widget = SelectionList[str](*[(Text(m), m, m in chosen) for m in self.methods], id="sort-methods")
            box.mount(widget, Label(self._marked_line(chosen), id="sort-marked"))
        else:
            widget = OptionList(*[Option(Text(m), id=m) for m in self.methods], id="sort-methods")
            box.mount(widget)
        widget.focus()

    def _marked_line(self, chosen) -> Text:
        """The marked methods in words (a mark's colour alone is easy to misread)."""
        marked = [m for m in self.methods if m in chosen]
        return Text(f"marked: {', '.join(marked) or 'none'} ({len(marked)} of 2)")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        for line in self.query("#sort-marked").results(Label):
            line.update(self._marked_line(event.selection_list.selected))

    def action_pick(self) -> None:
        """Enter: pick the highlighted entry, or sort by the two marked methods."""
        if self.step != "disagreement":
            self.query_one(OptionList).action_select()
            return
        chosen = [m for m in self.methods if m in self.query_one(SelectionList).selected]
        if len(chosen) != 2:
            self.notify(f"Mark exactly two methods (Space); {len(chosen)} marked.", severity="warning")
            return
        self.dismiss(Order("disagreement", tuple(chosen)))

    def action_back(self) -> None:
        if self.step is None:
            self.dismiss(None)
            return
        self.step = None
        self.query_one("#sort-methods").remove()
        for line in self.query("#sort-marked"):
            line.remove()
        self.query_one("#sort-title", Label).update("Sort the samples by (Enter picks, Esc cancels)")
        first = self._first_list()
        self.query_one(Vertical).mount(first)
        first.focus()
