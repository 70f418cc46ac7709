"""Terminal styles for scores, from the engine's colour scales (:mod:`alti.colors`)."""

from __future__ import annotations

import functools

from rich.style import Style

from alti.colors import rich_style, scale_for

#: One colour per method in plots and legends (distinct in 256-colour terminals).
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def series_color(index: int) -> str:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


#: Scores are drawn in this many steps per unit: finer than a 256-colour terminal shows.
LEVELS = 64


def score_style(value: float, signed: bool) -> Style:
    """Background for a normalised score on the method's scale, readable text on top."""
    return _style(round(value * LEVELS), signed)


@functools.lru_cache(maxsize=4 * LEVELS + 4)
def _style(level: int, signed: bool) -> Style:
    return rich_style(level / LEVELS, scale_for(signed))
