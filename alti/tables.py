"""Terminal tables of faithfulness results: ``alti evaluate`` prints them, the explorer's run
overview shows the same table.  Rich renderables, no torch."""

from __future__ import annotations

import math

from alti.faithfulness import SCORE_COLUMNS


def _protocol_line(protocol: dict) -> str:
    steps = (
        "bins " + "/".join(f"{q:g}" for q in [100 * b for b in protocol["bins"]]) + " %"
        if protocol["bins"]
        else ("one token at a time" + (f" (at most {protocol['limit']})" if protocol["limit"] else ""))
    )
    return f"deletion: {protocol['deletion']}, {steps}, curve: {protocol['curve']}"


def results_table(evaluation, model_name: str):
    """One row per method of an :class:`alti.faithfulness.Evaluation`, the best value of each
    column in bold; names from files and users are shown as text, never as markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(f"Faithfulness of {model_name} on {evaluation.samples} samples"),
        caption=Text(_protocol_line(evaluation.protocol)),
    )
    table.add_column("Method")
    for _, heading, _ in SCORE_COLUMNS:
        table.add_column(heading, justify="right")
    best = {}
    for key, _, higher in SCORE_COLUMNS:
        values = [getattr(s, key) for s in evaluation.methods.values() if not math.isnan(getattr(s, key))]
        if values:
            best[key] = max(values) if higher else min(values)
    for name, scores in evaluation.methods.items():
        cells = []
        for key, _, _ in SCORE_COLUMNS:
            value = getattr(scores, key)
            text = f"{value:.3f}"
            bold = len(evaluation.methods) > 1 and value == best.get(key)
            cells.append(Text(text, style="bold" if bold else ""))
        table.add_row(Text(name), *cells)
    return table


def agreement_table(agreement: dict[str, dict[str, float]]):
    """Mean Spearman rank correlation of every pair of methods."""
    from rich.table import Table
    from rich.text import Text

    names = list(agreement)
    table = Table(title="Method agreement (mean Spearman rank correlation over samples)")
    table.add_column("")
    for name in names:
        table.add_column(Text(name), justify="right")
    for a in names:
        table.add_row(Text(a), *("—" if math.isnan(agreement[a][b]) else f"{agreement[a][b]:.2f}" for b in names))
    return table


def context_table(context: dict[str, dict[str, float]]):
    """An answer run's context faithfulness: each method's mean drop of log p(answer) when its
    top 1, 2, 3 segments are removed (higher is better), beside the random baseline, and where
    the data names supporting segments their mean reciprocal rank and top-1 accuracy."""
    from rich.table import Table
    from rich.text import Text

    keys = [
        key
        for key in ("drop@1", "drop@2", "drop@3", "support_mrr", "support_top1")
        if any(key in r for r in context.values())
    ]
    table = Table(title=Text("Context faithfulness: drop of log p(answer) (higher is better)"))
    table.add_column("Method")
    for key in keys:
        table.add_column(Text(key), justify="right")
    for name, row in context.items():
        cells = [Text("—" if math.isnan(row.get(key, math.nan)) else f"{row[key]:.3f}") for key in keys]
        table.add_row(Text(name, style="dim" if name == "random" else ""), *cells)
    return table
