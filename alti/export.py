"""Renderings of an :class:`~alti.results.Explanation`: ANSI, JSON, HTML, SVG, LaTeX.

Every rendering shows one row per method, each token coloured by its score on
the method's scale (:mod:`alti.colors`: sequential for unsigned methods,
diverging for signed ones, normalised per row), and carries the model name, the
methods, their settings and the library version.  :func:`write_atomic` writes
any of them without ever leaving a half-written file behind.
"""

from __future__ import annotations

import functools
import html
import io
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from alti.colors import Scale, normalize, scale_for, text_color, to_hex
from alti.errors import InputError
from alti.results import Explanation


@dataclass(frozen=True)
class Row:
    """One method's scores, ready to colour."""

    method: str
    scores: np.ndarray
    normalized: np.ndarray
    scale: Scale

    def colors(self) -> list[tuple[str, str]]:
        """``(background, text)`` hex colours, one pair per token."""
        pairs = []
        for value in self.normalized:
            background = self.scale.rgb(value)
            pairs.append((to_hex(background), to_hex(text_color(background))))
        return pairs


def method_is_signed(method: str) -> bool:
    from alti.catalog import info

    return info(method).signed


def selected_methods(explanation: Explanation, methods: Iterable[str] | None = None) -> list[str]:
    """``methods`` (default: every method explained), checked against the explanation."""
    names = list(explanation.scores) if methods is None else list(methods)
    missing = [m for m in names if m not in explanation.scores]
    if missing:
        raise InputError(
            f"method {missing[0]!r} was not computed for this explanation; "
            f"it has: {', '.join(explanation.scores) or 'none'}"
        )
    return names


def rows(explanation: Explanation, methods: Iterable[str] | None = None) -> list[Row]:
    """The rows to draw, in order; ``methods`` defaults to every method explained."""
    out = []
    for method in selected_methods(explanation, methods):
        scale = scale_for(method_is_signed(method))
        scores = np.asarray(explanation.scores[method], dtype=np.float64)
        out.append(Row(method, scores, normalize(scores, scale.signed, explanation.special), scale))
    return out


def metadata(explanation: Explanation, methods: list[str]) -> dict[str, Any]:
    """What every export carries: model, methods, their settings, library version."""
    from alti import __version__

    return {
        "model": explanation.model_name,
        "methods": list(methods),
        "settings": {m: explanation.settings.get(m, {}) for m in methods},
        "version": explanation.version or __version__,
        "truncated": bool(explanation.truncated),
        "target_position": None if explanation.target_position is None else int(explanation.target_position),
    }


#: how a token that is only a space (a lone byte-level or sentencepiece marker) is shown
VISIBLE_SPACE = "\u2423"


def display_token(token: str) -> str:
    """A token as shown to people: byte-level and sentencepiece space markers removed; a token
    that is nothing but a space shows as ``␣``."""
    shown = token.replace("\u0120", "").replace("\u2581", "").replace("\u010a", "\\n")
    if shown:
        return shown
    return VISIBLE_SPACE if token and set(token) <= {"\u0120", "\u2581"} else token


TOP_SHOWN = 5


def prediction_line(explanation: Explanation) -> str:
    """One line: the prediction (for an LM, the likeliest next tokens) and what is explained."""
    p = explanation.prediction
    target = explanation.target
    answer = None if target is None else target.answer(explanation.tokens)
    if answer is not None:
        steps = len(answer["ids"])
        return f"answer: {answer['text']!r} ({steps} tokens after a {answer['start']}-token prompt)"
    if p.ids is None:
        probs = "  ".join(f"{label} {float(q):.3f}" for label, q in zip(p.labels, p.probabilities))
        line = f"prediction: {p.label} ({p.probability:.1%})   {probs}"
    else:
        shown = "  ".join(f"{label!r} {float(q):.3f}" for label, q in list(zip(p.labels, p.probabilities))[:TOP_SHOWN])
        heading = explanation.target.heading.lower() if explanation.target is not None else "prediction"
        line = f"{heading}: {p.label!r} ({p.probability:.1%})   {shown}"
    explained = explained_line(explanation)
    return f"{line}   · {explained}" if explained else line


def explained_line(explanation: Explanation) -> str:
    """What the scores explain, when that is not simply the predicted class or token."""
    target = explanation.target
    if target is None:
        return ""
    if target.foil is not None:
        return f"explaining {target.name} against {target.foil_name}"
    if target.label != explanation.prediction.label:
        return f"explaining {target.name}"
    return ""


