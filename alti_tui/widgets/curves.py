"""The deletion-curves panel: comprehensiveness and sufficiency plots that fill in live."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from alti.targets import PROBABILITY
from alti_tui.models import CurveScore, PlotPoint
from alti_tui.widgets.palette import series_color

BRAILLE_BASE = 0x2800
#: Dot bit for (column 0..1, row 0..3) inside one braille cell.
DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
TITLES = {"comp": "Comprehensiveness (top-k deleted) ↑", "suff": "Sufficiency (only top-k kept) ↓"}


class BrailleCanvas:
    """A grid of braille cells, 2 × 4 dots each; a cell takes its last series' colour."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.bits = [[0] * width for _ in range(height)]
        self.colors: list[list[str | None]] = [[None] * width for _ in range(height)]

    def dot(self, x: int, y: int, color: str) -> None:
        col, row = x // 2, y // 4
        if 0 <= col < self.width and 0 <= row < self.height and x >= 0 and y >= 0:
            self.bits[row][col] |= DOTS[y % 4][x % 2]
            self.colors[row][col] = color

    def line(self, x0: int, y0: int, x1: int, y1: int, color: str) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for step in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * step / steps), round(y0 + (y1 - y0) * step / steps), color)

    def row_text(self, row: int) -> Text:
        text = Text()
        for bits, color in zip(self.bits[row], self.colors[row]):
            text.append(chr(BRAILLE_BASE + bits) if bits else " ", style=color or "")
        return text


def y_range(values: list[float], quantity: str) -> tuple[float, float]:
    """The plots' y-range: 0..1 for probabilities, else the values' range with 0 in it."""
    if quantity == PROBABILITY:
        return 0.0, 1.0
    low, high = min([0.0, *values]), max([0.0, *values])
    if high - low < 1e-9:
        high = low + 1.0
    pad = (high - low) * 0.05
    return low - pad if low < 0 else low, high + pad if high > 0 else high


def tick_format(low: float, high: float) -> str:
    span = high - low
    return ".1f" if span >= 2 or (low, high) == (0.0, 1.0) else ".2f" if span >= 0.2 else ".3f"


