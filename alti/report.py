"""One self-contained HTML page for a whole ``alti attribute`` run (``alti report``).

The page needs no network: its style, script and data are inside it.  Python does
everything that needs numbers (:mod:`alti.runs`): the overview (settings, the
faithfulness table, the agreement matrix, top tokens, histograms) is static HTML, and
the samples are embedded once as JSON with every token's colour (a CSS class per
distinct colour of :mod:`alti.colors`, normalised per row exactly as ``alti explain
--format html``) and its score as that page's hover title writes it.  Every sort the
explorer offers (:data:`alti.runs.SORTS`, each method or pair of methods, worst or
best) is embedded as the sample order :func:`alti.runs.order` gives, so the page's
script only filters (text search, misclassified only; a filter keeps the order) and
draws one page of samples at a time: a run of ten thousand samples stays responsive.

The page reads its initial sort, filter and page from the URL's hash
(``report.html#sort=disagreement&a=alti&b=rollout&q=film&mis=1&page=2``) and writes
them back there, so a view can be shared as a link.
"""

from __future__ import annotations

import gc
import html
import json
import math
import os
from typing import Any

import numpy as np

from alti import __version__
from alti.catalog import info
from alti.colors import DIVERGING, Scale, normalize, scale_for, text_color, to_hex
from alti.export import asset, display_token, write_atomic
from alti.faithfulness import SCORE_COLUMNS
from alti.runs import (
    CONTEXT_SORTS,
    SORTS,
    Order,
    Run,
    agreement,
    context_table,
    faithfulness_table,
    histogram,
    order,
    top_tokens,
)

#: Samples drawn per page unless the reader picks another size.
PAGE_SIZE = 50
PAGE_SIZES = (10, 25, 50, 100, 200)
#: Columns of the faithfulness table: key, heading, higher is better (as ``alti evaluate``).
COLUMNS = SCORE_COLUMNS
CURVE_SORTS = ("comprehensiveness", "sufficiency")

esc = html.escape


def score_text(score: float) -> str:
    """A score as the hover titles of ``alti explain --format html`` write it."""
    return f"{score:.4g}"


def order_key(how: Order, methods: list[str]) -> str:
    """The name under which the page holds the sample order of ``how``: the sort key, the
    methods' indices (a disagreement's pair in ascending order: it is symmetric), and
    ``best`` where the key has two directions."""
    indices = [methods.index(m) for m in how.methods]
    if how.key == "disagreement":
        indices.sort()
    parts = [how.key, *map(str, indices)]
    if how.best and how.key in ("length", *CURVE_SORTS, *CONTEXT_SORTS):
        parts.append("best")
    return ":".join(parts)


def context_sorts(run: Run) -> list[str]:
    """The sorts by an answer's context that the run has the measures for."""
    return [key for key, measure in CONTEXT_SORTS.items() if measure in run.context_measures]


def orders(run: Run) -> list[Order]:
    """Every sort the page offers (curve sorts only when the run has curves, context sorts
    only when it has their measures)."""
    methods = run.methods
    out = [Order(key) for key, (_, wanted) in SORTS.items() if wanted == 0]
    out.append(Order("length", best=True))
    out += [Order("disagreement", (a, b)) for i, a in enumerate(methods) for b in methods[i:]]
    if run.has_curves:
        out += [Order(key, (m,), best) for key in CURVE_SORTS for m in methods for best in (False, True)]
    out += [Order(key, (m,), best) for key in context_sorts(run) for m in methods for best in (False, True)]
    return out


