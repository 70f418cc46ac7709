"""Exporters on a hand-built Explanation: well-formed, escaped, coloured by the scale."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from alti import __version__, export
from alti.colors import DIVERGING, SEQUENTIAL
from alti.errors import InputError
from alti.results import Explanation, Prediction

SIGNED = {"alti": False, "rollout": False, "gxi_dot": True}
TOKENS = ["[CLS]", "a&b", "100%", "$x#", "_{}", "~^\\", "<i>", "Ġword", "Ġ", "[SEP]"]


@pytest.fixture(autouse=True)
def known_signedness(monkeypatch):
    monkeypatch.setattr(export, "method_is_signed", SIGNED.__getitem__)


@pytest.fixture
def explanation() -> Explanation:
    n = len(TOKENS)
    rng = np.random.default_rng(0)
    layers = rng.random((2, n, n))
    layers /= layers.sum(-1, keepdims=True)
    return Explanation(
        text="a&b 100% $x# _{} ~^\\ <i> word",
        tokens=TOKENS,
        input_ids=list(range(101, 101 + n)),
        prediction=Prediction("positive", 1, np.array([0.25, 0.75]), ["negative", "positive"]),
        scores={
            "alti": np.linspace(0.0, 1.0, n),
            "rollout": np.full(n, 1.0 / n),
            "gxi_dot": np.array([0.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 0.1, -0.3, 0.0]),
        },
        layers={"alti": layers, "rollout": layers},
        special=np.array([True] + [False] * (n - 2) + [True]),
        model_name="tiny/bert & co",
        settings={"alti": {"distance": "l1"}, "gxi_dot": {"baseline": "mask"}},
        version=__version__,
    )


def backgrounds(markup: str) -> list[str]:
    return re.findall(r"background:(#[0-9a-f]{6})", markup)


def test_json_schema(explanation):
    doc = json.loads(export.to_json(explanation))
    assert doc["tokens"] == TOKENS
    assert doc["prediction"]["label"] == "positive"
    assert doc["prediction"]["index"] == 1
    assert doc["prediction"]["probabilities"] == [0.25, 0.75]
    assert set(doc["attributions"]) == {"alti", "rollout", "gxi_dot"}
    assert all(len(v) == len(TOKENS) for v in doc["attributions"].values())
    assert doc["attributions"]["gxi_dot"][1] == -2.0
    assert "layers" not in doc
    assert doc["model"] == "tiny/bert & co"
    assert doc["version"] == __version__
    assert doc["methods"] == ["alti", "rollout", "gxi_dot"]
    assert doc["settings"]["alti"] == {"distance": "l1"}
    assert doc["special"][0] is True and doc["truncated"] is False


def test_json_layers_only_for_matrix_methods(explanation):
    doc = json.loads(export.to_json(explanation, ["alti", "gxi_dot"], layers=True))
    assert list(doc["attributions"]) == ["alti", "gxi_dot"]
    assert list(doc["layers"]) == ["alti"]
    n = len(TOKENS)
    assert np.array(doc["layers"]["alti"]).shape == (2, n, n)
    np.testing.assert_allclose(doc["layers"]["alti"], explanation.layers["alti"])


def test_unknown_method_in_export_is_an_input_error(explanation):
    with pytest.raises(InputError, match="it has: alti, rollout, gxi_dot"):
        export.to_html(explanation, ["norm"])


class _Checker(HTMLParser):
    VOID = {"meta", "br", "img", "link", "input", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_well_formed_and_escaped(explanation):
    page = export.to_html(explanation)
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    ET.fromstring(page.split("\n", 1)[1])  # also well-formed XML (after the doctype)
    text = "".join(checker.text)
    for token in ["a&b", "100%", "<i>", "word"]:
        assert token in text
    assert "<i>" not in page.replace("&lt;i&gt;", "")
    assert "Ġ" not in text
    assert "tiny/bert &amp; co" in page and __version__ in page
    meta = re.search(r'id="alti-metadata">(.*?)</script>', page).group(1)
    assert json.loads(meta)["settings"]["gxi_dot"] == {"baseline": "mask"}


def test_html_colours_follow_the_scale(explanation):
    page = export.to_html(explanation, ["alti", "gxi_dot"])
    colours = backgrounds(page)
    n = len(TOKENS)
    alti, signed = colours[:n], colours[n : 2 * n]
    assert alti[1] == SEQUENTIAL.hex(1 / (n - 2)) and alti[-2] == SEQUENTIAL.hex(1.0)
    assert signed[1] == DIVERGING.hex(-1.0)  # most negative: blue
    assert signed[6] == DIVERGING.hex(1.0)  # most positive: red
    assert signed[1] != signed[6]
    neg = tuple(int(signed[1][i : i + 2], 16) for i in (1, 3, 5))
    pos = tuple(int(signed[6][i : i + 2], 16) for i in (1, 3, 5))
    assert neg[2] > neg[0] and pos[0] > pos[2]


def test_svg_is_well_formed(explanation):
    svg = export.to_svg(explanation)
    root = ET.fromstring(svg.encode("utf-8"))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    assert "a&b" in texts and "<i>" in texts and "word" in texts
    fills = [r.get("fill") for r in root.iter(f"{ns}rect")]
    assert DIVERGING.hex(-1.0) in fills and DIVERGING.hex(1.0) in fills
    assert SEQUENTIAL.hex(1.0) in fills
    desc = root.find(f"{ns}desc").text
    assert "tiny/bert & co" in desc and __version__ in desc and "gxi_dot" in desc
    height = float(root.get("height"))
    assert all(float(r.get("y", 0)) < height for r in root.iter(f"{ns}rect"))


def test_svg_wraps_long_inputs(explanation):
    n = 120
    long = Explanation(
        text="w " * n,
        tokens=["w"] * n,
        input_ids=[1] * n,
        prediction=explanation.prediction,
        scores={"alti": np.ones(n)},
    )
    root = ET.fromstring(export.to_svg(long).encode("utf-8"))
    ns = "{http://www.w3.org/2000/svg}"
    width = float(root.get("width"))
    boxes = [r for r in root.iter(f"{ns}rect") if r.get("rx")]
    assert len(boxes) == n
    assert all(float(r.get("x")) + float(r.get("width")) <= width for r in boxes)
    assert len({r.get("y") for r in boxes}) > 1


def test_latex_escapes_specials(explanation):
    tex = export.to_latex(explanation, ["alti"])
    for raw, escaped in [
        ("a&b", r"a\&b"),
        ("100%", r"100\%"),
        ("$x#", r"\$x\#"),
        ("_{}", r"\_\{\}"),
        ("~^\\", r"\textasciitilde{}\textasciicircum{}\textbackslash{}"),
        ("Ġ", r"\textvisiblespace{}"),  # a token that is only a space
    ]:
        assert escaped in tex, raw
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    unescaped = re.sub(r"\\[&%$#_{}]", "", body)
    unescaped = re.sub(r"\\[A-Za-z]+", "", unescaped)
    assert not re.search(r"[&%$#_~^]", unescaped)
    assert r"\textbf{alti}" in tex
    assert tex.count(r"\colorbox[RGB]") == len(TOKENS)
    assert "\\usepackage{xcolor}" in tex and "tiny/bert & co" in tex and __version__ in tex


def test_a_token_that_is_only_a_space_is_shown_as_one():
    assert [export.display_token(t) for t in ["Ġword", "▁word", "Ġ", "▁", "ĠĠ", "Ċ", "", "x"]] == [
        "word",
        "word",
        "␣",
        "␣",
        "␣",
        "\\n",
        "",
        "x",
    ]


def test_latex_braces_balance(explanation):
    tex = export.to_latex(explanation)
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    body = re.sub(r"\\[{}]", "", body)
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


def test_latex_colours_and_text_colour(explanation):
    tex = export.to_latex(explanation, ["gxi_dot"])
    boxes = re.findall(r"\\colorbox\[RGB\]\{(\d+,\d+,\d+)\}\{(\\textcolor\[RGB\]\{255,255,255\})?", tex)
    blue = ",".join(str(c) for c in DIVERGING.rgb(-1.0))
    red = ",".join(str(c) for c in DIVERGING.rgb(1.0))
    assert boxes[1] == (blue, r"\textcolor[RGB]{255,255,255}")
    assert boxes[6] == (red, r"\textcolor[RGB]{255,255,255}")
    assert boxes[3][1] == ""  # white box, black text


def test_ansi_rows_and_legend(explanation):
    text = export.render_ansi(explanation, width=200)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = plain.splitlines()
    assert lines[0].startswith("prediction: positive (75.0%)")
    assert lines[1].startswith("alti ") and "a&b" in lines[1] and "word" in lines[1]
    assert lines[2].startswith("rollout ") and lines[3].startswith("gxi_dot ")
    assert any("blue = negative" in line for line in lines)
    assert any("deep purple" in line for line in lines)
    assert "tiny/bert & co" in plain and __version__ in plain
    # 256-colour background sequences only (no truecolor 48;2)
    assert "\x1b[" in text and "48;5;" in text and "48;2;" not in text


def test_render_dispatches_every_format(explanation):
    for fmt in export.FORMATS:
        assert export.render(explanation, fmt)
    with pytest.raises(InputError, match="choose one of"):
        export.render(explanation, "pdf")


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.html"
    export.write_atomic(target, "first")
    export.write_atomic(target, "second ünïcode")
    assert target.read_text(encoding="utf-8") == "second ünïcode"
    assert os.listdir(tmp_path) == ["out.html"]


def test_write_atomic_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        export.write_atomic(target, b"bytes are not text")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]
    with pytest.raises(IsADirectoryError):
        export.write_atomic(tmp_path, "x")
    assert os.listdir(tmp_path) == ["out.json"]


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex with xcolor")
def test_latex_compiles(explanation, tmp_path):
    (tmp_path / "fragment.tex").write_text(export.to_latex(explanation), encoding="utf-8")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{xcolor}\n"
        "\\begin{document}\n\\input{fragment.tex}\n\\end{document}\n"
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_the_logit_split_line_starts_with_its_sign():
    from alti.export import logit_terms_line
    from alti.results import Explanation, Prediction
    from alti.targets import NextTokenTarget

    explanation = Explanation(
        "t",
        ["a"],
        [1],
        Prediction("x", 0, np.array([1.0]), ["x"]),
        {"alti_logit": np.array([-1.197])},
        target=NextTokenTarget(0, label="x"),
        logit_terms={
            "logit": 10.059,
            "tokens": -1.197,
            "mlp": [11.256],
            "attention_bias": [0.0],
            "final_norm_bias": 0.0,
            "head_bias": 0.0,
        },
    )
    assert logit_terms_line(explanation) == "logit 10.059 = -1.197 tokens + 11.256 MLPs"


@pytest.mark.parametrize("breaker", ["\r", "\n", "\r\n", "\v", "\f", "\x85", "\u2028", "\u2029", "\x1c"])
def test_no_line_break_in_a_name_ends_the_latex_comment(explanation, breaker):
    """Everything a file or a user names (the model) stays inside the comment: TeX ends a line at
    \\r as at \\n, and the rest of that line would run as TeX."""
    payload = breaker + r"\message{INJECTED}\input{/etc/passwd}"
    explanation = dataclasses.replace(
        explanation, model_name="tiny" + payload, tokens=["x" + breaker + "y"] * 1 + explanation.tokens[1:]
    )
    tex = export.to_latex(explanation, ["alti"])
    lines = re.split(r"\r\n|[\n\r]", tex)
    assert not any(r"\message" in line and not line.startswith("%") for line in lines)
    assert all(ch not in tex for ch in "\r\v\f\x85\u2028\u2029\x1c")
