"""Property-based fuzzing of the readers of files people hand to alti: run records and datasets.

Any field of a valid run record is replaced by a random JSON value; the lenient reader keeps
the record or skips it with a one-line problem, the strict reader accepts it or names its line,
and every record kept goes through what reads records (run statistics, the HTML report, the
explanation rebuilt from it) without an exception.  Random dataset rows give samples or one
DatasetError.  Never a traceback.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alti import report, runfile, runs
from alti.data import load_dataset
from alti.errors import DatasetError, InputError
from tests.run_records import records

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def samples_or_one_line_error(tmp_path_factory, rows):
    """The samples of ``rows`` written as a JSONL dataset, or None when reading it stopped
    with a one-line :class:`DatasetError`."""
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in rows), encoding="utf-8")
    try:
        return load_dataset(str(path))
    except DatasetError as error:
        assert "\n" not in str(error)
        return None


def _paths(value, prefix=()):
    """Every path to a field of a JSON value (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, index))


BASE = [json.loads(runfile.line(r)) for r in records(3)]
PATHS = [p for p in _paths(BASE[1]) if p]


def _replaced(record, path, value):
    copy = json.loads(json.dumps(record))
    entry = copy
    for key in path[:-1]:
        entry = entry[key]
    entry[path[-1]] = value
    return copy


def _use(run: runs.Run) -> None:
    """What the explorer and the report do with a run's records."""
    methods = run.methods
    for how in [runs.Order("dataset"), runs.Order("confidence"), runs.Order("misclassified")]:
        runs.order(run, how, runs.Filter("a", True))
    if len(methods) >= 2:
        runs.order(run, runs.Order("disagreement", tuple(methods[:2])))
    if run.has_curves and methods:
        runs.order(run, runs.Order("comprehensiveness", (methods[0],)))
    runs.faithfulness_table(run)
    runs.agreement(run)
    for method in methods:
        runs.top_tokens(run, method)
    report.to_html(run)
    for record in run.records:
        explanation = runfile.explanation_from_record(record)
        explanation.prediction.probability  # noqa: B018 - reads the chosen entry
        explanation.target.describe()


@FUZZ
@given(path=st.sampled_from(PATHS), value=JSON)
def test_a_record_with_any_field_replaced_is_kept_whole_or_skipped_in_one_line(tmp_path_factory, path, value):
    mutated = _replaced(BASE[1], path, value)
    text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in (BASE[0], mutated, BASE[2]))
    path_file = tmp_path_factory.mktemp("fuzz") / "run.jsonl"
    path_file.write_text(text, encoding="utf-8")
    problem = runfile.problem(json.loads(json.dumps(mutated, allow_nan=True)))
    try:
        kept, problems = runfile.read(str(path_file), strict=True)
    except InputError as error:
        assert problem is not None and "line 2" in str(error) and "\n" not in str(error)
    else:
        assert problem is None and len(kept) == 3
    run = runs.read_run(str(path_file))
    assert all("\n" not in p for p in run.problems)
    assert len(run) == (3 if problem is None else 2)
    _use(run)


@FUZZ
@given(
    rows=st.lists(
        st.fixed_dictionaries({"text": JSON}, optional={k: JSON for k in ("label", "target", "foil", "id")}),
        max_size=6,
    )
)
def test_dataset_rows_of_any_types_give_samples_or_one_error(tmp_path_factory, rows):
    samples = samples_or_one_line_error(tmp_path_factory, rows)
    if samples is None:
        return
    usable = [
        r
        for r in rows
        if isinstance(r.get("text"), str)
        and r["text"].strip()
        and all(
            r.get(c) is None or isinstance(r[c], str) or (isinstance(r[c], int) and not isinstance(r[c], bool))
            for c in ("target", "foil")
        )
    ]
    assert [s.text for s in samples] == [r["text"] for r in usable]
    assert sum(len(lines) for lines in samples.skipped.values()) == len(rows) - len(usable)
    for sample in samples:
        assert isinstance(sample.id, str) and (sample.label is None or isinstance(sample.label, str))


@pytest.mark.parametrize(
    "path, value",
    [(("scores", "alti"), ["0.5"] * 8), (("prediction",), ["positive"]), (("text",), 7), (("tokens", 0), 101)],
)
def test_the_commands_that_read_runs_say_which_line_is_bad(tmp_path, capfd, path, value):
    """Wrong types that used to crash report and evaluate (some with exit 0)."""
    from alti.cli import main

    good = [json.loads(runfile.line(r)) for r in records(3, methods=("alti", "rollout"), curves=True)]
    bad = _replaced(good[1], path, value)
    run_file = tmp_path / "run.jsonl"
    run_file.write_text("".join(json.dumps(r) + "\n" for r in (good[0], bad, good[2])), encoding="utf-8")
    assert main(["report", str(run_file), "-o", str(tmp_path / "run.html")]) == 0
    out, err = capfd.readouterr()
    assert "line 2 not an 'alti attribute' record, skipped" in err and "(2 samples" in out
    assert main(["evaluate", "--attributions", str(run_file), "--format", "json"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith(f"alti: error: {run_file} line 2 is not an 'alti attribute' record: ")
    assert "\n" not in err and "Traceback" not in err


def test_nan_scores_a_run_may_hold_are_numbers():
    record = json.loads(runfile.line(records(1)[0]))
    record["scores"]["alti"][0] = math.nan
    assert runfile.problem(record) is None


@FUZZ
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"context": JSON, "question": JSON},
            optional={k: JSON for k in ("prompt", "answer", "support", "segments", "id")},
        ),
        max_size=6,
    )
)
def test_answer_rows_of_any_types_give_well_typed_samples_or_one_error(tmp_path_factory, rows):
    samples = samples_or_one_line_error(tmp_path_factory, rows)
    if samples is None:
        return
    for sample in samples:
        assert isinstance(sample.text, str) and sample.text.strip() and sample.prompted
        assert sample.answer is None or isinstance(sample.answer, str)
        assert sample.support is None or all(type(i) is int and i >= 1 for i in sample.support)
        assert sample.segments is None or all(0 <= a < b for a, b in sample.segments)