def logit_terms_line(explanation: Explanation) -> str:
    """How the explained logit splits into the tokens' part and the parts of no token (ALTI-Logit)."""
    terms = explanation.logit_terms
    if not terms:
        return ""
    parts = [
        ("tokens", terms["tokens"]),
        ("MLPs", sum(terms["mlp"])),
        ("attention biases", sum(terms["attention_bias"])),
        ("final-norm bias", terms["final_norm_bias"]),
        ("head bias", terms["head_bias"]),
    ]
    shown = [(name, value) for name, value in parts if value]
    body = " ".join(
        f"{value:.3f} {name}" if i == 0 else f"{'+' if value >= 0 else '-'} {abs(value):.3f} {name}"
        for i, (name, value) in enumerate(shown)
    )
    kind = "logit difference" if explanation.target is not None and explanation.target.contrastive else "logit"
    return f"{kind} {terms['logit']:.3f} = {body}"


def _settings_text(meta: dict[str, Any]) -> str:
    parts = []
    for method, settings in meta["settings"].items():
        if settings:
            inner = ", ".join(f"{k}={v}" for k, v in settings.items())
            parts.append(f"{method}({inner})")
    return "; ".join(parts) or "defaults"


def _footer_text(meta: dict[str, Any]) -> str:
    text = (
        f"model: {meta['model'] or 'unnamed'} | methods: {', '.join(meta['methods'])} | "
        f"settings: {_settings_text(meta)} | alti {meta['version']}"
    )
    if meta["truncated"]:
        text += " | input truncated"
    return text


def _scales_used(table: list[Row]) -> list[tuple[Scale, list[str]]]:
    used: dict[str, tuple[Scale, list[str]]] = {}
    for row in table:
        used.setdefault(row.scale.name, (row.scale, []))[1].append(row.method)
    return list(used.values())


# ---------------------------------------------------------------- JSON


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    return value


def to_dict(explanation: Explanation, methods: Iterable[str] | None = None, layers: bool = False) -> dict[str, Any]:
    """The JSON document: :meth:`Explanation.to_dict` narrowed to ``methods``, plus metadata."""
    names = selected_methods(explanation, methods)
    doc = explanation.to_dict(layers=layers)
    doc["attributions"] = {m: doc["attributions"][m] for m in names}
    if "steps" in doc:
        doc["steps"] = {m: doc["steps"][m] for m in names if m in doc["steps"]}
    for segment in doc.get("segments", []):
        segment["scores"] = {m: segment["scores"][m] for m in names}
    if layers:
        doc["layers"] = {m: doc["layers"][m] for m in names if m in doc["layers"]}
    doc.update(metadata(explanation, names))
    return _plain(doc)


def to_json(explanation: Explanation, methods: Iterable[str] | None = None, layers: bool = False) -> str:
    return json.dumps(to_dict(explanation, methods, layers), ensure_ascii=False, allow_nan=False) + "\n"


# ---------------------------------------------------------------- ANSI


def to_ansi(explanation: Explanation, methods: Iterable[str] | None = None):
    """A rich renderable: the prediction, one coloured row per method, a legend."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from alti.colors import rich_style

    table = rows(explanation, methods)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for row in table:
        line = Text()
        for i, (token, value) in enumerate(zip(explanation.tokens, row.normalized)):
            if i:
                line.append(" ")
            line.append(display_token(token), style=rich_style(value, row.scale))
        grid.add_row(row.method, line)
    legend = Text()
    for scale, names in _scales_used(table):
        legend.append(f"{', '.join(names)}: ", style="dim")
        for value, _ in scale.samples(7):
            legend.append("  ", style=rich_style(value, scale))
        legend.append(f" {scale.legend}\n", style="dim")
    terms = logit_terms_line(explanation)
    if terms:
        legend.append(terms + "\n", style="dim")
    legend.append(_footer_text(metadata(explanation, [r.method for r in table])), style="dim")
    parts = [Text(prediction_line(explanation), style="bold"), grid]
    if explanation.segments:
        parts.append(segments_table(explanation, [r.method for r in table]))
    return Group(*parts, legend)


def segments_table(explanation: Explanation, methods: list[str]):
    """Each segment's score per method (the sum of its tokens'), the segment's text last."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, padding=(0, 1), show_edge=False)
    for method in methods:
        table.add_column(Text(method), justify="right")
    table.add_column(Text("segment"))
    for segment in explanation.segments or []:
        cells = [Text(f"{segment.score(explanation.scores[m]):.3f}") for m in methods]
        table.add_row(*cells, Text(segment.text))
    return table


