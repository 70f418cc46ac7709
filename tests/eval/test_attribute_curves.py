"""`alti attribute --curves`: each record's deletion curves, and their means equal `alti evaluate`'s."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alti.cli import main
from alti.faithfulness import Protocol

METHODS = "alti,rollout,grad_l2"
COMMON = ["--model", "demo", "--device", "cpu", "--dataset", "samples", "--limit", "5", "--batch-size", "4"]


@pytest.fixture(scope="module")
def curves_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("curves") / "curves.jsonl"
    assert main(["attribute", *COMMON, "--methods", METHODS, "--curves", "--output", str(path)]) == 0
    return path


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_record_holds_its_curves(curves_file):
    written = records(curves_file)
    assert len(written) == 5
    for record in written:
        faithfulness = record["faithfulness"]
        assert set(faithfulness) == {"protocol", "p_full", "methods"}
        assert faithfulness["protocol"] == Protocol().to_dict()
        assert faithfulness["p_full"] == pytest.approx(record["prediction"]["probability"], abs=1e-6)
        assert list(faithfulness["methods"]) == METHODS.split(",")
        n = sum(not s for s in record["special"])
        for curves in faithfulness["methods"].values():
            assert set(curves) == {"comprehensiveness", "sufficiency"}
            for metric, curve in curves.items():
                assert set(curve) == {"score", "aupc", "fractions", "values"}
                assert len(curve["fractions"]) == len(curve["values"]) == 6  # k = 0 and the five bins
                assert curve["fractions"][0] == 0 and curve["fractions"][-1] == pytest.approx(np.ceil(n / 2) / n)
                values = np.array(curve["values"])
                if metric == "comprehensiveness":  # point 0 is the full input; the envelope only falls
                    assert values[0] == faithfulness["p_full"] and np.all(np.diff(values) <= 0)
                else:
                    assert np.all(np.diff(values) >= 0)
                drops = faithfulness["p_full"] - values[1:]
                assert curve["score"] == pytest.approx(drops.sum() / 6, abs=1e-12)
                assert curve["aupc"] == pytest.approx(np.trapezoid(values, curve["fractions"]), abs=1e-12)


def test_record_means_are_what_evaluate_reports(curves_file, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                "demo",
                "--device",
                "cpu",
                "--batch-size",
                "4",
                "--attributions",
                str(curves_file),
                "--format",
                "json",
            ]
        )
        == 0
    )
    evaluation = json.loads(capsys.readouterr().out)
    written = records(curves_file)
    assert evaluation["protocol"] == written[0]["faithfulness"]["protocol"]
    for method, scores in evaluation["methods"].items():
        for metric in ("comprehensiveness", "sufficiency"):
            curves = [r["faithfulness"]["methods"][method][metric] for r in written]
            assert float(np.mean([c["score"] for c in curves])) == scores[metric]
            assert float(np.mean([c["aupc"] for c in curves])) == scores[f"aupc_{metric}"]


def test_curves_file_resumes_to_the_same_file(curves_file, tmp_path):
    resumed = tmp_path / "resumed.jsonl"
    whole = curves_file.read_bytes()
    lines = whole.splitlines(keepends=True)
    resumed.write_bytes(b"".join(lines[:3]) + lines[3][:40])  # batch 0 partly written, a line cut short
    assert main(["attribute", *COMMON, "--methods", METHODS, "--curves", "--output", str(resumed)]) == 0
    assert resumed.read_bytes() == whole


def test_resume_with_or_without_curves_is_refused(curves_file, tmp_path, capsys):
    plain = tmp_path / "plain.jsonl"
    assert main(["attribute", *COMMON, "--limit", "1", "--methods", METHODS, "--output", str(plain)]) == 0
    capsys.readouterr()
    assert main(["attribute", *COMMON, "--methods", METHODS, "--output", str(curves_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds deletion curves; resume with --curves" in err
    assert main(["attribute", *COMMON, "--methods", METHODS, "--curves", "--output", str(plain)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no deletion curves; resume without --curves" in err
    assert len(plain.read_text().splitlines()) == 1