def rgb_array(scale: Scale, values: np.ndarray) -> np.ndarray:
    """:meth:`Scale.rgb` of many normalised scores at once, as an ``(n, 3)`` integer array:
    the same clipping, stop, arithmetic and rounding (half to even), value for value."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = np.clip(np.where(np.isfinite(values), values, 0.0), scale.low, scale.high)
    positions = np.array([p for p, _ in scale.stops])
    colours = np.array([c for _, c in scale.stops], dtype=np.float64)
    upper = np.searchsorted(positions, values, side="left")
    lower = np.maximum(upper - 1, 0)
    first = upper == 0
    t = np.where(first, 0.0, (values - positions[lower]) / np.where(first, 1.0, positions[upper] - positions[lower]))
    return np.rint(colours[lower] + t[:, None] * (colours[upper] - colours[lower])).astype(np.int64)


def token_colours(run: Run) -> tuple[list[tuple[str, str]], list[list[list[int]]]]:
    """The run's distinct ``(background, text)`` colour pairs, and for each sample and
    method the index of each token's pair: rows normalised as ``alti explain`` does
    (:func:`alti.colors.normalize`, special tokens not setting the peak)."""
    methods = run.methods
    if not methods:
        return [], [[] for _ in run.records]
    lengths = [len(r["tokens"]) for r in run.records]
    splits = np.cumsum(lengths)[:-1]
    specials = [np.asarray(r["special"], dtype=bool) for r in run.records]
    packed = []
    for method in methods:
        scale = scale_for(info(method).signed)
        values = np.concatenate(
            [normalize(r["scores"][method], scale.signed, special) for r, special in zip(run.records, specials)]
        )
        rgb = rgb_array(scale, values)
        packed.append((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])
    distinct, inverse = np.unique(np.concatenate(packed), return_inverse=True)
    palette = []
    for colour in distinct.tolist():
        background = (colour >> 16, (colour >> 8) & 255, colour & 255)
        palette.append((to_hex(background), to_hex(text_color(background))))
    per_method = np.split(inverse, len(methods))
    rows = [[] for _ in run.records]
    for indices in per_method:
        for i, part in enumerate(np.split(indices, splits)):
            rows[i].append(part.tolist())
    return palette, rows


def palette_css(palette: list[tuple[str, str]]) -> str:
    """One CSS class ``k<index>`` per colour pair."""
    return "\n".join(f".k{i}{{background:{bg};color:{fg}}}" for i, (bg, fg) in enumerate(palette))


def _finite(value: float, digits: int | None = None) -> float | None:
    value = float(value)
    if not math.isfinite(value):
        return None
    return value if digits is None else round(value, digits)


def script_json(data: Any) -> str:
    """Compact JSON that is safe inside ``<script>``: no raw ``<``, ``>`` or ``&`` (as
    :mod:`alti.export` embeds its metadata), so no text can close the element."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def page_data(run: Run, colours: list[list[list[int]]], page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """What the page's script reads: the samples with each token's colour class and hover
    score, every sort's sample order, and the values shown beside a sorted sample."""
    methods = run.methods
    samples = []
    for i, record in enumerate(run.records):
        rows = [
            [colours[i][m], " ".join(map(score_text, record["scores"][method]))] for m, method in enumerate(methods)
        ]
        samples.append(
            [
                str(record["id"]),
                run.predicted[i],
                run.gold[i],
                _finite(run.confidence[i]),
                _finite(run.misclassified[i]),
                int(run.lengths[i]),
                run.lowered[i],
                list(record["tokens"]),
                rows,
            ]
        )
    values: dict[str, list[float | None]] = {}
    for a in range(len(methods)):
        for b in range(a + 1, len(methods)):
            values[f"disagreement:{a}:{b}"] = [_finite(v, 3) for v in run.spearman(methods[a], methods[b])]
    if run.has_curves:
        for key in CURVE_SORTS:
            for m, method in enumerate(methods):
                values[f"{key}:{m}"] = [_finite(v, 4) for v in run.curve_scores(method, key)]
    offered = context_sorts(run)
    for key in offered:
        for m, method in enumerate(methods):
            values[f"{key}:{m}"] = [_finite(v, 4) for v in run.context_scores(method, CONTEXT_SORTS[key])]
    return {
        "methods": methods,
        "tokens": run.target_type.tokens,
        "hasCurves": run.has_curves,
        "pageSize": page_size,
        "pageSizes": list(PAGE_SIZES),
        "sorts": [
            [key, title, wanted] for key, (title, wanted) in SORTS.items() if key not in CONTEXT_SORTS or key in offered
        ],
        "contextSorts": {key: CONTEXT_SORTS[key] for key in offered},
        "samples": samples,
        "orders": {order_key(how, methods): order(run, how) for how in orders(run)},
        "values": values,
    }


