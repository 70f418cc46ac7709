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
