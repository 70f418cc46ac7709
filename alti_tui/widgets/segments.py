"""The segments panel: an answer's prompt cut into spans (sentences, lines, chat turns), each
with a bar per method, side by side.

A segment's score for a method is the sum of its tokens' scores (:class:`alti.results.Segment`),
of the whole answer or of the step shown.  Bars are scaled per method, by the largest
magnitude among the segments; a negative score's bar is red.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from alti_tui.explained import explained

if TYPE_CHECKING:
    from alti.results import Explanation

#: cells of a bar, and of a method's column (bar, value, gap)
BAR = 10
COLUMN = BAR + 9
#: the segment texts get at least this many cells
TEXT_MIN = 16
EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, cells: int = BAR) -> str:
    """``fraction`` (0..1) of ``cells`` cells, in eighths."""
    eighths = round(max(0.0, min(1.0, fraction)) * cells * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(cells)


def segment_table(explanation: Explanation | None, methods: list[str], width: int) -> Text:
    """Each segment's text, then its bar and score under each method that has scores."""
    if explanation is None:
        return Text("waiting for the attributions…", style="dim")
    if explanation.segments is None:
        return Text("No segments: an answer's prompt is cut into them (alti-tui --segments).", style="dim")
    if not explanation.segments:
        return Text("The prompt has no segment holding a token.", style="dim")
    shown = [m for m in methods if m in explanation.scores]
    if not shown:
        return Text("No method with scores here (gradients explain the whole answer only).", style="dim")
    fit = max(1, (width - 4 - TEXT_MIN) // COLUMN)
    left_out = shown[fit:]
    shown = shown[:fit]
    text_width = max(TEXT_MIN, width - 4 - COLUMN * len(shown))
    out = Text(no_wrap=True, overflow="crop")
    out.append(" " * (text_width + 4))
    for method in shown:
        out.append(f"{method[: COLUMN - 1]:<{COLUMN}}", style="bold")
    out.append("\n")
    values = {m: [s.score(explanation.scores[m]) for s in explanation.segments] for m in shown}
    top = {m: max((abs(v) for v in values[m]), default=0.0) or 1.0 for m in shown}
    for index, segment in enumerate(explanation.segments):
        words = segment.text.replace("\n", " ")
        if len(words) > text_width:
            words = words[: text_width - 1] + "…"
        out.append(f"{index + 1:>2} ", style="dim")
        out.append(f"{words:<{text_width}} ")
        for method in shown:
            value = values[method][index]
            out.append(bar(abs(value) / top[method]), style="red" if value < 0 else "green")
            out.append(f"{value:>+8.3f} ")
        out.append("\n")
    if left_out:
        out.append(f"not shown, no room: {', '.join(left_out)} (z zooms the panel)", style="dim")
    out.rstrip()
    return out


class SegmentsPanel(VerticalScroll, can_focus=True):
    """The segments of the explanation shown (the whole answer, or a step)."""

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    SegmentsPanel { height: 1fr; }
    SegmentsPanel #segments-title { height: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.explanation: Explanation | None = None
        self.methods: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(id="segments-title")
        yield Static(id="segments-body")

    def show(self, explanation: Explanation | None, methods: list[str]) -> None:
        self.explanation = explanation
        self.methods = list(methods)
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        explanation = self.explanation
        title = Text("Segments of the prompt", style="bold")
        if explanation is not None and explanation.segments:
            what = "whole answer" if explanation.answer_steps else f"step: {explained(explanation)}"
            title.append(f"  ·  {what}  ·  a segment's score is the sum of its tokens'", style="dim")
        title.no_wrap, title.overflow = True, "ellipsis"
        self.query_one("#segments-title", Static).update(title)
        width = self.scrollable_content_region.width or 80
        self.query_one("#segments-body", Static).update(segment_table(explanation, self.methods, width))
