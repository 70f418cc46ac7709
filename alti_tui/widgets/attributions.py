"""The attribution panel: prediction, one coloured row of tokens per method, legend.

When the tokens need more than one line, the rows are interleaved: each line of
tokens is shown for every method in turn, so a token's scores sit one under the
other.  The prediction stays at the top and the cursor's values and the legend
at the bottom; the rows in between scroll (keys, wheel) and follow the cursor,
so the panel works in a short terminal too.  A method still computing shows the
tokens uncoloured with ``…`` after its name (``✗`` if it failed): the panel keeps
its height when the scores arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from alti.colors import normalize
from alti.export import display_token, logit_terms_line
from alti.targets import NextTokenTarget
from alti_tui.explained import explained, is_default
from alti_tui.widgets.palette import score_style

if TYPE_CHECKING:
    from alti.catalog import MethodInfo
    from alti.results import Explanation

NAME_WIDTH = 14
LEGEND_STEPS = 10


def chunks(words: list[str], width: int) -> list[range]:
    """Token index ranges that fit on one line of ``width`` cells (one space after each)."""
    out: list[range] = []
    start, used = 0, 0
    for index, word in enumerate(words):
        if used and used + len(word) + 1 > width:
            out.append(range(start, index))
            start, used = index, 0
        used += len(word) + 1
    out.append(range(start, len(words)))
    return out


class AttributionPanel(ScrollView, can_focus=True):
    """Shows the explanation's scores; ``cursor`` is the token whose values are listed."""

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    AttributionPanel {
        height: auto;
        max-height: 60%;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 0;
        scrollbar-gutter: stable;
        padding: 0 0 0 1;
        border: round $primary-darken-2;
        border-title-color: $text;
    }
    AttributionPanel:focus { border: round $accent; }
    AttributionPanel.-maximized { height: 1fr; max-height: 100%; }
    """

    BINDINGS = [
        Binding("left", "move(-1)", "token ←"),
        Binding("right", "move(1)", "token →"),
        Binding("home", "jump(0)", "first token"),
        Binding("end", "jump(-1)", "last token"),
    ]

    explanation: reactive[Explanation | None] = reactive(None, repaint=False)
    methods: reactive[list[str]] = reactive(list, repaint=False)
    pending: reactive[list[str]] = reactive(list, repaint=False)
    cursor: reactive[int] = reactive(0, repaint=False)
    message: reactive[str] = reactive("", repaint=False)
    answer: reactive[tuple[list[str], int | None] | None] = reactive(None, repaint=False)

    class CursorMoved(Message):
        def __init__(self, cursor: int) -> None:
            super().__init__()
            self.cursor = cursor

    def __init__(self, infos: dict[str, MethodInfo] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.infos: dict[str, MethodInfo] = infos or {}
        self.border_title = "Attributions"
        #: (width, head, body, foot, the cursor's body lines); ``None`` when stale.
        self._lines: tuple[int, list[Strip], list[Strip], list[Strip], range] | None = None
        self._update_queued = False
        #: Lines of the last explanation shown: a message ("explaining…") keeps that
        #: height, so a sample switch does not relayout the screen twice.
        self._shown_lines = 1

    def show(
        self,
        explanation: Explanation | None,
        methods: list[str],
        pending: list[str],
        answer: tuple[list[str], int | None] | None = None,
    ) -> None:
        """``answer``: a whole answer's tokens and the step shown (``None``: the whole answer),
        when ``explanation`` is an answer or one of its steps."""
        self.methods = list(methods)
        self.pending = list(pending)
        self.answer = answer
        if explanation is not self.explanation:
            same_input = (
                explanation is not None
                and self.explanation is not None
                and explanation.input_ids == self.explanation.input_ids
            )
            if not same_input:
                self.cursor = 0
                self.scroll_to(y=0, animate=False)
            self.explanation = explanation
        self.message = ""

    # ------------------------------------------------------------ state -> lines
    def _changed(self) -> None:
        """Rebuild the lines once for a batch of changes (``show`` sets several)."""
        self._lines = None
        if not self._update_queued:
            self._update_queued = True
            self.call_next(self._update)

    watch_explanation = watch_methods = watch_pending = watch_message = watch_answer = _changed

    def watch_cursor(self, cursor: int) -> None:
        self._changed()
        self.post_message(self.CursorMoved(cursor))

    def on_resize(self) -> None:
        self._changed()

    def _update(self) -> None:
        self._update_queued = False
        width, head, body, foot, _ = self._built()
        lines = len(head) + len(body) + len(foot)
        if self.message:
            lines = max(lines, self._shown_lines)
        else:
            self._shown_lines = lines
        self.virtual_size = Size(width, lines)
        self.refresh()
        self.call_after_refresh(self._follow_cursor)

    def _follow_cursor(self) -> None:
        """Scroll the rows so the cursor's line of tokens is in view."""
        _, head, body, foot, lines = self._built()
        window = self.scrollable_content_region.height - len(head) - len(foot)
        if not lines or window <= 0 or len(head) + len(body) + len(foot) <= self.scrollable_content_region.height:
            return
        top = int(self.scroll_y)
        if lines.start < top or lines.stop > top + window:
            self.scroll_to(y=lines.start, animate=False)

    def _built(self) -> tuple[int, list[Strip], list[Strip], list[Strip], range]:
        width = max(20, self.scrollable_content_region.width or 80)
        if self._lines is None or self._lines[0] != width:
            head, body, foot, lines = self._texts(width)
            console = self.app.console
            self._lines = (
                width,
                self._strips(head, width, console),
                self._strips(body, width, console),
                self._strips(foot, width, console),
                lines,
            )
        return self._lines

    @staticmethod
    def _strips(texts: list[Text], width: int, console: Console) -> list[Strip]:
        options = console.options.update_width(width)
        strips = []
        for text in texts:
            for line in console.render_lines(text, options, pad=False):
                strips.append(Strip(line))
        return strips

    def _texts(self, width: int) -> tuple[list[Text], list[Text], list[Text], range]:
        """Head (prediction), body (method rows), foot (cursor values, legend), cursor's body lines."""
        if self.message:
            return [Text(self.message, style="italic")], [], [], range(0)
        explanation = self.explanation
        if explanation is None:
            return [Text("No sample explained yet.", style="dim")], [], [], range(0)
        if self.answer is None:
            head = [self._prediction_line(explanation, width)]
        else:  # a step also shows the model's likeliest tokens at its row
            head = [self._answer_line(*self.answer)]
            if self.answer[1] is not None and explanation.prediction.ids is not None:
                head.append(self._tokens_line(explanation))
        head.extend(self._explained_lines(explanation, width))
        if explanation.truncated:
            kept = "its end" if explanation.target is not None and explanation.target.keeps_end else "its start"
            head.append(Text(f"input truncated to the model's maximum length ({kept} kept)", style="yellow"))
        body, lines = self._rows(explanation, width)
        return head, body, [self._cursor_line(explanation), self._legend(width)], lines

    # ------------------------------------------------------------------ drawing
    def render_line(self, y: int) -> Strip:
        width, head, body, foot, _ = self._built()
        height = self.scrollable_content_region.height
        if len(head) + len(body) + len(foot) <= height:
            lines = head + body + foot
            line = lines[y] if y < len(lines) else Strip.blank(width)
        elif y < len(head):
            line = head[y]
        elif y >= height - len(foot):
            line = foot[y - (height - len(foot))]
        else:
            index = int(self.scroll_y) + y - len(head)
            line = body[index] if 0 <= index < len(body) else Strip.blank(width)
        return line.crop_extend(0, width, self.rich_style).apply_style(self.rich_style)

    def action_move(self, step: int) -> None:
        if self.explanation is not None:
            self.cursor = max(0, min(len(self.explanation.tokens) - 1, self.cursor + step))

    def action_jump(self, where: int) -> None:
        if self.explanation is not None:
            self.cursor = where % len(self.explanation.tokens)

    def _prediction_line(self, explanation: Explanation, width: int) -> Text:
        """Label, probabilities and bars; a shorter form when that would not fit."""
        prediction = explanation.prediction
        if prediction.ids is not None:
            return self._tokens_line(explanation)
        pairs = list(zip(prediction.labels, prediction.probabilities))
        line = Text("Prediction ", style="bold")
        line.append(prediction.label, style="bold reverse")
        line.append("   ")
        for index, (label, p) in enumerate(pairs):
            bar = "█" * int(round(float(p) * 10))
            line.append(f"{label} {float(p):.3f} ", style="bold" if index == prediction.index else "dim")
            line.append(f"{bar:<10}", style="green" if index == prediction.index else "grey50")
            line.append("  ")
        line.rstrip()
        if line.cell_len > width:
            line = Text("Prediction ", style="bold")
            for index, (label, p) in enumerate(pairs):
                if index:
                    line.append(" · ", style="dim")
                line.append(label, style="bold reverse" if index == prediction.index else "dim")
                line.append(f" {float(p):.3f}", style="bold" if index == prediction.index else "dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        return line

    @staticmethod
    def _answer_line(pieces: list[str], step: int | None) -> Text:
        """The answer, the step shown reversed (or ``whole``), and how to move."""
        line = Text("Answer ", style="bold")
        line.append("whole", style="bold reverse" if step is None else "dim")
        for index, piece in enumerate(pieces):
            line.append(" ")
            line.append(display_token(piece), style="bold reverse" if index == step else "")
        where = f"step {step + 1} of {len(pieces)}" if step is not None else f"{len(pieces)} steps"
        line.append(f"   {where} (, and . move)", style="dim")
        return line

    def _tokens_line(self, explanation: Explanation) -> Text:
        """A language model's likeliest tokens, best first, as many as fit; the target
        reversed, the foil in red."""
        prediction = explanation.prediction
        target = explanation.target
        chosen = prediction.index if target is None else target.index
        foil = None if target is None else target.foil
        line = Text(f"{NextTokenTarget.heading if target is None else target.heading} ", style="bold")
        for number, (token, token_id, p) in enumerate(zip(prediction.labels, prediction.ids, prediction.probabilities)):
            if number:
                line.append(" · ", style="dim")
            style = "bold reverse" if token_id == chosen else "bold reverse red" if token_id == foil else ""
            line.append(repr(token), style=style)
            line.append(f" {float(p):.3f}", style="bold" if token_id in (chosen, foil) else "dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        return line

    def _explained_lines(self, explanation: Explanation, width: int) -> list[Text]:
        """What is explained and, with ALTI-Logit, how its logit splits; one line when that fits.

        Language models always show it; classifiers only when it is not simply the
        predicted class (a chosen target or foil, or a logit split)."""
        split = logit_terms_line(explanation)
        if explanation.prediction.ids is None and is_default(explanation) and not split:
            return []
        what = Text(explained(explanation), style="bold")
        if not split:
            return [what]
        lines = [what, Text(split, style="dim")]
        if what.cell_len + 3 + len(split) <= width:
            lines = [what + Text(" · ", style="dim") + Text(split, style="dim")]
        for line in lines:
            line.no_wrap = True
            line.overflow = "ellipsis"
        return lines

    def _method_label(self, method: str, computed: bool = True) -> Text:
        """The name, then ``±`` for a signed method or ``…`` while it computes."""
        info = self.infos.get(method)
        if not computed:
            mark = "…" if method in self.pending else "✗"
        else:
            mark = "±" if info and info.signed else " "
        name = self._name_width - 2
        return Text(f"{method[:name]:<{name}}{mark} ", style="bold" if computed else "dim")

    @property
    def _name_width(self) -> int:
        """The name column: wide enough for the longest method shown (value_zeroing), never narrower
        than NAME_WIDTH."""
        return max(NAME_WIDTH, *(len(m) + 2 for m in self.methods)) if self.methods else NAME_WIDTH

    def _rows(self, explanation: Explanation, width: int) -> tuple[list[Text], range]:
        """Every method's row for each line of tokens; the cursor's lines as a range."""
        words = [display_token(token) for token in explanation.tokens]
        spans = chunks(words, max(1, width - self._name_width))
        styles = {}
        for method in [m for m in self.methods if m in explanation.scores]:
            signed = bool(self.infos.get(method) and self.infos[method].signed)
            values = normalize(explanation.scores[method], signed, explanation.special)
            styles[method] = [score_style(float(v), signed) for v in values]
        rows: list[Text] = []
        cursor_lines = range(0)
        waiting = Style(dim=True, italic=True)
        for number, span in enumerate(spans):
            if number and len(self.methods) > 1:
                rows.append(Text(""))
            start = len(rows)
            for method in self.methods:
                computed = method in explanation.scores
                line = self._method_label(method, computed)
                for index in span:
                    style = styles[method][index] if computed else waiting
                    if index == self.cursor:
                        style = style + Style(underline=True, bold=True)
                    line.append(words[index], style=style)
                    line.append(" ")
                line.no_wrap = True
                rows.append(line)
            if self.cursor in span:
                cursor_lines = range(start, len(rows))
        return rows, cursor_lines

    def _cursor_line(self, explanation: Explanation) -> Text:
        index = min(self.cursor, len(explanation.tokens) - 1)
        line = Text(f"◆ {display_token(explanation.tokens[index])!r} #{index}: ", style="bold")
        for method in self.methods:
            if method in explanation.scores:
                line.append(f"{method} ", style="dim")
                line.append(f"{float(explanation.scores[method][index]):+.3f}  ")
        line.rstrip()
        return line

    def _legend(self, width: int) -> Text:
        """Both colour scales; one cell per step when the two-cell legend is too wide."""
        wide = _scales("legend  unsigned 0 ", " max    signed (±) − ", "  ")
        return wide if wide.cell_len <= width else _scales("0 ", " max   ± − ", " ")


def _scales(start: str, middle: str, cell: str) -> Text:
    """The unsigned then the signed colour scale, ``cell`` per step, between dim labels."""
    half = LEGEND_STEPS // 2
    legend = Text(start, style="dim")
    for step in range(LEGEND_STEPS + 1):
        legend.append(cell, style=score_style(step / LEGEND_STEPS, False))
    legend.append(middle, style="dim")
    for step in range(-half, half + 1):
        legend.append(cell, style=score_style(step / half, True))
    legend.append(" +", style="dim")
    return legend
