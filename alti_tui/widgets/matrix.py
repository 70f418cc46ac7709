"""The contribution-matrix panel: an n × n heatmap for one layer, with a layer slider; for a
whole answer also its steps × tokens (each answer token's row)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from alti.export import display_token
from alti.targets import ClassTarget
from alti_tui.widgets.palette import score_style

if TYPE_CHECKING:
    from alti.results import Explanation

LABEL_WIDTH = 10
HEADER_HEIGHT = 6
CELL = 2


class LayerSlider(Widget):
    """``◀ ━━━●━━ ▶ layer 3/6``; click or scroll to pick a layer."""

    DEFAULT_CSS = """
    LayerSlider { height: 1; width: 1fr; }
    """

    layer_index: reactive[int] = reactive(0)
    layer_count: reactive[int] = reactive(0)

    class Changed(Message):
        def __init__(self, layer: int) -> None:
            super().__init__()
            self.layer = layer

    def _track_width(self) -> int:
        return max(4, self.size.width - 18)

    def render(self) -> Text:
        if self.layer_count <= 0:
            return Text("layer –", style="dim")
        track = self._track_width()
        knob = 0 if self.layer_count == 1 else round(self.layer_index * (track - 1) / (self.layer_count - 1))
        line = Text("◀ ", style="bold")
        line.append("━" * knob, style="cyan")
        line.append("●", style="bold yellow")
        line.append("━" * (track - 1 - knob), style="grey50")
        line.append(" ▶ ", style="bold")
        line.append(f"layer {self.layer_index + 1}/{self.layer_count}")
        return line

    def set_layer(self, layer: int) -> None:
        if self.layer_count:
            layer = max(0, min(self.layer_count - 1, layer))
            if layer != self.layer_index:
                self.layer_index = layer
                self.post_message(self.Changed(layer))

    def on_click(self, event: events.Click) -> None:
        if not self.layer_count:
            return
        track = self._track_width()
        if event.x < 2:
            self.set_layer(self.layer_index - 1)
        elif event.x >= 2 + track:
            self.set_layer(self.layer_index + 1)
        else:
            fraction = (event.x - 2) / max(1, track - 1)
            self.set_layer(round(fraction * (self.layer_count - 1)))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.set_layer(self.layer_index - 1)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.set_layer(self.layer_index + 1)
        event.stop()


class Heatmap(ScrollView, can_focus=True):
    """Rows are the receiving tokens, columns the contributing ones.

    Line API: only the rows on screen are drawn, so a 512-token matrix costs no
    more to show than a short one.  The column labels (``header`` letters deep)
    stay at the top and the row labels at the left while the cells scroll.
    """

    DEFAULT_CSS = """
    Heatmap { height: 1fr; scrollbar-size-vertical: 1; scrollbar-size-horizontal: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: list[tuple[Strip, Strip]] = []
        self._header: list[Strip] = []
        self._label_width = LABEL_WIDTH + 1
        #: Drawn lines of the current view (scroll offset, width): a relayout elsewhere reuses them.
        self._cache: dict[int, Strip] = {}
        self._view: tuple[int, int, int] | None = None

    def show(
        self,
        tokens: list[str] | None,
        matrix: np.ndarray | None,
        highlight_row: int | None = 0,
        cursor: int = 0,
        header: int = HEADER_HEIGHT,
        row_tokens: list[str] | None = None,
    ) -> None:
        """Draw ``matrix`` (``None`` clears the view); rows are ``tokens`` too unless
        ``row_tokens`` names them."""
        if tokens is None or matrix is None:
            self._rows, self._header = [], []
            self._cache.clear()
            self.virtual_size = Size(0, 0)
        else:
            self._header, self._rows = heatmap_strips(tokens, matrix, highlight_row, cursor, header, row_tokens)
            self._cache.clear()
            self.virtual_size = Size(self._label_width + CELL * len(tokens), len(self._header) + len(self._rows))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = self.scroll_offset
        if (scroll_x, scroll_y, width) != self._view:
            self._cache.clear()
            self._view = (scroll_x, scroll_y, width)
        if y not in self._cache:
            self._cache[y] = self._draw_line(y, scroll_x, scroll_y, width)
        return self._cache[y]

    def _draw_line(self, y: int, scroll_x: int, scroll_y: int, width: int) -> Strip:
        cells = max(0, width - self._label_width)
        if y < len(self._header):
            label, body = Strip.blank(self._label_width), self._header[y]
        else:
            index = scroll_y + y - len(self._header)
            if not 0 <= index < len(self._rows):
                return Strip.blank(width, self.rich_style)
            label, body = self._rows[index]
        line = Strip.join([label, body.crop_extend(scroll_x, scroll_x + cells, None)])
        return line.crop_extend(0, width, self.rich_style).apply_style(self.rich_style)


def heatmap_strips(
    tokens: list[str],
    matrix: np.ndarray,
    highlight_row: int | None,
    cursor: int,
    header: int = HEADER_HEIGHT,
    row_tokens: list[str] | None = None,
) -> tuple[list[Strip], list[tuple[Strip, Strip]]]:
    """The column-label lines and, per row, its label and its cells."""
    labels = [display_token(t) for t in tokens]
    row_labels = labels if row_tokens is None else [display_token(t) for t in row_tokens]
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    bold, marked = Style(bold=True), Style(bold=True, reverse=True)
    head = []
    for depth in range(min(header, max(len(label) for label in labels))):
        head.append(
            Strip(
                [
                    Segment(f"{label[depth] if depth < len(label) else ' ':<{CELL}}", marked if j == cursor else bold)
                    for j, label in enumerate(labels)
                ]
            )
        )
    scaled = np.clip(np.asarray(matrix, dtype=float) / top, 0.0, 1.0)
    rows = []
    for i, label in enumerate(row_labels):
        marker = "▶" if i == highlight_row else " "
        label_style = marked if i == highlight_row else (bold if i == cursor else Style())
        name = Strip([Segment(f"{label[: LABEL_WIDTH - 1]:>{LABEL_WIDTH - 1}}{marker} ", label_style)])
        styles = [score_style(float(v), False) for v in scaled[i]]
        if i == highlight_row:
            cells = [Segment("▔▔" if j != cursor else "▔▏", style) for j, style in enumerate(styles)]
        else:
            cells = [Segment(" " * CELL, style) for style in styles]
        rows.append((name, Strip(cells)))
    return head, rows


def row_note(explanation: Explanation) -> str:
    """Which row the scores are read from, as the heading says it."""
    if explanation.target_position is None:
        return "no ▶: scores are the mean of the rows (mean pooling)"
    if explanation.target is not None:
        return explanation.target.row_note
    return ClassTarget.row_note


class MatrixPanel(Vertical):
    """Heatmap of ``method``'s matrix at ``layer``: per-layer or rolled out up to it."""

    DEFAULT_CSS = """
    MatrixPanel { height: 1fr; }
    MatrixPanel #matrix-title { height: 1; }
    """

    layer_index: reactive[int] = reactive(0)
    rolled: reactive[bool] = reactive(False)
    method: reactive[str | None] = reactive(None)
    #: a whole answer's steps × tokens instead of a layer's matrix
    answer_rows: reactive[bool] = reactive(False)
    #: with ``answer_rows``: steps × the prompt's segments (each a sum of its tokens' scores)
    by_segments: reactive[bool] = reactive(False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.explanation: Explanation | None = None
        #: the whole answer (when an answer or one of its steps is shown) and the step shown
        self.whole: Explanation | None = None
        self.step: int | None = None
        self.cursor = 0
        self._drawn_for: tuple[int, int] | None = None
        #: methods whose per-layer matrices are cumulative (set by the app from the model info)
        self.cumulative_methods: frozenset[str] = frozenset()
        #: why there are no matrices yet (a run file's rows, the model still loading)
        self.note: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="matrix-title")
        yield LayerSlider()
        yield Heatmap(id="heatmap")

    @property
    def layer_count(self) -> int:
        if self.explanation is None or self.method not in self.explanation.layers:
            return 0
        return int(self.explanation.layers[self.method].shape[0])

    def show(
        self,
        explanation: Explanation | None,
        method: str | None,
        cursor: int = 0,
        whole: Explanation | None = None,
        step: int | None = None,
    ) -> None:
        """``explanation``'s matrices; ``whole``: the whole answer ``explanation`` is (a step
        of), whose steps × tokens ``answer_rows`` shows, ``step`` marked."""
        self.explanation = explanation
        self.whole, self.step = whole, step
        self.cursor = cursor
        self.method = method
        if self.layer_count and self.layer_index >= self.layer_count:
            self.layer_index = self.layer_count - 1
        self.refresh_view()

    def on_layer_slider_changed(self, event: LayerSlider.Changed) -> None:
        self.layer_index = event.layer

    def watch_layer_index(self) -> None:
        self.refresh_view()

    def watch_rolled(self) -> None:
        self.refresh_view()

    def watch_answer_rows(self) -> None:
        self.refresh_view()

    def watch_by_segments(self) -> None:
        self.refresh_view()

    @property
    def showing_steps(self) -> bool:
        """The answer's steps × tokens are shown (asked for, and the method has steps)."""
        return self.answer_rows and self.whole is not None and self.method in self.whole.steps

    @property
    def showing_segments(self) -> bool:
        """The answer's steps × segments are shown (asked for, and the prompt has segments)."""
        return self.showing_steps and self.by_segments and bool(self.whole and self.whole.segments)

    def on_resize(self) -> None:
        """The heatmap draws whatever part fits: redraw only when the label depth or heading changes."""
        if (self._header_depth(), self.size.width) != self._drawn_for:
            self.refresh_view()

    def step_layer(self, step: int) -> None:
        if self.layer_count:
            self.layer_index = max(0, min(self.layer_count - 1, self.layer_index + step))

    @property
    def cumulative(self) -> bool:
        """The method's layers already relate tokens to the input: nothing to roll out."""
        return self.method in self.cumulative_methods

    def current_matrix(self) -> np.ndarray | None:
        if self.showing_steps:
            assert self.whole is not None and self.method is not None
            steps = np.asarray(self.whole.steps[self.method])
            if self.showing_segments:
                assert self.whole.segments is not None
                return np.array([[segment.score(row) for segment in self.whole.segments] for row in steps])
            return steps
        if not self.layer_count:
            return None
        assert self.explanation is not None and self.method is not None
        if self.rolled and not self.cumulative:
            return np.asarray(self.explanation.rolled_out(self.method, self.layer_index + 1))
        return np.asarray(self.explanation.layers[self.method][self.layer_index])

    def _header_depth(self) -> int:
        return max(3, min(HEADER_HEIGHT, self.size.height // 4))

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        title = self.query_one("#matrix-title", Static)
        slider = self.query_one(LayerSlider)
        body = self.query_one(Heatmap)
        slider.layer_count = self.layer_count
        slider.layer_index = self.layer_index
        matrix = self.current_matrix()
        if self.explanation is None:
            title.update(Text("waiting for the attributions…", style="dim"), layout=False)
            body.show(None, None)
            return
        if matrix is None:
            why = self.note if self.note and self.method else self._no_matrix()
            title.update(Text(why, style="dim"), layout=False)
            body.show(None, None)
            return
        if self.showing_steps:
            self._show_steps(title, body, matrix)
            return
        assert self.explanation is not None
        if self.cumulative:
            mode = f"after layer {self.layer_index + 1} (cumulative)"
        elif self.rolled:
            mode = f"rolled out, layers 1–{self.layer_index + 1}"
        else:
            mode = f"layer {self.layer_index + 1} only"
        self._title(title, mode, row_note(self.explanation), "[ ] layer, r rolled/per-layer, x method")
        header = self._header_depth()
        self._drawn_for = (header, self.size.width)
        body.show(self.explanation.tokens, matrix, self.explanation.target_position, self.cursor, header)

    def _title(self, title: Static, mode: str, *parts: str) -> None:
        """The method and what is drawn, then as many of ``parts`` as fit the width."""
        heading = Text(f"{self.method}", style="bold")
        heading.append(f"  ·  {mode}", style="dim")
        for part in parts:
            if heading.cell_len + 5 + len(part) > self.size.width:
                break
            heading.append(f"  ·  {part}", style="dim")
        title.update(heading, layout=False)

    def _no_matrix(self) -> str:
        """Why there is no matrix to draw: none kept for a long input, or no matrix method shown."""
        assert self.explanation is not None
        kept = self.explanation.settings.get(self.method or "", {}).get("layers")
        if kept:
            return f"{self.method}: per-layer matrices {kept}"
        return "No matrix method among the shown methods (m to choose)."

    def _show_steps(self, title: Static, body: Heatmap, matrix: np.ndarray) -> None:
        """The whole answer's rows: one per answer token (what it was predicted from), over the
        tokens or the prompt's segments."""
        whole = self.whole
        assert whole is not None
        mode = (
            "answer steps × segments (numbered as in the Segments tab)"
            if self.showing_segments
            else "answer steps × tokens (each step's row of the scores)"
        )
        self._title(title, mode, "row ▶ = the step shown", "r per-layer/rolled/steps, x method")
        header = self._header_depth()
        self._drawn_for = (header, self.size.width)
        pieces = whole.tokens[len(whole.tokens) - whole.answer_steps :]
        if self.showing_segments:
            columns = [str(number) for number in range(1, matrix.shape[1] + 1)]
            body.show(columns, matrix, self.step, -1, header, row_tokens=pieces)
        else:
            body.show(whole.tokens, matrix, self.step, self.cursor, header, row_tokens=pieces)