def render_ansi(explanation: Explanation, methods: Iterable[str] | None = None, width: int = 100) -> str:
    """:func:`to_ansi` as a string of 256-colour escape sequences (for files)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="256", width=width)
    console.print(to_ansi(explanation, methods))
    return buffer.getvalue()


# ---------------------------------------------------------------- HTML


@functools.cache
def asset(name: str) -> str:
    """The text of ``alti/assets/<name>``: a page's style, script or markup, inlined into
    the page (this one's and ``alti report``'s) so that it needs no network."""
    return (resources.files("alti") / "assets" / name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script>`` (and inside XML): no raw ``<``, ``>``, ``&``."""
    text = json.dumps(_plain(data), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def to_html(explanation: Explanation, methods: Iterable[str] | None = None) -> str:
    """A standalone HTML page (also well-formed XML)."""
    esc = html.escape
    table = rows(explanation, methods)
    meta = metadata(explanation, [r.method for r in table])
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"/>',
        f"<title>alti: {esc(meta['model'] or 'explanation')}</title>",
        f"<style>\n{asset('explain.css')}</style></head>",
        "<body>",
        f'<p class="prediction">{esc(prediction_line(explanation))}</p>',
        '<table class="alti">',
    ]
    for row in table:
        spans = []
        for token, score, (background, fg) in zip(explanation.tokens, row.scores, row.colors()):
            spans.append(
                f'<span class="tok" style="background:{background};color:{fg}" '
                f'title="{esc(token)}: {score:.4g}">{esc(display_token(token))}</span>'
            )
        out.append(f'<tr><th scope="row">{esc(row.method)}</th><td>{" ".join(spans)}</td></tr>')
    out.append("</table>")
    for scale, names in _scales_used(table):
        swatches = "".join(f'<span class="swatch" style="background:{color}"></span>' for _, color in scale.samples(9))
        out.append(f'<p class="legend">{esc(", ".join(names))}: {swatches} {esc(scale.legend)}</p>')
    out.append(f"<footer>{esc(_footer_text(meta))}</footer>")
    out.append(f'<script type="application/json" id="alti-metadata">{_json_for_script(meta)}</script>')
    out.append("</body>\n</html>\n")
    return "\n".join(out)


# ---------------------------------------------------------------- SVG

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml(text: str) -> str:
    return html.escape(_XML_INVALID.sub("\ufffd", text))


_FONT = 13
_CHAR = 0.6 * _FONT  # monospace advance
_LINE = 22
_PAD = 12
_WIDTH = 960


def to_svg(explanation: Explanation, methods: Iterable[str] | None = None) -> str:
    """A standalone SVG picture; tokens wrap at a fixed width (monospace layout)."""
    table = rows(explanation, methods)
    meta = metadata(explanation, [r.method for r in table])
    label_width = max(len(r.method) for r in table) * _CHAR + 2 * _PAD if table else 0
    x0, x_max = _PAD + label_width, _WIDTH - _PAD
    body: list[str] = [
        f'<text x="{_PAD}" y="{_PAD + _FONT}" font-weight="bold">{_xml(prediction_line(explanation))}</text>'
    ]
    y = _PAD + _LINE + 8
    for row in table:
        body.append(f'<text x="{_PAD}" y="{y + _FONT}" font-weight="bold">{_xml(row.method)}</text>')
        x = x0
        for token, score, (background, fg) in zip(explanation.tokens, row.scores, row.colors()):
            shown = display_token(token)
            width = len(shown) * _CHAR + 6
            if x + width > x_max and x > x0:
                x, y = x0, y + _LINE
            body.append(
                f"<g><title>{_xml(token)}: {score:.4g}</title>"
                f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_LINE - 4}" rx="3" fill="{background}"/>'
                f'<text x="{x + 3:.1f}" y="{y + _FONT}" fill="{fg}">{_xml(shown)}</text></g>'
            )
            x += width + 4
        y += _LINE + 6
    y += 4
    for scale, names in _scales_used(table):
        label = f"{', '.join(names)}: "
        body.append(f'<text x="{_PAD}" y="{y + 11}" font-size="11" fill="#555">{_xml(label)}</text>')
        x = _PAD + len(label) * 0.6 * 11
        for _, color in scale.samples(9):
            body.append(f'<rect x="{x:.1f}" y="{y + 2}" width="14" height="11" fill="{color}"/>')
            x += 14
        body.append(f'<text x="{x + 6:.1f}" y="{y + 11}" font-size="11" fill="#555">{_xml(scale.legend)}</text>')
        y += 16
    body.append(f'<text x="{_PAD}" y="{y + 11}" font-size="11" fill="#555">{_xml(_footer_text(meta))}</text>')
    height = y + 11 + _PAD
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
            f'viewBox="0 0 {_WIDTH} {height}" font-family="monospace" font-size="{_FONT}">',
            f"<title>alti: {_xml(meta['model'] or 'explanation')}</title>",
            f"<desc>{_xml(_footer_text(meta))}</desc>",
            f"<metadata>{_json_for_script(meta)}</metadata>",
            '<rect width="100%" height="100%" fill="#ffffff"/>',
            *body,
            "</svg>",
            "",
        ]
    )


