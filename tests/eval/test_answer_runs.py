"""Answer datasets through alti attribute and alti evaluate: records that resume identically,
segment drops (ContextCite's check) and support ranks that match their definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alti import Explainer, faithfulness, runfile
from alti.cli import main
from alti.errors import InputError
from alti.runs import read_run
from tests.conftest import tiny_pre_ln

ROWS = [
    {
        "context": "the film was good. the cast was great. the plot was thin.",
        "question": "what was great?",
        "answer": " the cast",
        "support": 2,
    },
    {"context": "the music was loud. the story was fun.", "question": "what was fun?", "support": 2},
    {
        "prompt": "the acting was warm and the score was fine.",
        "answer": " it was fine",
        "segments": [[0, 23], [24, 43]],
    },
]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    model, tokenizer = tiny_pre_ln("gpt2", "causal_lm")
    path = tmp_path_factory.mktemp("lm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def answering(lm, data) -> list[str]:
    """The model, dataset, methods and generation both ``attribute`` and ``evaluate`` take."""
    return ["--model", lm, "--dataset", data, "--methods", "alti,alti_logit", "--generate", "3"]


def attribute(lm, data, out, *extra):
    return main(["attribute", *answering(lm, data), "--batch-size", "2", "-o", str(out), *extra])


def test_records_hold_answers_steps_segments_and_resume_identically(lm, data, tmp_path, capfd):
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    assert attribute(lm, data, whole) == 0
    records, problems = runfile.read(str(whole))
    assert not problems and [r["id"] for r in records] == ["0", "1", "2"]
    first, generated, spans = records
    assert first["answer"]["text"] == " the cast" and first["support"] == [2]
    assert len(first["steps"]["alti"]) == len(first["answer"]["ids"])
    assert [s["text"] for s in first["segments"]] == [
        "the film was good.",
        "the cast was great.",
        "the plot was thin.",
        "Question: what was great?",  # the prompt's sentences: the context's, then the question
    ]
    assert 1 <= len(generated["answer"]["ids"]) <= 3  # generated, and recorded
    assert [s["text"] for s in spans["segments"]] == ["the acting was warm and", "the score was fine."]
    lines = whole.read_text().splitlines(keepends=True)
    part.write_text(lines[0] + lines[1][:50])  # an interrupted run: one record and a cut line
    assert attribute(lm, data, part) == 0
    assert part.read_text() == whole.read_text()
    explanation = runfile.explanation_from_record(first)
    assert explanation.steps["alti"].shape == (len(first["answer"]["ids"]), len(first["tokens"]))
    assert explanation.segments[1].text == "the cast was great."
    run = read_run(str(whole))
    assert run.predicted[0] == " the cast"  # the sample list and report show each answer
    assert np.isnan(run.misclassified).all()  # an answer is not right or wrong
    capfd.readouterr()


def test_evaluate_gives_segment_drops_and_support_ranks_by_their_definitions(lm, data, tmp_path, capfd):
    run = tmp_path / "run.jsonl"
    assert attribute(lm, data, run) == 0
    capfd.readouterr()
    assert main(["evaluate", "--model", lm, "--attributions", str(run), "--format", "json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    records, _ = runfile.read(str(run))
    explainer = Explainer.from_pretrained(lm, device="cpu")
    drops, ranks = [], []
    for record in records:
        e = runfile.explanation_from_record(record)
        order = faithfulness.segment_order(e, "alti")
        top = e.segments[order[0]]
        kept = [t for i, t in enumerate(e.input_ids) if not top.start <= i < top.end]
        full, removed = explainer.quantities([e.input_ids, kept], e.target)
        drops.append(full - removed)
        if "support" in record:
            rank = 1 + min(p for p, i in enumerate(order) if i + 1 in record["support"])
            ranks.append(1 / rank)
    assert doc["methods"]["alti"]["drop@1"] == pytest.approx(np.mean(drops), abs=1e-9)
    assert doc["methods"]["alti"]["support_mrr"] == pytest.approx(np.mean(ranks), abs=1e-12)
    assert set(doc["random"]) == {"drop@1", "drop@2", "drop@3"}
    assert doc["protocol"]["target"] == "log-probability of the answer (the sum over its tokens)"
    assert main(["evaluate", *answering(lm, data), "--format", "json"]) == 0
    live = json.loads(capfd.readouterr().out)
    assert live["methods"]["alti"]["drop@2"] == pytest.approx(doc["methods"]["alti"]["drop@2"], abs=1e-9)
    assert main(["report", str(run), "-o", str(tmp_path / "run.html")]) == 0


def test_a_support_outside_the_segments_is_one_line(lm, tmp_path, capfd):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"prompt": "one sentence only.", "answer": " yes", "support": 3}) + "\n")
    code = main(["evaluate", "--model", lm, "--dataset", str(data), "--methods", "alti", "--format", "json"])
    err = capfd.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "names a segment the prompt does not have (1 segments)" in err


def test_answer_options_need_an_answer_dataset(lm, tmp_path, capfd):
    data = tmp_path / "plain.jsonl"
    data.write_text(json.dumps({"text": "a plain text"}) + "\n")
    code = main(
        ["attribute", "--model", lm, "--dataset", str(data), "--generate", "2", "-o", str(tmp_path / "o.jsonl")]
    )
    assert code == 2 and "answer dataset" in capfd.readouterr().err


def test_a_curves_run_records_each_answers_context_for_the_explorer_and_the_report(lm, data, tmp_path, capfd):
    """--curves adds each answer's drop@k; the run's context table (explorer overview, report)
    equals alti evaluate's, and the samples sort by a method's drop@1 or support rank."""
    from alti import report, runs

    run_path = tmp_path / "curves.jsonl"
    assert attribute(lm, data, run_path, "--curves") == 0
    capfd.readouterr()
    run = read_run(str(run_path))
    assert not run.problems
    assert run.context_measures == ["drop@1", "drop@2", "drop@3", "support_mrr", "support_top1"]
    assert set(run.records[0]["faithfulness"]["context"]) == {"alti", "alti_logit", "random"}
    assert run.records[2]["faithfulness"]["context"]["alti"]["drop@3"] is None  # two segments only
    assert main(["evaluate", "--model", lm, "--attributions", str(run_path), "--format", "json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    table = runs.context_table(run)
    for name, row in table.items():
        want = doc["random"] if name == "random" else doc["methods"][name]
        for measure, value in row.items():
            assert value == pytest.approx(want[measure], abs=1e-9), (name, measure)
    drops = run.context_scores("alti", "drop@1")
    assert runs.order(run, runs.Order("drop", ("alti",))) == [int(i) for i in np.argsort(drops, kind="stable")]
    assert runs.order(run, runs.Order("drop", ("alti",), best=True))[0] == int(np.argmax(drops))
    mrr = run.context_scores("alti", "support_mrr")
    assert np.isnan(mrr[2]) and runs.order(run, runs.Order("support", ("alti",)))[-1] == 2  # no support: last
    page = report.to_html(run)
    assert 'id="context"' in page and '"drop:0"' in page and '"contextSorts":{"drop":"drop@1"' in page
    plain = tmp_path / "plain.jsonl"
    assert attribute(lm, data, plain) == 0
    with pytest.raises(InputError, match="no drop@1"):  # drops are recorded with --curves
        runs.order(read_run(str(plain)), runs.Order("drop", ("alti",)))
    assert read_run(str(plain)).context_measures == ["support_mrr", "support_top1"]
