"""Colour scales for token scores.

Unsigned methods (ALTI, attention, norms, gradient norms) get a *sequential*
scale: white for nothing, deep purple for the row's largest score.  Signed
methods (input x gradient dot products, occlusion) get a *diverging* scale:
blue for negative, white for zero, red for positive, symmetric around zero.

Scores are normalised one method row at a time (:func:`normalize`), then mapped
to colours (:meth:`Scale.rgb`).  This module needs numpy only (rich is imported
lazily by :func:`rich_style`), so the TUI can use it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Scale:
    """A piecewise-linear colour scale over normalised scores.

    ``stops`` are ``(position, rgb)`` pairs with ascending positions covering
    ``[0, 1]`` (sequential) or ``[-1, 1]`` (diverging).
    """

    name: str
    signed: bool
    stops: tuple[tuple[float, RGB], ...]
    legend: str

    @property
    def low(self) -> float:
        return self.stops[0][0]

    @property
    def high(self) -> float:
        return self.stops[-1][0]

    def rgb(self, value: float) -> RGB:
        """The colour of one normalised score; values outside the scale are clipped."""
        value = float(value)
        if not np.isfinite(value):
            value = 0.0
        value = min(max(value, self.low), self.high)
        positions = [p for p, _ in self.stops]
        upper = next(i for i, p in enumerate(positions) if value <= p)
        if upper == 0:
            return self.stops[0][1]
        (p0, c0), (p1, c1) = self.stops[upper - 1], self.stops[upper]
        t = (value - p0) / (p1 - p0)
        return tuple(int(round(a + t * (b - a))) for a, b in zip(c0, c1))  # type: ignore[return-value]

    def hex(self, value: float) -> str:
        return to_hex(self.rgb(value))

    def samples(self, steps: int = 9) -> list[tuple[float, str]]:
        """Evenly spaced ``(value, hex)`` pairs from low to high, for drawing a legend."""
        return [(float(v), self.hex(v)) for v in np.linspace(self.low, self.high, steps)]


SEQUENTIAL = Scale(
    name="sequential",
    signed=False,
    stops=(
        (0.0, (252, 251, 253)),
        (0.25, (218, 218, 235)),
        (0.5, (158, 154, 200)),
        (0.75, (106, 81, 163)),
        (1.0, (63, 0, 125)),
    ),
    legend="white = 0, deep purple = the row's largest score",
)

DIVERGING = Scale(
    name="diverging",
    signed=True,
    stops=(
        (-1.0, (33, 102, 172)),
        (-0.5, (146, 197, 222)),
        (0.0, (247, 247, 247)),
        (0.5, (244, 165, 130)),
        (1.0, (178, 24, 43)),
    ),
    legend="blue = negative, white = 0, red = positive, scaled by the row's largest absolute score",
)


def scale_for(signed: bool) -> Scale:
    """The diverging scale for signed methods, the sequential one otherwise."""
    return DIVERGING if signed else SEQUENTIAL


def color_for(value: float, signed: bool) -> RGB:
    """The colour of one normalised score on the scale for ``signed``."""
    return scale_for(signed).rgb(value)


def normalize(scores, signed: bool, ignore=None) -> np.ndarray:
    """One method row scaled to ``[0, 1]`` (unsigned) or ``[-1, 1]`` (signed).

    Unsigned rows are divided by their largest score, signed rows by their
    largest absolute score, so zero always maps to white.  Positions where
    ``ignore`` is true (e.g. ``[CLS]``/``[SEP]``, which often hold much of the
    mass) do not set the peak but are still scaled and clipped.  A row with no
    usable peak (all zero, or not finite) maps to zeros.
    """
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    reference = values
    if ignore is not None:
        keep = ~np.asarray(ignore, dtype=bool)
        if keep.any():
            reference = values[keep]
    if reference.size == 0:
        return np.zeros_like(values)
    peak = np.abs(reference).max() if signed else reference.max()
    if not peak > 0:
        return np.zeros_like(values)
    return np.clip(values / peak, -1.0 if signed else 0.0, 1.0)


def to_hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _linear(channel: int) -> float:
    c = channel / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance of an sRGB colour, in ``[0, 1]``."""
    r, g, b = (_linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_color(background: RGB) -> RGB:
    """Black or white, whichever contrasts more with ``background``."""
    lum = luminance(background)
    on_black = (lum + 0.05) / 0.05
    on_white = 1.05 / (lum + 0.05)
    return (0, 0, 0) if on_black >= on_white else (255, 255, 255)


def rich_style(value: float, scale: Scale):
    """A rich ``Style``: the score's colour as background, readable text on top."""
    from rich.color import Color
    from rich.style import Style

    background = scale.rgb(value)
    return Style(color=Color.from_rgb(*text_color(background)), bgcolor=Color.from_rgb(*background))
