"""``o``: a run at a glance — faithfulness table, method agreement, top tokens, distributions."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from alti.colors import DIVERGING, rich_style
from alti.faithfulness import Evaluation, MethodScores
from alti.tables import results_table
from alti_tui.models import Overview

BARS = " ▁▂▃▄▅▆▇█"


def faithfulness_table(overview: Overview) -> Table | Text:
    """``alti evaluate``'s table, from the run's stored curves."""
    if not overview.table:
        return Text(
            "No deletion curves in this run: write it with 'alti attribute --curves' for the faithfulness table.",
            style="dim",
        )
    scores = {method: MethodScores(**row) for method, row in overview.table.items()}
    return results_table(Evaluation(overview.samples, overview.protocol or {}, scores), overview.model)


def agreement_heatmap(overview: Overview) -> Table:
    """Mean Spearman ρ of every pair, each cell coloured on the diverging scale (−1 … 1)."""
    names = list(overview.agreement)
    table = Table(title="Method agreement (mean Spearman ρ per sample)", title_justify="left", padding=(0, 0))
    table.add_column("")
    for name in names:
        table.add_column(Text(name[:7]), justify="center", min_width=7)
    for a in names:
        cells = []
        for b in names:
            rho = overview.agreement[a][b]
            if math.isnan(rho):
                cells.append(Text("  —  ", style="dim"))
            else:
                cells.append(Text(f"{rho:+.2f}".center(7), style=rich_style(rho, DIVERGING)))
        table.add_row(Text(a), *cells)
    return table


def top_tokens(overview: Overview) -> Table:
    table = Table(title="Highest mean attribution per token: score (occurrences)", title_justify="left", box=None)
    table.add_column("", no_wrap=True)
    table.add_column("")
    for method, stats in overview.top_tokens.items():
        line = Text()
        for k, stat in enumerate(stats):
            line.append(("  " if k else "") + stat.token, style="bold")
            line.append(f" {stat.mean:.3g} ({stat.count})", style="dim")
        table.add_row(Text(method), line)
    return table


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(BARS[0 if c == 0 else max(1, round(c / top * (len(BARS) - 1)))] for c in counts)


def distributions(overview: Overview) -> Table:
    table = Table(title="Distribution of the per-sample scores", title_justify="left", box=None)
    table.add_column("")
    table.add_column("low", justify="right", style="dim")
    table.add_column("histogram")
    table.add_column("high", style="dim")
    for title, counts, (low, high) in overview.histograms:
        table.add_row(Text(title), f"{low:.2f}", Text(sparkline(counts), style="bold cyan"), f"{high:.2f}")
    return table


def render(overview: Overview) -> Group:
    protocol = overview.protocol
    heading = Text(f"{overview.model} · {overview.samples} samples", style="bold")
    if protocol:
        heading.append(f" · curves: {protocol.get('deletion')}, {protocol.get('curve')}", style="dim")
    return Group(
        heading,
        Text(""),
        faithfulness_table(overview),
        Text(""),
        agreement_heatmap(overview),
        Text(""),
        distributions(overview),
        Text(""),
        top_tokens(overview),
    )


class OverviewScreen(ModalScreen[None]):
    """The run's numbers; they are those of ``alti evaluate --attributions`` on the file."""

    DEFAULT_CSS = """
    OverviewScreen { align: center middle; }
    OverviewScreen > VerticalScroll {
        width: 100%; height: 100%; border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("o", "close", "close", show=False),
        Binding("q", "close", "close", show=False),
    ]

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.overview: Overview | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = Text(f"Run overview · {Path(self.path).name} (Esc closes)")
            yield Static(Text("computing the overview…", style="dim"), id="overview-body")

    def show(self, overview: Overview) -> None:
        self.overview = overview
        self.query_one("#overview-body", Static).update(render(overview))

    def action_close(self) -> None:
        self.dismiss(None)