# ---------------------------------------------------------------- LaTeX

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    VISIBLE_SPACE: r"\textvisiblespace{}",
}


def one_line(text: str) -> str:
    """``text`` with every kind of line break and control character turned into a space: a
    carriage return ends a TeX line as a line feed does, and so may a vertical tab, a form
    feed, NEL or U+2028."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def latex_escape(text: str) -> str:
    """Text with LaTeX's special characters made literal, on one line."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in one_line(text))


def _latex_rgb(hex_color: str) -> str:
    return ",".join(str(int(hex_color[i : i + 2], 16)) for i in (1, 3, 5))


def to_latex(explanation: Explanation, methods: Iterable[str] | None = None) -> str:
    """A paper-ready LaTeX fragment: one ``\\colorbox`` per token.  Needs ``\\usepackage{xcolor}``."""
    table = rows(explanation, methods)
    meta = metadata(explanation, [r.method for r in table])
    comment = one_line(_footer_text(meta))  # a line break would end the comment and run the rest as TeX
    out = [
        f"% {comment}",
        "% Requires \\usepackage{xcolor} in the preamble (and \\usepackage[T1]{fontenc} to print < > |).",
        "\\begingroup",
        "\\setlength{\\fboxsep}{1.5pt}",
        f"\\noindent {latex_escape(prediction_line(explanation))}\\par\\smallskip",
    ]
    for row in table:
        boxes = []
        for token, (background, fg) in zip(explanation.tokens, row.colors()):
            content = f"\\strut {latex_escape(display_token(token))}"
            if fg != "#000000":
                content = f"\\textcolor[RGB]{{{_latex_rgb(fg)}}}{{{content}}}"
            boxes.append(f"\\colorbox[RGB]{{{_latex_rgb(background)}}}{{{content}}}")
        out.append(f"\\noindent\\textbf{{{latex_escape(row.method)}}}\\quad")
        out.append("\n".join(boxes) + "\\par\\smallskip")
    for scale, names in _scales_used(table):
        out.append(f"\\noindent{{\\footnotesize {latex_escape(', '.join(names))}: {latex_escape(scale.legend)}}}\\par")
    out.append("\\endgroup")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class Format:
    """An output format: its renderer and the file suffixes that choose it (the first is the one
    files are written with; none: never chosen by a file name).  ``layers``: whether it can
    carry the per-layer matrices."""

    name: str
    render: Callable[..., str]
    suffixes: tuple[str, ...] = ()
    layers: bool = False


#: Every output format by name, the one list ``alti explain --format``, ``--output`` suffixes
#: and the explorer's export (each format with a suffix) read.  A new format is one entry here.
REGISTRY: dict[str, Format] = {
    f.name: f
    for f in (
        Format("ansi", lambda e, methods, layers: render_ansi(e, methods), (".ansi", ".txt")),
        Format("json", to_json, (".json",), layers=True),
        Format("html", lambda e, methods, layers: to_html(e, methods), (".html", ".htm")),
        Format("svg", lambda e, methods, layers: to_svg(e, methods), (".svg",)),
        Format("latex", lambda e, methods, layers: to_latex(e, methods), (".tex",)),
    )
}
FORMATS = tuple(REGISTRY)
SUFFIXES = {suffix: f.name for f in REGISTRY.values() for suffix in f.suffixes}
#: what the explorer's export writes: every format meant for a file (terminal colour codes are not)
FILE_FORMATS = tuple(f for f in REGISTRY.values() if f.name != "ansi")


def render(explanation: Explanation, fmt: str, methods: Iterable[str] | None = None, layers: bool = False) -> str:
    """Any format as text (ANSI as 256-colour escape sequences)."""
    if fmt not in REGISTRY:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return REGISTRY[fmt].render(explanation, methods, layers)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file in the same directory.

    Readers see either the old file or the complete new one, never a partial
    write; the temporary file is removed if anything fails.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    temp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
