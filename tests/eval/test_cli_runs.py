"""`alti attribute` and `alti evaluate` end to end on a tiny classifier saved to disk."""

from __future__ import annotations

import json

import pytest

from alti.cli import main
from alti.explainer import Explainer
from tests.conftest import tiny_model

TEXTS = [
    "a warm and funny film",
    "the plot was dull and far too long",
    "great acting",
    "i would not watch it again",
    "an odd , uneven but moving story",
]
METHODS = "alti,attention,grad_l2"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-bert")
    model, tokenizer = tiny_model("bert")
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.id2label = {0: "negative", 1: "positive"}
    model.config.label2id = {"negative": 0, "positive": 1}
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.jsonl"
    rows = [{"id": f"r{i}", "text": t, "label": ["positive", "negative"][i % 2]} for i, t in enumerate(TEXTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def attribute(checkpoint, dataset, output, *extra):
    return main(
        [
            "attribute",
            "--model",
            checkpoint,
            "--dataset",
            dataset,
            "--methods",
            METHODS,
            "--batch-size",
            "2",
            "--device",
            "cpu",
            "--output",
            str(output),
            *extra,
        ]
    )


def test_attribute_writes_one_record_per_sample(checkpoint, dataset, tmp_path):
    output = tmp_path / "out.jsonl"
    assert attribute(checkpoint, dataset, output) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == [f"r{i}" for i in range(5)]
    first = records[0]
    assert first["text"] == TEXTS[0] and first["label"] == "positive"
    assert first["tokens"][0] == "[CLS]" and first["tokens"][-1] == "[SEP]"
    assert set(first["scores"]) == {"alti", "attention", "grad_l2"}
    assert all(len(v) == len(first["tokens"]) for v in first["scores"].values())
    assert first["prediction"]["label"] in ("negative", "positive")
    assert first["special"][0] and first["special"][-1] and not any(first["special"][1:-1])


def test_interrupted_attribute_resumes_to_the_same_file(checkpoint, dataset, tmp_path, monkeypatch, capsys):
    whole = tmp_path / "whole.jsonl"
    assert attribute(checkpoint, dataset, whole) == 0

    resumed = tmp_path / "resumed.jsonl"
    real = Explainer.explain_batch
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C while the second batch runs
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Explainer, "explain_batch", interrupted)
    assert attribute(checkpoint, dataset, resumed) == 130
    lines = resumed.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert "resume" in capsys.readouterr().err

    with resumed.open("a") as handle:  # a record cut short by a hard kill
        handle.write('{"id": "r2", "text": "gre')
    monkeypatch.setattr(Explainer, "explain_batch", real)
    assert attribute(checkpoint, dataset, resumed) == 0
    assert resumed.read_bytes() == whole.read_bytes()
    assert "3 records" in capsys.readouterr().err


def test_resume_refuses_other_methods(checkpoint, dataset, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    assert attribute(checkpoint, dataset, output, "--limit", "1") == 0
    capsys.readouterr()
    assert (
        main(["attribute", "--model", checkpoint, "--dataset", dataset, "--methods", "alti", "--output", str(output)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--methods alti,attention,grad_l2" in err


def evaluate_json(capsys, *args):
    capsys.readouterr()
    assert main(["evaluate", "--format", "json", "--device", "cpu", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_json_schema(checkpoint, dataset, capsys):
    data = evaluate_json(capsys, "--model", checkpoint, "--dataset", dataset, "--methods", METHODS, "--limit", "4")
    assert set(data) == {"samples", "protocol", "methods"}
    assert data["samples"] == 4
    assert data["protocol"]["deletion"] == "remove"
    assert data["protocol"]["steps"] == "bins" and data["protocol"]["curve"] == "envelope"
    assert list(data["methods"]) == ["alti", "attention", "grad_l2"]
    for scores in data["methods"].values():
        assert set(scores) == {"comprehensiveness", "sufficiency", "aupc_comprehensiveness", "aupc_sufficiency"}
        assert all(isinstance(v, float) for v in scores.values())


def test_evaluate_reuses_attributions_with_the_same_result(checkpoint, dataset, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    assert attribute(checkpoint, dataset, output) == 0
    fresh = evaluate_json(capsys, "--model", checkpoint, "--dataset", dataset, "--methods", METHODS)
    reused = evaluate_json(capsys, "--model", checkpoint, "--attributions", str(output))
    assert reused["samples"] == fresh["samples"] == 5
    for method, scores in fresh["methods"].items():
        assert reused["methods"][method] == pytest.approx(scores, abs=1e-9)
    other = evaluate_json(
        capsys,
        "--model",
        checkpoint,
        "--attributions",
        str(output),
        "--methods",
        "alti",
        "--steps",
        "one",
        "--step-limit",
        "2",
        "--deletion",
        "mask",
        "--raw",
        "--agreement",
    )
    assert other["protocol"] == {
        "deletion": "mask",
        "steps": "one",
        "bins": None,
        "limit": 2,
        "curve": "raw",
        "target": "probability of the class predicted on the full input",
    }
    assert other["agreement"] == {"alti": {"alti": pytest.approx(1.0)}}


def test_evaluate_table_bolds_the_best(checkpoint, dataset, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                checkpoint,
                "--dataset",
                dataset,
                "--methods",
                "alti,attention",
                "--limit",
                "2",
                "--agreement",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Comp. ↑" in out and "AUPC suff. ↑" in out and "alti" in out and "attention" in out
    assert "Spearman" in out


def test_evaluate_errors_are_one_line(checkpoint, dataset, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    assert attribute(checkpoint, dataset, output, "--limit", "1") == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", checkpoint, "--attributions", str(output), "--methods", "ig_l2"]) == 2
    assert "has no scores for ig_l2" in capsys.readouterr().err
    assert main(["evaluate", "--model", checkpoint, "--attributions", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--model", checkpoint, "--step-limit", "3"]) == 2
    assert "--steps one" in capsys.readouterr().err