# ------------------------------------------------------------------ the static parts
def _number(value: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _header(run: Run, title: str) -> str:
    settings = run.settings
    method_items = "".join(
        f'<li><b>{esc(m)}</b> <span class="dim">({"signed" if info(m).signed else "unsigned"}'
        + (f"; {esc(', '.join(f'{k}={v}' for k, v in settings[m].items()))}" if settings.get(m) else "")
        + ")</span></li>"
        for m in run.methods
    )
    facts = [
        ("model", esc(run.model or "unnamed")),
        ("samples", f"{len(run):,}"),
        ("explains", esc(run.target_type.title)),
        ("file", esc(os.path.basename(run.path))),
        ("written with", f"alti {esc(run.version or '?')}; report by alti {esc(__version__)}"),
    ]
    if run.protocol:
        protocol = ", ".join(f"{k}={v}" for k, v in run.protocol.items())
        facts.append(("deletion curves", esc(protocol)))
    out = [f"<h1>{esc(title)}</h1>", '<dl class="facts">']
    out += [f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts]
    out.append(f'</dl><p class="dim">methods:</p><ul class="methods">{method_items}</ul>')
    if run.problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in run.problems)
        out.append(
            '<div class="problems" role="note"><b>Problems found reading the file</b> '
            f"(the report shows the {len(run):,} valid records):<ul>{items}</ul></div>"
        )
    return "\n".join(out)


def best_cells(table: dict[str, dict[str, float]]) -> dict[str, set[str]]:
    """For each column, the methods holding its best value (ties all; NaN never)."""
    out: dict[str, set[str]] = {}
    for key, _, higher in COLUMNS:
        finite = {m: row[key] for m, row in table.items() if math.isfinite(row[key])}
        if finite:
            best = (max if higher else min)(finite.values())
            out[key] = {m for m, v in finite.items() if v == best}
        else:
            out[key] = set()
    return out


def _faithfulness(run: Run) -> str:
    table = faithfulness_table(run)
    if not table:
        return (
            '<p class="note" id="no-curves">This run has no deletion curves: write the run with '
            "<code>alti attribute --curves</code> for the faithfulness table and the curve sorts.</p>"
        )
    bold = best_cells(table)
    head = "".join(f"<th>{esc(heading)}</th>" for _, heading, _ in COLUMNS)
    rows = []
    for method, row in table.items():
        cells = []
        for key, _, _ in COLUMNS:
            text = _number(row[key])
            cells.append(
                f'<td data-key="{key}" data-value="{row[key]!r}">'
                + (f"<b>{text}</b>" if method in bold[key] else text)
                + "</td>"
            )
        rows.append(f'<tr data-method="{esc(method)}"><th>{esc(method)}</th>{"".join(cells)}</tr>')
    return (
        f'<table class="numbers" id="faithfulness"><tr><th>method</th>{head}</tr>{"".join(rows)}</table>'
        '<p class="dim">Means over the samples (as <code>alti evaluate --attributions</code>); '
        "the best of each column in bold.</p>"
    )


