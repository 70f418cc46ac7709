"""The attribution panel: prediction, one coloured row of tokens per method, legend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from alti.colors import normalize
from alti.export import display_token

from alti_tui.widgets.palette import score_style

if TYPE_CHECKING:
    from alti.methods.base import MethodInfo
    from alti.results import Explanation

NAME_WIDTH = 14
LEGEND_STEPS = 10


class AttributionPanel(Widget, can_focus=True):
    """Shows the explanation's scores; ``cursor`` is the token whose values are listed."""

    DEFAULT_CSS = """
    AttributionPanel {
        height: auto;
        max-height: 60%;
        overflow-y: auto;
        padding: 0 1;
        border: round $primary-darken-2;
        border-title-color: $text;
    }
    AttributionPanel:focus { border: round $accent; }
    """

    BINDINGS = [
        ("left", "move(-1)", "token ←"),
        ("right", "move(1)", "token →"),
        ("home", "jump(0)", "first token"),
        ("end", "jump(-1)", "last token"),
    ]

    explanation: reactive[Explanation | None] = reactive(None, layout=True)
    methods: reactive[list[str]] = reactive(list, layout=True)
    pending: reactive[list[str]] = reactive(list, layout=True)
    cursor: reactive[int] = reactive(0, layout=True)
    message: reactive[str] = reactive("", layout=True)

    class CursorMoved(Message):
        def __init__(self, cursor: int) -> None:
            super().__init__()
            self.cursor = cursor

    def __init__(self, infos: dict[str, MethodInfo] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.infos: dict[str, MethodInfo] = infos or {}
        self.border_title = "Attributions"

    def show(self, explanation: Explanation | None, methods: list[str], pending: list[str]) -> None:
        self.methods = list(methods)
        self.pending = list(pending)
        if explanation is not self.explanation:
            same_input = (
                explanation is not None
                and self.explanation is not None
                and explanation.input_ids == self.explanation.input_ids
            )
            if not same_input:
                self.cursor = 0
            self.explanation = explanation
        self.message = ""

    def watch_cursor(self, cursor: int) -> None:
        self.post_message(self.CursorMoved(cursor))

    def action_move(self, step: int) -> None:
        if self.explanation is not None:
            self.cursor = max(0, min(len(self.explanation.tokens) - 1, self.cursor + step))

    def action_jump(self, where: int) -> None:
        if self.explanation is not None:
            self.cursor = where % len(self.explanation.tokens)

    def render(self) -> Group | Text:
        if self.message:
            return Text(self.message, style="italic")
        explanation = self.explanation
        if explanation is None:
            return Text("No sample explained yet.", style="dim")
        width = max(20, self.content_size.width or 80)
        parts: list[Text] = [self._prediction_line(explanation)]
        if explanation.truncated:
            parts.append(Text("input truncated to the model's maximum length", style="yellow"))
        for method in self.methods:
            parts.extend(self._method_rows(explanation, method, width))
        parts.append(self._cursor_line(explanation))
        parts.append(self._legend())
        return Group(*parts)

    def _prediction_line(self, explanation: Explanation) -> Text:
        prediction = explanation.prediction
        line = Text("Prediction ", style="bold")
        line.append(prediction.label, style="bold reverse")
        line.append("   ")
        for index, (label, p) in enumerate(zip(prediction.labels, prediction.probabilities)):
            bar = "█" * int(round(float(p) * 10))
            style = "bold" if index == prediction.index else "dim"
            line.append(f"{label} {float(p):.3f} ", style=style)
            line.append(f"{bar:<10}", style="green" if index == prediction.index else "grey50")
            line.append("  ")
        return line

    def _method_rows(self, explanation: Explanation, method: str, width: int) -> list[Text]:
        info = self.infos.get(method)
        signed = bool(info and info.signed)
        name = Text(f"{method[: NAME_WIDTH - 2]:<{NAME_WIDTH - 2}}{'±' if signed else ' '} ", style="bold")
        if method not in explanation.scores:
            state = "computing…" if method in self.pending else "not computed"
            return [name + Text(state, style="dim italic")]
        values = normalize(explanation.scores[method], signed, explanation.special)
        rows: list[Text] = []
        line = name.copy()
        used = NAME_WIDTH
        for index, token in enumerate(explanation.tokens):
            word = display_token(token)
            if used + len(word) + 1 > width and used > NAME_WIDTH:
                rows.append(line)
                line, used = Text(" " * NAME_WIDTH), NAME_WIDTH
            style = score_style(float(values[index]), signed)
            if index == self.cursor:
                style = style + Style(underline=True, bold=True)
            line.append(word, style=style)
            line.append(" ")
            used += len(word) + 1
        rows.append(line)
        return rows

    def _cursor_line(self, explanation: Explanation) -> Text:
        index = min(self.cursor, len(explanation.tokens) - 1)
        line = Text(f"◆ {display_token(explanation.tokens[index])!r} #{index}: ", style="bold")
        for method in self.methods:
            if method in explanation.scores:
                line.append(f"{method} ", style="dim")
                line.append(f"{float(explanation.scores[method][index]):+.3f}  ")
        return line

    def _legend(self) -> Text:
        legend = Text("legend  unsigned 0 ", style="dim")
        for step in range(LEGEND_STEPS + 1):
            legend.append("  ", style=score_style(step / LEGEND_STEPS, False))
        legend.append(" max    signed (±) − ", style="dim")
        for step in range(-LEGEND_STEPS // 2, LEGEND_STEPS // 2 + 1):
            legend.append("  ", style=score_style(step / (LEGEND_STEPS // 2), True))
        legend.append(" +", style="dim")
        return legend
