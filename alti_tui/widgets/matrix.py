"""The contribution-matrix panel: an n × n heatmap for one layer, with a layer slider."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from alti.export import display_token
from textual import events
from textual.app import ComposeResult
from textual.containers import ScrollableContainer, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

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


def heatmap(
    tokens: list[str], matrix: np.ndarray, highlight_row: int, cursor: int, header: int = HEADER_HEIGHT
) -> Text:
    """Rows are the receiving tokens, columns the contributing ones (labels ``header`` letters deep)."""
    n = len(tokens)
    labels = [display_token(t) for t in tokens]
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    out = Text()
    for depth in range(min(header, max(len(label) for label in labels))):
        out.append(" " * (LABEL_WIDTH + 1))
        for j, label in enumerate(labels):
            char = label[depth] if depth < len(label) else " "
            out.append(f"{char:<{CELL}}", style="bold reverse" if j == cursor else "bold")
        out.append("\n")
    scaled = np.clip(np.asarray(matrix, dtype=float) / top, 0.0, 1.0)
    for i in range(n):
        marker = "▶" if i == highlight_row else " "
        label_style = "bold reverse" if i == highlight_row else ("bold" if i == cursor else "")
        out.append(f"{labels[i][: LABEL_WIDTH - 1]:>{LABEL_WIDTH - 1}}{marker} ", style=label_style)
        for j in range(n):
            style = score_style(float(scaled[i, j]), False)
            if i == highlight_row:
                out.append("▔▔" if j != cursor else "▔▏", style=style)
            else:
                out.append(" " * CELL, style=style)
        out.append("\n")
    return out


class MatrixPanel(Vertical):
    """Heatmap of ``method``'s matrix at ``layer``: per-layer or rolled out up to it."""

    DEFAULT_CSS = """
    MatrixPanel { height: 1fr; }
    MatrixPanel #matrix-title { height: 1; }
    MatrixPanel ScrollableContainer { height: 1fr; }
    MatrixPanel #heatmap { width: auto; height: auto; }
    """

    layer_index: reactive[int] = reactive(0)
    rolled: reactive[bool] = reactive(False)
    method: reactive[str | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.explanation: Explanation | None = None
        self.cursor = 0

    def compose(self) -> ComposeResult:
        yield Static(id="matrix-title")
        yield LayerSlider()
        with ScrollableContainer(id="heatmap-scroll"):
            yield Static(id="heatmap")

    @property
    def layer_count(self) -> int:
        if self.explanation is None or self.method not in self.explanation.layers:
            return 0
        return int(self.explanation.layers[self.method].shape[0])

    def show(self, explanation: Explanation | None, method: str | None, cursor: int = 0) -> None:
        self.explanation = explanation
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

    def on_resize(self) -> None:
        self.refresh_view()

    def step_layer(self, step: int) -> None:
        if self.layer_count:
            self.layer_index = max(0, min(self.layer_count - 1, self.layer_index + step))

    def current_matrix(self) -> np.ndarray | None:
        if not self.layer_count:
            return None
        assert self.explanation is not None and self.method is not None
        if self.rolled:
            return np.asarray(self.explanation.rolled_out(self.method, self.layer_index + 1))
        return np.asarray(self.explanation.layers[self.method][self.layer_index])

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        title = self.query_one("#matrix-title", Static)
        slider = self.query_one(LayerSlider)
        body = self.query_one("#heatmap", Static)
        slider.layer_count = self.layer_count
        slider.layer_index = self.layer_index
        matrix = self.current_matrix()
        if self.explanation is None:
            title.update(Text("waiting for the attributions…", style="dim"))
            body.update("")
            return
        if matrix is None:
            title.update(Text("No matrix method among the shown methods (m to choose).", style="dim"))
            body.update("")
            return
        assert self.explanation is not None
        mode = f"rolled out, layers 1–{self.layer_index + 1}" if self.rolled else f"layer {self.layer_index + 1} only"
        heading = Text(f"{self.method}", style="bold")
        heading.append(f"  ·  {mode}  ·  row ▶ = classifier token  ·  [ ] layer, r rolled/per-layer, x method", style="dim")
        title.update(heading)
        header = max(3, min(HEADER_HEIGHT, self.size.height // 4))
        body.update(heatmap(self.explanation.tokens, matrix, self.explanation.target_position, self.cursor, header))
