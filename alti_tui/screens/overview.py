"""``o``: a run at a glance — faithfulness table, an answer run's context table, method agreement,
top tokens, distributions."""

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
from alti.tables import context_table, results_table
from alti_tui.models import Overview

BARS = " ▁▂▃▄▅▆▇█"


def titled(table: Table) -> Group:
    """The table under its title on a line of its own: a table's own title wraps at the
    table's width, mid-phrase."""
    title, table.title = table.title, None
    return Group(Text(str(title), style="italic"), table)


def faithfulness_table(overview: Overview) -> Group | Text:
    """``alti evaluate``'s table, from the run's stored curves."""
    if not overview.table:
        return Text(
            "No deletion curves in this run: write it with 'alti attribute --curves' for the faithfulness table.",
            style="dim",
        )
    scores = {method: MethodScores(**row) for method, row in overview.table.items()}
    return titled(results_table(Evaluation(overview.samples, overview.protocol or {}, scores), overview.model))


def agreement_heatmap(overview: Overview) -> Group:
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
    return titled(table)


def decimals(values: list[float], digits: int = 3) -> int:
    """Decimals that give the largest of ``values`` ``digits`` significant digits: one precision
    for a whole row, so that 0.350 and 0.042 read alike."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if largest == 0:
        return digits
    return max(0, digits - 1 - math.floor(math.log10(largest)))


def top_tokens(overview: Overview, width: int = 120) -> Group:
    """Each method's tokens, entries ``token score (count)`` laid out on lines of ``width``
    cells: a line breaks between entries, never inside one."""
    table = Table(title="Highest mean attribution per token: score (occurrences)", title_justify="left", box=None)
    table.add_column("", no_wrap=True)
    table.add_column("", no_wrap=True)
    room = max(20, width - max((len(m) for m in overview.top_tokens), default=0) - 4)
    for method, stats in overview.top_tokens.items():
        places = decimals([stat.mean for stat in stats])
        lines = [Text()]
        for stat in stats:
            entry = Text(stat.token, style="bold")
            entry.append(f" {stat.mean:.{places}f} ({stat.count})", style="dim")
            if lines[-1].cell_len and lines[-1].cell_len + 2 + entry.cell_len > room:
                lines.append(Text())
            if lines[-1].cell_len:
                lines[-1].append("  ")
            lines[-1].append_text(entry)
        table.add_row(Text(method), Text("\n").join(lines))
    return titled(table)


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(BARS[0 if c == 0 else max(1, round(c / top * (len(BARS) - 1)))] for c in counts)


def distributions(overview: Overview) -> Group:
    table = Table(title="Distribution of the per-sample scores", title_justify="left", box=None)
    table.add_column("")
    table.add_column("low", justify="right", style="dim")
    table.add_column("histogram")
    table.add_column("high", style="dim")
    for title, counts, (low, high) in overview.histograms:
        table.add_row(Text(title), f"{low:.2f}", Text(sparkline(counts), style="bold cyan"), f"{high:.2f}")
    return titled(table)


def render(overview: Overview, width: int = 120) -> Group:
    protocol = overview.protocol
    heading = Text(f"{overview.model} · {overview.samples} samples", style="bold")
    if protocol:
        heading.append(f" · curves: {protocol.get('deletion')}, {protocol.get('curve')}", style="dim")
    context = [titled(context_table(overview.context)), Text("")] if overview.context else []
    return Group(
        heading,
        Text(""),
        faithfulness_table(overview),
        Text(""),
        *context,
        agreement_heatmap(overview),
        Text(""),
        distributions(overview),
        Text(""),
        top_tokens(overview, width),
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
        body = self.query_one("#overview-body", Static)
        body.update(render(overview, body.size.width or self.app.size.width - 4))

    def action_close(self) -> None:
        self.dismiss(None)