def _context(run: Run) -> str:
    """An answer run's context table: each method's mean drop@k and support ranks, beside
    the random baseline's drops (``alti evaluate``'s table for answers)."""
    table = context_table(run)
    measures = run.context_measures
    head = "".join(f"<th>{esc(m)}</th>" for m in measures)
    rows = "".join(
        f'<tr data-method="{esc(name)}"><th>{esc(name)}</th>'
        + "".join(f'<td data-key="{esc(m)}">{_number(row.get(m, math.nan))}</td>' for m in measures)
        + "</tr>"
        for name, row in table.items()
    )
    return (
        f'<table class="numbers" id="context"><tr><th>method</th>{head}</tr>{rows}</table>'
        '<p class="dim">Means over the answers. drop@k: how much log p(answer) falls when the k segments a '
        "method ranks highest are removed from the prompt (higher: the method found what the answer uses); "
        "random removes random segments. support_mrr and support_top1: where a method ranks the segment a "
        "row names as the answer's support (1 = first).</p>"
    )


def _agreement(run: Run) -> str:
    matrix = agreement(run)
    methods = run.methods
    head = "".join(f"<th>{esc(m)}</th>" for m in methods)
    rows = []
    for a in methods:
        cells = []
        for b in methods:
            rho = matrix[a][b]
            if math.isfinite(rho):
                background = DIVERGING.rgb(rho)
                style = f"background:{to_hex(background)};color:{to_hex(text_color(background))}"
                title = f"{esc(a)} vs {esc(b)}: ρ = {rho:.4f}"
                cells.append(f'<td style="{style}" title="{title}" data-value="{rho!r}">{rho:.2f}</td>')
            else:
                cells.append(f'<td title="{esc(a)} vs {esc(b)}: undefined" data-value="nan">–</td>')
        rows.append(f"<tr><th>{esc(a)}</th>{''.join(cells)}</tr>")
    return (
        f'<table class="numbers heat" id="agreement"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
        '<p class="dim">Mean per-sample Spearman ρ of the token rankings (non-special tokens; as '
        "<code>alti evaluate --agreement</code>): blue = opposite, white = unrelated, red = the same order.</p>"
    )


def _top_tokens(run: Run) -> str:
    blocks = []
    for method in run.methods:
        stats = top_tokens(run, method)
        rows = "".join(
            f'<tr><td class="tokname" title="{esc(s.token)}">{esc(display_token(s.token))}</td>'
            f"<td>{score_text(s.mean)}</td><td>{s.count:,}</td></tr>"
            for s in stats
        )
        if not rows:
            rows = '<tr><td colspan="3" class="dim">no token seen often enough</td></tr>'
        blocks.append(
            f'<table class="numbers top" data-method="{esc(method)}"><caption>{esc(method)}</caption>'
            f"<tr><th>token</th><th>mean</th><th>count</th></tr>{rows}</table>"
        )
    return (
        f'<div class="grid">{"".join(blocks)}</div><p class="dim">Highest mean score over a token\'s occurrences '
        "(special tokens left out; tokens seen fewer than twice, or than once in 100 samples, not ranked).</p>"
    )


_HIST_W, _HIST_H, _HIST_PAD = 220, 64, 14


def histogram_svg(values: np.ndarray, span: tuple[float, float] | None = None, digits: int = 3) -> str:
    """An inline SVG bar chart of ``values`` (:func:`alti.runs.histogram`), each bar titled
    with its range and count."""
    counts, edges = histogram(values, span=span)
    peak = max(int(counts.max()), 1) if len(counts) else 1
    width = _HIST_W / len(counts)
    bars = []
    for k, count in enumerate(counts):
        height = (_HIST_H - 2) * int(count) / peak
        bars.append(
            f'<rect x="{k * width:.1f}" y="{_HIST_H - height:.1f}" width="{max(width - 1, 1):.1f}" '
            f'height="{height:.1f}"><title>{edges[k]:.{digits}f} to {edges[k + 1]:.{digits}f}: '
            f"{int(count):,}</title></rect>"
        )
    low, high = f"{edges[0]:.{digits}f}", f"{edges[-1]:.{digits}f}"
    total = _HIST_H + _HIST_PAD
    return (
        f'<svg class="hist" width="{_HIST_W}" height="{total}" viewBox="0 0 {_HIST_W} {total}" role="img">'
        f'<line x1="0" y1="{_HIST_H}" x2="{_HIST_W}" y2="{_HIST_H}"/>{"".join(bars)}'
        f'<text x="0" y="{total - 2}">{low}</text><text x="{_HIST_W}" y="{total - 2}" text-anchor="end">{high}</text>'
        "</svg>"
    )


