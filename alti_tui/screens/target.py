"""``c``: choose what is explained, a target and (optionally) a foil.

The list holds the model's likeliest next tokens (or its classes) with their
probabilities; ``t`` and ``f`` copy the highlighted one into the target or foil
field, and either field takes any token typed (``' Paris'`` in quotes keeps its
leading space, ``id:1234`` names a vocabulary id).  An empty target is the
prediction, an empty foil none.  Enter explains with the two fields.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from alti_tui.models import TargetAndFoil


@dataclass(frozen=True)
class Choice:
    """One entry of the list: as shown, as the engine takes it, its probability."""

    shown: str
    spec: str
    probability: float


def shown_token(token: str) -> str:
    """A token as the fields show it: quoted, so a leading space is seen."""
    return repr(token)


class TargetScreen(ModalScreen[TargetAndFoil | None]):
    """Dismisses with ``(target, foil)``, or ``None`` on Escape.

    A request that ``check`` refuses is not dismissed: the reason is notified and
    the screen stays, so the typed token can be corrected.
    """

    DEFAULT_CSS = """
    TargetScreen { align: center middle; }
    TargetScreen > Vertical {
        width: 72; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    TargetScreen OptionList, TargetScreen OptionList:focus {
        height: auto; max-height: 12; border: none; padding: 0; background: $surface;
    }
    TargetScreen .field { height: 1; }
    TargetScreen #target-field { margin-top: 1; }
    TargetScreen .field Label { width: 8; }
    TargetScreen .field Input, TargetScreen .field Input:focus { height: 1; border: none; padding: 0 1; width: 1fr; }
    TargetScreen #target-help { width: 100%; margin-top: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("enter", "apply", "explain", show=False),
        Binding("t", "pick('target')", "target"),
        Binding("f", "pick('foil')", "foil"),
        Binding("c", "clear('foil')", "clear foil"),
        Binding("d", "clear('target')", "predicted target"),
    ]

    def __init__(
        self,
        choices: list[Choice],
        target: str | None,
        foil: str | None,
        tokens: bool,
        heading: str,
        predicted: str | None = None,
        known: dict[str, str] | None = None,
        check: Callable[[TargetAndFoil], str | None] | None = None,
    ) -> None:
        super().__init__()
        #: Says what is wrong with a request (``None`` when it can be explained).
        self.check = check
        self.choices = choices
        #: Other targets the fields may show by name (the current ones outside the list).
        self.known = {spec: shown for spec, shown in (known or {}).items()}
        self.tokens = tokens
        self.heading = heading
        self.predicted = predicted
        self.initial = (self.shown(target), self.shown(foil))

    # ------------------------------------------------------------ text <-> spec
    def shown(self, spec: str | None) -> str:
        """A target or foil as its field shows it."""
        if spec is None:
            return ""
        for choice in self.choices:
            if choice.spec == spec:
                return choice.shown
        if spec in self.known:
            return self.known[spec]
        if self.tokens and not spec.startswith("id:"):
            return shown_token(spec)
        return spec

    def spec(self, text: str) -> str | None:
        """What a field holds, as the engine takes it (``None`` when empty)."""
        if not text.strip():
            return None
        stripped = text.strip()
        for choice in self.choices:
            if choice.shown == stripped:
                return choice.spec
        for spec, shown in self.known.items():
            if shown == stripped:
                return spec
        if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
            try:
                value = ast.literal_eval(stripped)
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, str):
                return value
        return text if self.tokens else stripped

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "What to explain"
            yield Label(self.heading, id="target-heading")
            yield OptionList(*[Option(self._prompt(c), id=str(i)) for i, c in enumerate(self.choices)])
            with Horizontal(classes="field", id="target-field"):
                yield Label("target")
                shown = f", {self.shown(self.predicted)}" if self.predicted is not None else ""
                yield Input(self.initial[0], placeholder=f"the prediction{shown}", id="target")
            with Horizontal(classes="field"):
                yield Label("foil")
                yield Input(self.initial[1], placeholder="none (logit difference with a foil)", id="foil")
            yield Label(
                "t / f: the highlighted entry becomes the target / foil · c clears the foil · "
                "d: the prediction is the target\nEnter explains, Esc cancels; Tab to the fields, "
                + (
                    "which take a token ('quoted' keeps its spaces) or id:1234"
                    if self.tokens
                    else "which take a class name or index"
                ),
                id="target-help",
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.choices:
            options.highlighted = 0
            options.focus()
        else:  # nothing explained yet (e.g. a masked LM waits for both): type them
            options.display = False
            self.query_one("#target", Input).focus()

    def _prompt(self, choice: Choice) -> Text:
        bar = "█" * int(round(choice.probability * 10))
        text = Text(f"{choice.shown[:22]:<23}", style="bold")
        text.append(f"{choice.probability:.3f} ", style="dim")
        text.append(f"{bar:<10}", style="green")
        if self.is_mounted:
            target = self.spec(self.query_one("#target", Input).value)
            foil = self.spec(self.query_one("#foil", Input).value)
        else:
            target, foil = self.spec(self.initial[0]), self.spec(self.initial[1])
        if (target if target is not None else self.predicted) == choice.spec:
            text.append("  ◀ target" if target is not None else "  ◀ target (the prediction)", style="bold green")
        if foil == choice.spec:
            text.append("  ◀ foil", style="bold red")
        return text

    def _mark(self) -> None:
        options = self.query_one(OptionList)
        for index, choice in enumerate(self.choices):
            options.replace_option_prompt_at_index(index, self._prompt(choice))

    # ----------------------------------------------------------------- actions
    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._mark()

    def action_pick(self, field: str) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is None or not self.choices:
            return
        self.query_one(f"#{field}", Input).value = self.choices[options.highlighted].shown

    def action_clear(self, field: str) -> None:
        self.query_one(f"#{field}", Input).value = ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._apply()

    def action_apply(self) -> None:
        self._apply()

    def _apply(self) -> None:
        request = (self.spec(self.query_one("#target", Input).value), self.spec(self.query_one("#foil", Input).value))
        problem = self.check(request) if self.check is not None else None
        if problem:
            self.notify(problem, title="Cannot explain that", severity="error", timeout=10, markup=False)
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)
