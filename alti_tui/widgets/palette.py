"""Rich styles for scores: the engine's colour scales, as terminal styles."""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.style import Style

#: One colour per method in plots and legends (distinct in 256-colour terminals).
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def series_color(index: int) -> str:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


def normalise(scores: np.ndarray, signed: bool, special: np.ndarray | None = None) -> np.ndarray:
    """Scale scores to [0, 1] (unsigned) or [-1, 1] (signed).

    The scale is set by the non-special tokens, so a large ``[CLS]`` self
    contribution does not wash out the words; special tokens are clipped.
    """
    values = np.asarray(scores, dtype=float)
    basis = values if special is None or special.all() else values[~np.asarray(special, bool)]
    top = float(np.max(np.abs(basis))) if basis.size else 0.0
    if top <= 0 or not np.isfinite(top):
        return np.zeros_like(values)
    low = -1.0 if signed else 0.0
    return np.clip(values / top, low, 1.0)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _rgb(value: float, signed: bool) -> tuple[int, int, int]:
    white, blue, red = (255, 255, 255), (8, 48, 107), (165, 15, 21)
    if signed and value < 0:
        return _mix(white, red, min(1.0, -value))
    return _mix(white, blue, min(1.0, max(0.0, value)))


def score_style(value: float, signed: bool) -> Style:
    """Background for a normalised score, with a readable foreground."""
    r, g, b = _rgb(value, signed)
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    foreground = "black" if luminance > 140 else "white"
    return Style(color=foreground, bgcolor=Color.from_rgb(r, g, b))
