"""alti.runs: lenient reading, each sort key against a plain Python sort, the overview's numbers."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from run_records import LABELS, records, write_run

from alti import faithfulness as F
from alti import runs as R
from alti.errors import InputError
from alti.runfile import explanation_from_record
from alti.targets import ClassTarget


@pytest.fixture
def run(tmp_path) -> R.Run:
    return R.read_run(str(write_run(tmp_path / "run.jsonl", records(40))))


def test_reads_every_record_in_order(run):
    assert len(run) == 40 and [r["id"] for r in run.records] == [str(i) for i in range(40)]
    assert run.methods == ["alti", "rollout", "ig_dot"] and run.target_type is ClassTarget and run.labels == LABELS
    assert run.has_curves and run.problems == []


def test_a_gold_label_the_model_does_not_have_is_not_checked(tmp_path):
    items = records(4)
    items[1]["label"], items[2]["label"] = "bad", "1"  # no label of the model; the index of one
    run = R.read_run(str(write_run(tmp_path / "run.jsonl", items)))
    assert math.isnan(run.misclassified[1]) and not math.isnan(run.misclassified[2])
    assert run.gold[2] == LABELS[1]


def test_damaged_lines_are_reported_and_the_rest_kept(tmp_path):
    items = records(5)
    lines = [json.dumps(r) for r in items]
    lines.insert(2, "this is not json")
    lines.insert(4, '{"id": "x"}')
    path = tmp_path / "damaged.jsonl"
    path.write_text("\n".join(lines) + "\n" + lines[-1][:40], encoding="utf-8")
    run = R.read_run(str(path))
    assert [r["id"] for r in run.records] == ["0", "1", "2", "3", "4"]
    assert len(run.problems) == 2
    assert "lines 3, 5 not an 'alti attribute' record" in run.problems[0]
    assert "last line is cut short" in run.problems[1]


def test_a_last_line_without_newline_but_complete_is_kept(tmp_path):
    items = records(3)
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in items), encoding="utf-8")
    assert len(R.read_run(str(path))) == 3


def test_records_of_other_methods_are_skipped(tmp_path):
    items = records(4) + records(2, methods=("alti",), seed=5)
    run = R.read_run(str(write_run(tmp_path / "mixed.jsonl", items)))
    assert len(run) == 4 and "2 record(s) score other methods" in run.problems[0]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "holds no 'alti attribute' record"),
        ("a,b\n1,2\n", "holds no 'alti attribute' record"),
    ],
)
def test_files_with_nothing_valid_raise_one_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        R.read_run(str(path))
    with pytest.raises(InputError, match="does not exist"):
        R.read_run(str(tmp_path / "missing.jsonl"))
    with pytest.raises(InputError, match="is a folder"):
        R.read_run(str(tmp_path))


def python_order(run: R.Run, value, where=lambda i: True) -> list[int]:
    """A plain sort: ascending ``value(i)``, NaN last, ties in dataset order."""
    keys = [(math.isnan(value(i)), 0.0 if math.isnan(value(i)) else value(i), i) for i in range(len(run))]
    return [k[2] for k in sorted(keys) if where(k[2])]


def gold_of(record):
    return record["label"]


def test_each_sort_key_orders_as_a_plain_sort(run):
    recs = run.records

    def wrong(i):
        return math.nan if gold_of(recs[i]) is None else float(gold_of(recs[i]) != recs[i]["prediction"]["label"])

    def nonspecial(i, method):
        return [s for s, sp in zip(recs[i]["scores"][method], recs[i]["special"]) if not sp]

    def rho(i):
        return F.spearman(np.array(nonspecial(i, "alti")), np.array(nonspecial(i, "ig_dot")))

    def curve(i, metric):
        return recs[i]["faithfulness"]["methods"]["rollout"][metric]["score"]

    def length(i):
        return float(sum(not s for s in recs[i]["special"]))

    expected = {
        R.Order(): list(range(len(run))),
        R.Order("misclassified"): python_order(run, lambda i: -wrong(i)),
        R.Order("confidence"): python_order(run, lambda i: recs[i]["prediction"]["probability"]),
        R.Order("disagreement", ("alti", "ig_dot")): python_order(run, rho),
        R.Order("comprehensiveness", ("rollout",)): python_order(run, lambda i: curve(i, "comprehensiveness")),
        R.Order("comprehensiveness", ("rollout",), best=True): python_order(
            run, lambda i: -curve(i, "comprehensiveness")
        ),
        R.Order("sufficiency", ("rollout",)): python_order(run, lambda i: -curve(i, "sufficiency")),
        R.Order("sufficiency", ("rollout",), best=True): python_order(run, lambda i: curve(i, "sufficiency")),
        R.Order("length"): python_order(run, lambda i: -length(i)),
        R.Order("length", best=True): python_order(run, length),
    }
    for order, indices in expected.items():
        assert R.order(run, order) == indices, order.describe()
    assert any(math.isnan(rho(i)) for i in range(len(run)))  # undefined ρ (constant scores) sorts last
    assert len(set(wrong(i) for i in range(len(run)) if not math.isnan(wrong(i)))) == 2


def test_filters_keep_the_order(run):
    order = R.Order("confidence")
    everything = R.order(run, order)
    searched = R.order(run, order, R.Filter("FILM"))
    assert searched == [i for i in everything if "film" in run.records[i]["text"]] and searched
    wrong = R.order(run, order, R.Filter(misclassified=True))
    assert wrong == [i for i in everything if run.misclassified[i] == 1.0] and wrong


def test_curve_sorts_need_curves_and_known_methods(tmp_path):
    run = R.read_run(str(write_run(tmp_path / "plain.jsonl", records(4, curves=False))))
    with pytest.raises(InputError, match="--curves"):
        R.order(run, R.Order("comprehensiveness", ("alti",)))
    with pytest.raises(InputError, match="no scores for grad_l2"):
        R.order(run, R.Order("sufficiency", ("grad_l2",)))
    with pytest.raises(InputError, match="takes 2 method"):
        R.Order("disagreement", ("alti",))
    assert R.faithfulness_table(run) == {}


def test_overview_numbers_equal_the_evaluation_code(run):
    explanations = [explanation_from_record(r) for r in run.records]
    expected = F.agreement(explanations, run.methods)
    got = R.agreement(run)
    for a in run.methods:
        for b in run.methods:
            assert got[a][b] == pytest.approx(expected[a][b], abs=1e-12, nan_ok=True)
    table = R.faithfulness_table(run)
    for method in run.methods:
        for metric in F.METRICS:
            curves = [r["faithfulness"]["methods"][method][metric] for r in run.records]
            assert table[method][metric] == pytest.approx(np.mean([c["score"] for c in curves]), abs=1e-12)
            assert table[method][f"aupc_{metric}"] == pytest.approx(np.mean([c["aupc"] for c in curves]), abs=1e-12)


def test_top_tokens_are_the_highest_mean_scores(run):
    sums, counts = {}, {}
    for r in run.records:
        for token, score, special in zip(r["tokens"], r["scores"]["alti"], r["special"]):
            if not special:
                sums[token] = sums.get(token, 0) + score
                counts[token] = counts.get(token, 0) + 1
    means = sorted(
        ((sums[t] / counts[t], counts[t], t) for t in sums if counts[t] >= 2), key=lambda x: (-x[0], -x[1], x[2])
    )
    top = R.top_tokens(run, "alti", k=5)
    assert [(s.token, s.count) for s in top] == [(t, c) for _, c, t in means[:5]]
    assert [s.mean for s in top] == pytest.approx([m for m, _, _ in means[:5]])


def test_histogram_counts_the_finite_values():
    counts, edges = R.histogram(np.array([0.0, 0.5, 1.0, math.nan]), bins=2, span=(0.0, 1.0))
    assert counts.tolist() == [1, 2] and edges.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.subprocess
def test_reading_a_run_needs_no_torch():
    import subprocess

    code = "import sys, alti.runs, alti.catalog; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_overview_of_a_real_run_equals_alti_evaluate_on_the_file(tmp_path, capfd):
    """The numbers the explorer's overview shows (alti.runs) are those `alti evaluate
    --attributions --agreement` prints for the same file, computed anew with the model."""
    from alti.cli import main

    path = tmp_path / "curves.jsonl"
    argv = ["attribute", "--limit", "6", "--methods", "alti,rollout,grad_l2", "--curves", "--output", str(path)]
    assert main(argv) == 0
    capfd.readouterr()
    assert main(["evaluate", "--attributions", str(path), "--agreement", "--format", "json"]) == 0
    evaluated = json.loads(capfd.readouterr().out)
    run = R.read_run(str(path))
    table = R.faithfulness_table(run)
    for method, scores in evaluated["methods"].items():
        for key in R.SCORE_KEYS:
            assert table[method][key] == pytest.approx(scores[key], abs=1e-6), (method, key)  # float32 batches differ
    agreement = R.agreement(run)
    for a, row in evaluated["agreement"].items():
        for b, rho in row.items():
            assert agreement[a][b] == pytest.approx(rho, abs=1e-12, nan_ok=True)


def test_records_with_nan_as_python_writes_them_are_read(tmp_path):
    items = records(3)
    items[1]["faithfulness"]["methods"]["alti"]["sufficiency"]["score"] = float("nan")
    run = R.read_run(str(write_run(tmp_path / "nan.jsonl", items)))
    assert len(run) == 3 and run.problems == []
    assert math.isnan(run.curve_scores("alti", "sufficiency")[1])