def _span(arrays: list[np.ndarray]) -> tuple[float, float] | None:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if not len(finite) or finite.min() == finite.max():
        return None
    return float(finite.min()), float(finite.max())


def _histograms(run: Run) -> str:
    figures = [
        ("confidence", "probability of the prediction", histogram_svg(run.confidence, (0.0, 1.0))),
        ("length", "non-special tokens", histogram_svg(run.lengths.astype(np.float64), digits=0)),
    ]
    if run.has_curves:
        for metric in CURVE_SORTS:
            per_method = [run.curve_scores(m, metric) for m in run.methods]
            span = _span(per_method)
            for method, values in zip(run.methods, per_method):
                figures.append((f"{metric} · {method}", "per-sample score", histogram_svg(values, span)))
    blocks = "".join(
        f'<figure><figcaption><b>{esc(name)}</b> <span class="dim">{esc(what)}</span></figcaption>{svg}</figure>'
        for name, what, svg in figures
    )
    return f'<div class="grid">{blocks}</div>'


def _legend(run: Run) -> str:
    used: dict[str, tuple[Scale, list[str]]] = {}
    for method in run.methods:
        scale = scale_for(info(method).signed)
        used.setdefault(scale.name, (scale, []))[1].append(method)
    out = []
    for scale, names in used.values():
        swatches = "".join(f'<span class="swatch" style="background:{color}"></span>' for _, color in scale.samples(9))
        out.append(f'<p class="legend">{esc(", ".join(names))}: {swatches} {esc(scale.legend)}</p>')
    return "".join(out)


_PAGER = (
    '<div class="pager {where}"><button class="first" title="first page">«</button>'
    '<button class="prev" title="previous page">‹ previous</button><span class="where"></span>'
    '<button class="next" title="next page">next ›</button><button class="last" title="last page">»</button></div>'
)


def to_html(run: Run, title: str | None = None, page_size: int = PAGE_SIZE) -> str:
    """The report page of ``run``."""
    title = title or f"alti report: {os.path.basename(run.path)}"
    # a big run is millions of small objects and the page's data more of them, none in a
    # cycle: the collector's passes over them would cost a fifth of the time
    collecting = gc.isenabled()
    gc.disable()
    try:
        palette, colours = token_colours(run)
        data = page_data(run, colours, page_size)
    finally:
        if collecting:
            gc.enable()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>{esc(title)}</title>",
        f"<style>\n{asset('report.css')}\n{palette_css(palette)}</style></head>",
        "<body>",
        _header(run, title),
        "<h2>Faithfulness</h2>",
        _faithfulness(run),
        *(["<h2>Answers and their context</h2>", _context(run)] if run.context_measures else []),
        "<h2>Agreement between methods</h2>",
        _agreement(run),
        "<h2>Top tokens</h2>",
        _top_tokens(run),
        "<h2>Per-sample distributions</h2>",
        _histograms(run),
        "<h2>Samples</h2>",
        _legend(run),
        '<p class="dim">Hover a token for its score. The sort, search and page are kept in the address (#…), '
        "so a view can be shared as a link.</p>",
        "\n" + asset("report-controls.html"),
        _PAGER.format(where="top"),
        '<div id="samples"></div>',
        _PAGER.format(where="bottom"),
        f'<script type="application/json" id="alti-data">{script_json(data)}</script>',
        f"<script>\n{asset('report.js')}</script>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def write(run: Run, path: str | os.PathLike, title: str | None = None, page_size: int = PAGE_SIZE) -> None:
    """Write the report of ``run`` to ``path`` atomically (never a half-written page)."""
    write_atomic(path, to_html(run, title, page_size))