def plot(
    series: list[tuple[str, list[tuple[float, float]]]],
    colors: dict[str, str],
    width: int,
    height: int,
    x_max: float,
    y_limits: tuple[float, float] = (0.0, 1.0),
) -> Text:
    """The quantity (within ``y_limits``) against the fraction of tokens deleted (0..x_max), with axes."""
    low, high = y_limits
    plot_h = max(3, height - 2)
    fmt = tick_format(low, high)
    ticks = {row: high - (high - low) * row / max(1, plot_h - 1) for row in (0, plot_h // 2, plot_h - 1)}
    if low < 0 < high:  # a logit difference: where it changes sign
        zero = round(high / (high - low) * (plot_h - 1))
        if all(abs(zero - row) > 1 for row in ticks):
            ticks[zero] = 0.0
    label_w = max(4, *(len(f"{value:{fmt}}") for value in ticks.values()))
    plot_w = max(8, width - label_w - 3)
    canvas = BrailleCanvas(plot_w, plot_h)
    dots_w, dots_h = plot_w * 2 - 1, plot_h * 4 - 1
    for name, points in series:
        pixels = [
            (round(min(x, x_max) / x_max * dots_w), round((1 - min(max((y - low) / (high - low), 0.0), 1.0)) * dots_h))
            for x, y in sorted(points)
        ]
        for (x0, y0), (x1, y1) in zip(pixels, pixels[1:]):
            canvas.line(x0, y0, x1, y1, colors[name])
        for x, y in pixels:
            canvas.dot(x, y, colors[name])
    out = Text()
    for row in range(plot_h):
        label = f"{ticks[row]:>{label_w}{fmt}} ┤" if row in ticks else " " * (label_w + 1) + "│"
        out.append(label, style="dim")
        out.append_text(canvas.row_text(row))
        out.append("\n")
    out.append(" " * (label_w + 1) + "└" + "─" * plot_w + "\n", style="dim")
    x_ticks = f"0{'':{max(1, plot_w // 2 - 3)}}{x_max / 2:.0%}"
    out.append(" " * (label_w + 2) + f"{x_ticks:<{plot_w - 4}}{x_max:.0%}", style="dim")
    return out


class CurvesPanel(Widget):
    """Collects :class:`PlotPoint` s and scores; draws both plots with a legend.

    ``quantity`` is what the curves read: a probability (plots from 0 to 1) or a
    logit difference against a foil (plots fitted to the values, 0 included);
    ``label`` names it (``p(' Paris')``) above the plots.
    """

    DEFAULT_CSS = """
    CurvesPanel { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.methods: list[str] = []
        self.points: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self.scores: dict[tuple[str, str], float] = {}
        self.status = "waiting for the attributions"
        self.quantity = PROBABILITY
        self.label = ""

    def reset(self, methods: list[str], status: str, quantity: str = PROBABILITY, label: str = "") -> None:
        self.methods = list(methods)
        self.points = {}
        self.scores = {}
        self.status = status
        self.quantity = quantity
        self.label = label
        self.refresh()

    def add(self, item: PlotPoint | CurveScore) -> None:
        if isinstance(item, PlotPoint):
            self.points.setdefault((item.method, item.curve), []).append((item.fraction, item.probability))
        else:
            self.scores[(item.method, item.curve)] = item.score
        self.status = "computing…"
        self.refresh()

    def finish(self, status: str = "done") -> None:
        self.status = status
        self.refresh()

    def point_count(self) -> int:
        return sum(len(points) for points in self.points.values())

    def render(self) -> Group:
        colors = {method: series_color(index) for index, method in enumerate(self.methods)}
        widest = max((x for pts in self.points.values() for x, _ in pts), default=0.5)
        x_max = max(0.1, math.ceil(widest * 10 - 1e-9) / 10)
        width, height = self.content_size.width or 80, self.content_size.height or 20
        side_by_side = width >= 90
        plot_w = (width - 2) // 2 if side_by_side else width
        legend_rows = len(self.methods) + 2
        available = height - legend_rows - 1
        plot_h = max(4, available - 1 if side_by_side else available // 2 - 1)
        plots = []
        limits = y_range([y for pts in self.points.values() for _, y in pts], self.quantity)
        for kind in ("comp", "suff"):
            series = [(m, self.points.get((m, kind), [])) for m in self.methods]
            body = plot(series, colors, plot_w, plot_h, x_max, limits)
            plots.append(Group(Text(TITLES[kind], style="bold"), body))
        grid = Table.grid(padding=(0, 2))
        if side_by_side:
            grid.add_row(*plots)
        else:
            grid.add_row(plots[0])
            grid.add_row(plots[1])
        legend = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold dim")
        legend.add_column("method")
        legend.add_column("comp ↑", justify="right")
        legend.add_column("suff ↓", justify="right")
        for method in self.methods:
            name = Text("━━ ", style=colors[method]) + Text(method)
            cells = [self._score(method, kind) for kind in ("comp", "suff")]
            legend.add_row(name, *cells)
        return Group(self._heading(width), grid, legend)

    def _heading(self, width: int) -> Text:
        """``deletion curves · done · y: p(' Paris')``, one line (the first words go when narrow)."""
        heading = Text(f"deletion curves · {self.status}", style="dim italic")
        if self.label:
            heading.append(" · y: ", style="dim italic")
            heading.append(self.label, style="bold")
            if heading.cell_len > width:
                heading = heading[len("deletion curves · ") :]
        heading.no_wrap = True
        heading.overflow = "ellipsis"
        return heading

    def _score(self, method: str, kind: str) -> str:
        if (method, kind) in self.scores:
            return f"{self.scores[(method, kind)]:.3f}"
        return "…" if self.points.get((method, kind)) else "–"
