"""``alti report``: the page's numbers, colours and orders against alti.runs and alti.export,
its escaping, the CLI's messages and atomic write, and the page in headless Chromium."""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from alti import export, report
from alti.cli import main
from alti.colors import DIVERGING, SEQUENTIAL
from alti.runfile import explanation_from_record
from alti.runs import Filter, Order, agreement, faithfulness_table, order, read_run

LABELS = ["negative", "positive"]
METHODS = ["alti", "rollout", "gxi_dot"]
NASTY = "</script><b>&\"'"
WORDS = ["film", "dull", "great", "plot", "<i>", "a&b", "\u0120word", NASTY, "ok", "\u0120", "fun", "cast"]
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)


def curve(rng) -> dict:
    values = sorted(rng.random(6).tolist(), reverse=True)
    return {
        "score": round(float(rng.random()), 2),
        "aupc": float(rng.random()),
        "fractions": [0, 0.01, 0.05, 0.1, 0.2, 0.5],
        "values": values,
    }


def make_record(i: int, rng, curves: bool) -> dict:
    n = 1 + i % 7
    words = [WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(n)]
    tokens = ["[CLS]", *words, "[SEP]"]
    special = [True] + [False] * n + [True]
    scores = {
        "alti": rng.random(n + 2).tolist(),
        "rollout": (np.full(n + 2, 0.25) if i % 5 == 0 else rng.random(n + 2)).tolist(),
        "gxi_dot": rng.normal(size=n + 2).tolist(),
    }
    predicted = LABELS[i % 2]
    probability = [0.51, 0.9, 0.75, 0.99][i % 4]
    record = {
        "id": f"s{i}",
        "text": " ".join(words).replace("\u0120", " "),
        "label": LABELS[(i // 3) % 2] if i % 11 else None,
        "tokens": tokens,
        "input_ids": list(range(100, 102 + n)),
        "special": special,
        "prediction": {
            "label": predicted,
            "index": LABELS.index(predicted),
            "probability": probability,
            "probabilities": [1 - probability, probability]
            if predicted == "positive"
            else [probability, 1 - probability],
            "labels": LABELS,
        },
        "target": {"label": predicted, "index": LABELS.index(predicted)},
        "foil": None,
        "explained": {"kind": "class", "position": 0, "quantity": "probability"},
        "target_position": 0,
        "scores": scores,
        "truncated": False,
        "model": "hand/made <model> & co",
        "settings": {"alti": {"distance": "l1"}, "rollout": {}, "gxi_dot": {"baseline": "zero"}},
        "version": "0.1.0",
    }
    if curves:
        record["faithfulness"] = {
            "protocol": {"deletion": "remove", "steps": "bins", "envelope": True},
            "p_full": probability,
            "methods": {m: {"comprehensiveness": curve(rng), "sufficiency": curve(rng)} for m in METHODS},
        }
    return record


def write_run(path, count: int = 30, curves: bool = False, tail: bytes = b"") -> list[dict]:
    rng = np.random.default_rng(7)
    records = [make_record(i, rng, curves) for i in range(count)]
    with open(path, "wb") as handle:
        handle.write(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)
    return records


def embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="alti-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def palette(page: str) -> list[tuple[str, str]]:
    found = re.findall(r"\.k(\d+)\{background:(#[0-9a-f]{6});color:(#[0-9a-f]{6})\}", page)
    assert [int(i) for i, _, _ in found] == list(range(len(found)))
    return [(bg, fg) for _, bg, fg in found]


def expected_order(run, case: dict) -> list[int]:
    wanted = report.SORTS[case["sort"]][1]
    methods = (case.get("a"), case.get("b"))[:wanted]
    return order(
        run, Order(case["sort"], methods, case.get("best", False)), Filter(case.get("q", ""), case.get("mis", False))
    )


@pytest.fixture
def curves_run(tmp_path):
    path = tmp_path / "curves.jsonl"
    write_run(path, curves=True)
    return read_run(str(path))


@pytest.fixture
def plain_run(tmp_path):
    path = tmp_path / "plain.jsonl"
    write_run(path)
    return read_run(str(path))


# ------------------------------------------------------------------ the page's content
def test_page_needs_no_network(curves_run):
    page = report.to_html(curves_run)
    assert re.search(r"https?:", page) is None
    assert re.search(r"\b(src|href)\s*=", page) is None
    assert "@import" not in page and "url(" not in page


def test_a_token_that_closes_the_script_stays_data(curves_run):
    page = report.to_html(curves_run)
    assert page.lower().count("</script") == 2  # the data's and the code's own
    assert page.count("<b>&") == 0
    data = embedded(page)
    assert [s[7] for s in data["samples"]] == [r["tokens"] for r in curves_run.records]
    assert any(NASTY in s[7] for s in data["samples"])
    assert html.escape("hand/made <model> & co") in page and "<model>" not in page


def test_colours_and_hover_scores_are_those_of_alti_explain_html(curves_run):
    page = report.to_html(curves_run)
    data, pairs = embedded(page), palette(page)
    for sample, record in zip(data["samples"], curves_run.records):
        rows = export.rows(explanation_from_record(record))
        assert [r.method for r in rows] == METHODS
        for (colours, scores), row in zip(sample[8], rows):
            assert [pairs[c] for c in colours] == row.colors()
            assert scores.split(" ") == [f"{s:.4g}" for s in row.scores]
    assert SEQUENTIAL.hex(1.0) in {bg for bg, _ in pairs} and DIVERGING.hex(-1.0) in {bg for bg, _ in pairs}


@pytest.mark.parametrize("scale", [SEQUENTIAL, DIVERGING], ids=lambda s: s.name)
def test_rgb_array_is_rgb_value_for_value(scale):
    rng = np.random.default_rng(0)
    edges = [p for p, _ in scale.stops] + [-2.0, 2.0, np.nan, np.inf, -np.inf, -0.0, 1e-300]
    halves = np.linspace(scale.low, scale.high, 4001)
    values = np.concatenate([edges, halves, rng.uniform(scale.low, scale.high, 20000)])
    assert [tuple(c) for c in report.rgb_array(scale, values).tolist()] == [scale.rgb(v) for v in values]


def test_every_sort_is_embedded_as_alti_runs_order(curves_run, plain_run):
    for run in (curves_run, plain_run):
        data = embedded(report.to_html(run))
        hows = report.orders(run)
        assert len(data["orders"]) == len(hows)
        for how in hows:
            assert data["orders"][report.order_key(how, run.methods)] == order(run, how)
        reverse = Order("disagreement", ("gxi_dot", "alti"))
        assert data["orders"][report.order_key(reverse, run.methods)] == order(run, reverse)
    assert not any(k.startswith("comprehensiveness") for k in embedded(report.to_html(plain_run))["orders"])


def test_faithfulness_table_and_agreement_are_alti_runs_numbers(curves_run):
    page = report.to_html(curves_run)
    table = faithfulness_table(curves_run)
    cells = re.findall(r'<td data-key="(\w+)" data-value="([^"]+)">(<b>)?', page)
    rows = re.findall(r'<tr data-method="(\w+)">', page)
    assert rows == METHODS and len(cells) == 4 * len(METHODS)
    for k, (key, value, bold) in enumerate(cells):
        method = rows[k // 4]
        assert float(value) == table[method][key]
        higher = dict((c, h) for c, _, h in report.COLUMNS)[key]
        best = (max if higher else min)(row[key] for row in table.values())
        assert bool(bold) == (table[method][key] == best)
    matrix = agreement(curves_run)
    heat = page[page.index('id="agreement"') :]
    values = [float(v) for v in re.findall(r'<td[^>]*data-value="([^"]+)"', heat)[: len(METHODS) ** 2]]
    want = [matrix[a][b] for a in METHODS for b in METHODS]
    assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(values, want))


def test_without_curves_the_page_says_how_to_get_them(plain_run):
    page = report.to_html(plain_run)
    assert 'id="no-curves"' in page and "alti attribute --curves" in page
    assert 'id="faithfulness"' not in page
    assert not embedded(page)["hasCurves"]


# ------------------------------------------------------------------ the command
def test_cli_writes_the_page_and_says_where(tmp_path, capsys):
    run_path = tmp_path / "run.jsonl"
    write_run(run_path, count=12)
    assert main(["report", str(run_path), "--title", "My <run> & co"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"wrote {tmp_path / 'run.html'} (12 samples, 3 methods)"
    assert out.err == ""
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert "<h1>My &lt;run&gt; &amp; co</h1>" in page and "<title>My &lt;run&gt; &amp; co</title>" in page
    assert len(embedded(page)["samples"]) == 12
    assert page == report.to_html(read_run(str(run_path)), "My <run> & co")
    assert main(["report", str(run_path), "-o", str(tmp_path / "small.html"), "--page-size", "25"]) == 0
    assert embedded((tmp_path / "small.html").read_text(encoding="utf-8"))["pageSize"] == 25


def test_cli_help_names_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["report", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("RUN.jsonl", "--output", "--title", "--page-size"):
        assert option in text


def test_a_damaged_file_is_reported_and_its_valid_records_shown(tmp_path, capsys):
    run_path, out = tmp_path / "run.jsonl", tmp_path / "out.html"
    records = write_run(
        run_path,
        count=5,
        tail=b"not json\n" + json.dumps(make_record(9, np.random.default_rng(1), False)).encode()[:40],
    )
    assert main(["report", str(run_path), "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"alti: warning: {p}" for p in read_run(str(run_path)).problems] and len(err) == 2
    assert "line 6 not an 'alti attribute' record" in err[0] and "cut short" in err[1]
    page = out.read_text(encoding="utf-8")
    assert 'class="problems"' in page and html.escape("line 6 not an 'alti attribute' record") in page
    assert [s[0] for s in embedded(page)["samples"]] == [r["id"] for r in records]


@pytest.mark.parametrize(
    "content, message",
    [(None, "does not exist"), (b"garbage\n{}\n", "holds no 'alti attribute' record")],
    ids=["missing", "no-record"],
)
def test_unreadable_runs_are_one_line_errors_and_write_nothing(tmp_path, capsys, content, message):
    run_path, out = tmp_path / "run.jsonl", tmp_path / "out.html"
    if content is not None:
        run_path.write_bytes(content)
    assert main(["report", str(run_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("alti: error: ") and message in err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--page-size", "7"], "--page-size must be one of"),
        (["-o", "{run}"], "is the run file itself"),
        (["-o", "{dir}/nowhere/x.html"], "does not exist"),
    ],
    ids=["page-size", "same-file", "no-directory"],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    run_path = tmp_path / "run.jsonl"
    write_run(run_path, count=3)
    args = [a.format(run=run_path, dir=tmp_path) for a in args]
    assert main(["report", str(run_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_failed_write_leaves_no_partial_page(tmp_path, capsys, monkeypatch):
    run_path, out = tmp_path / "run.jsonl", tmp_path / "out.html"
    write_run(run_path, count=4)
    out.write_text("the previous report", encoding="utf-8")

    def broken_disk(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_disk)
    assert main(["report", str(run_path), "-o", str(out)]) == 2
    assert capsys.readouterr().err == "alti: error: Input/output error\n"
    assert out.read_text(encoding="utf-8") == "the previous report"
    assert sorted(os.listdir(tmp_path)) == ["out.html", "run.jsonl"]


@pytest.mark.subprocess
def test_the_command_never_imports_torch(tmp_path):
    run_path = tmp_path / "run.jsonl"
    write_run(run_path, count=6, curves=True)
    code = (
        "import sys; from alti.cli import main; "
        f"assert main(['report', {str(run_path)!r}]) == 0; "
        "print(sorted(m for m in ('torch', 'transformers', 'captum', 'textual') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


# ------------------------------------------------------------------ in a real browser
class Cards(HTMLParser):
    """The sample cards of a page: each card's data-i, and its token spans (text, title)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.order: list[int] = []
        self.spans: list[tuple[str, str]] = []
        self.results = ""
        self._in_span = self._in_results = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article" and "sample" in attrs.get("class", ""):
            self.order.append(int(attrs["data-i"]))
        self._in_span = tag == "span" and "tok" in attrs.get("class", "").split()
        if self._in_span:
            self.spans.append(("", attrs["title"]))
        self._in_results = tag == "pre" and attrs.get("id") == "results"

    def handle_endtag(self, tag):
        self._in_span = self._in_results = False

    def handle_data(self, data):
        if self._in_span:
            self.spans[-1] = (self.spans[-1][0] + data, self.spans[-1][1])
        if self._in_results:
            self.results += data


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: Chromium refuses to run as root in its sandbox, and containers often lack the
    # namespaces it needs; it only opens pages these tests wrote.
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command.append(f"--user-data-dir={tmp_path / 'chromium'}")
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, check=True)


def dump_dom(tmp_path, page_path, fragment: str = "") -> str:
    """The page's DOM once its timers have run (virtual time: idle waits take no real time)."""
    return chromium(tmp_path, "--virtual-time-budget=60000", "--dump-dom", page_path.as_uri() + fragment).stdout


DRIVER = """<script>
(async () => {
  const cases = %s;
  const wait = (ms) => new Promise((done) => setTimeout(done, ms));
  const set = (id, value) => {
    const control = document.getElementById(id);
    if (control.type === "checkbox") control.checked = value; else control.value = value;
    control.dispatchEvent(new Event(control.type === "search" ? "input" : "change", { bubbles: true }));
  };
  const results = [];
  set("size", "200");
  for (const c of cases) {
    set("sort", c.sort); set("a", c.a); set("b", c.b); set("best", c.best); set("mis", c.mis); set("q", c.q);
    await wait(400);
    const cards = [...document.querySelectorAll("article.sample")];
    results.push({ order: cards.map((card) => Number(card.dataset.i)), hash: location.hash });
  }
  const pre = document.createElement("pre");
  pre.id = "results";
  pre.textContent = JSON.stringify(results);
  document.body.append(pre);
})();
</script>
"""


def drive(tmp_path, page_path, cases: list[dict]) -> tuple[list[dict], Cards]:
    """Set the page's controls to each case in turn; the listed samples after each."""
    full = [{"a": None, "b": None, "best": False, "mis": False, "q": "", **c} for c in cases]
    for c in full:
        c["a"], c["b"] = c["a"] or "alti", c["b"] or "rollout"
    page = page_path.read_text(encoding="utf-8").replace("</body>", DRIVER % json.dumps(full) + "</body>")
    driven = page_path.with_name("driven.html")
    driven.write_text(page, encoding="utf-8")
    cards = Cards(dump_dom(tmp_path, driven))
    return json.loads(cards.results), cards


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo model's run of the 96 embedded samples (ALTI and rollout) and its report."""
    root = tmp_path_factory.mktemp("demo")
    run_path, page_path = root / "run.jsonl", root / "run.html"
    assert main(["attribute", "--methods", "alti,rollout", "--output", str(run_path)]) == 0
    assert main(["report", str(run_path), "--output", str(page_path)]) == 0
    return read_run(str(run_path)), page_path


@needs_chromium
@pytest.mark.subprocess
@pytest.mark.slow
def test_browser_sorts_and_filters_as_alti_runs_order(demo_run, tmp_path):
    run, page_path = demo_run
    assert len(run) == 96 and np.nansum(run.misclassified) > 0
    cases = [
        {"sort": "dataset"},
        {"sort": "misclassified"},
        {"sort": "confidence"},
        {"sort": "disagreement", "a": "alti", "b": "rollout"},
        {"sort": "disagreement", "a": "rollout", "b": "rollout"},
        {"sort": "length"},
        {"sort": "length", "best": True},
        {"sort": "confidence", "mis": True},
        {"sort": "dataset", "q": "  FILM "},
        {"sort": "disagreement", "a": "rollout", "b": "alti", "q": "the", "mis": True},
        {"sort": "dataset", "q": "no sample says this"},
    ]
    results, _ = drive(tmp_path, page_path, cases)
    for case, result in zip(cases, results):
        assert result["order"] == expected_order(run, {"a": "alti", "b": "rollout", **case}), case
    assert results[0]["order"] != results[2]["order"] and results[-1]["order"] == []
    assert results[3]["hash"] == "#sort=disagreement&a=alti&b=rollout&size=200"


@needs_chromium
@pytest.mark.subprocess
@pytest.mark.slow
def test_browser_reads_the_view_from_the_address(demo_run, tmp_path):
    run, page_path = demo_run
    cards = Cards(dump_dom(tmp_path, page_path, "#sort=disagreement&a=rollout&b=alti&q=film&size=100"))
    assert cards.order == order(run, Order("disagreement", ("rollout", "alti")), Filter("film"))
    cards = Cards(dump_dom(tmp_path, page_path, "#sort=confidence&page=2&size=25"))
    assert cards.order == order(run, Order("confidence"))[25:50]
    cards = Cards(dump_dom(tmp_path, page_path, "#sort=comprehensiveness&a=alti"))  # no curves: dataset order
    assert cards.order == list(range(50))


@needs_chromium
@pytest.mark.subprocess
@pytest.mark.slow
def test_browser_curve_sorts_and_escaped_tokens(tmp_path):
    run_path, page_path = tmp_path / "run.jsonl", tmp_path / "run.html"
    write_run(run_path, curves=True)
    run = read_run(str(run_path))
    report.write(run, page_path)
    cases = [
        {"sort": "comprehensiveness", "a": "gxi_dot"},
        {"sort": "comprehensiveness", "a": "gxi_dot", "best": True},
        {"sort": "sufficiency", "a": "rollout"},
        {"sort": "sufficiency", "a": "alti", "best": True, "q": "film"},
        {"sort": "dataset"},
    ]
    results, cards = drive(tmp_path, page_path, cases)
    for case, result in zip(cases, results):
        assert result["order"] == expected_order(run, case), case
    want = [
        (export.display_token(token), f"{token}: {score:.4g}")
        for record in run.records
        for method in METHODS
        for token, score in zip(record["tokens"], record["scores"][method])
    ]
    assert cards.spans == want
    assert any(text == NASTY and title.startswith(f"{NASTY}: ") for text, title in cards.spans)


@needs_chromium
@pytest.mark.subprocess
@pytest.mark.slow
def test_browser_screenshot_rows_are_coloured_and_the_sort_control_reorders_them(demo_run, tmp_path):
    image = pytest.importorskip("PIL.Image")
    run, page_path = demo_run
    selected = page_path.with_name("selected.html")
    control = (
        '<script>const s = document.getElementById("sort"); s.value = "confidence";'
        ' s.dispatchEvent(new Event("change"));</script>'
    )
    selected.write_text(page_path.read_text(encoding="utf-8").replace("</body>", control + "</body>"), encoding="utf-8")

    def shot(path, fragment, name):
        target = tmp_path / name
        chromium(
            tmp_path,
            "--window-size=1000,2600",
            "--virtual-time-budget=3000",
            f"--screenshot={target}",
            path.as_uri() + fragment,
        )
        with image.open(target) as picture:
            return np.asarray(picture.convert("RGB"))

    plain = shot(page_path, "#size=10", "dataset.png")
    by_control = shot(selected, "#size=10", "control.png")
    by_address = shot(page_path, "#sort=confidence&size=10", "address.png")
    seen = {tuple(c) for c in np.unique(plain.reshape(-1, 3), axis=0).tolist()}
    first = export.rows(explanation_from_record(run.records[0]))
    wanted = {tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for row in first for h, _ in row.colors()}
    assert wanted <= seen and SEQUENTIAL.rgb(1.0) in seen
    assert (by_control == by_address).all()
    assert (by_control != plain).any(axis=2).sum() > 1000


def test_a_language_model_run_and_a_run_without_methods(tmp_path):
    rng = np.random.default_rng(3)
    records = []
    for i, (predicted, target) in enumerate([(" Paris", " Paris"), (" Lyon", " Paris")]):
        record = make_record(i + 1, rng, False)
        record["explained"] = {"kind": "next_token", "position": len(record["tokens"]) - 1, "quantity": "probability"}
        record["prediction"] = {  # a language model's prediction as alti writes it: its top tokens
            "label": predicted,
            "index": 7 if predicted == " Paris" else 9,
            "probability": 0.6,
            "top": [
                {"token": predicted, "id": 7 if predicted == " Paris" else 9, "probability": 0.6},
                {"token": " Nice", "id": 3, "probability": 0.1},
            ],
        }
        record["target"] = {"token": target, "id": 7}
        records.append(record)
    path = tmp_path / "lm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    run = read_run(str(path))
    samples = embedded(report.to_html(run))["samples"]
    assert [(s[1], s[2], s[4]) for s in samples] == [(" Paris", " Paris", 0.0), (" Lyon", " Paris", 1.0)]
    assert "<dt>explains</dt><dd>next token</dd>" in report.to_html(run)
    for record in records:
        record["scores"] = {}
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert [s[8] for s in embedded(report.to_html(read_run(str(path))))["samples"]] == [[], []]


def test_a_demo_run_with_curves_shows_the_numbers_of_alti_evaluate(tmp_path, capsys):
    run_path, page_path = tmp_path / "run.jsonl", tmp_path / "run.html"
    common = ["--limit", "6", "--methods", "alti,rollout"]
    assert main(["attribute", "--curves", *common, "--output", str(run_path)]) == 0
    assert main(["evaluate", "--attributions", str(run_path), *common, "--format", "json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert main(["report", str(run_path), "--output", str(page_path)]) == 0
    page = page_path.read_text(encoding="utf-8")
    cells = re.findall(r'<tr data-method="(\w+)">(.*?)</tr>', page)
    shown = {(m, k): float(v) for m, row in cells for k, v in re.findall(r'data-key="(\w+)" data-value="([^"]+)"', row)}
    assert len(shown) == 8
    table = faithfulness_table(read_run(str(run_path)))
    for (method, key), value in shown.items():
        assert value == table[method][key]
        # evaluate measures the curves again, in other float32 batches: equal to rounding
        assert value == pytest.approx(evaluated["methods"][method][key], rel=1e-6)
    assert "deletion curves" in page and len(embedded(page)["orders"]) == 5 + 3 + 8
