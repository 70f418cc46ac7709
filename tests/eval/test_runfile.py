"""The run file's one schema and reader: every field checked for type and length, strict
reads name the line, lenient reads keep the valid records."""

from __future__ import annotations

import json

import pytest

from alti import runfile
from alti.errors import InputError
from alti.targets import ClassTarget, NextTokenTarget
from tests.run_records import records, write_run


def parsed(count: int = 1) -> list[dict]:
    """Synthetic records as a run file holds them (parsed from JSON)."""
    return [json.loads(runfile.line(r)) for r in records(count)]


def broken(path: str, value):
    """A copy of a valid record with the field at ``path`` (dotted) set to ``value``."""
    record = parsed()[0]
    *parents, last = path.split(".")
    entry = record
    for key in parents:
        entry = entry[int(key)] if isinstance(entry, list) else entry[key]
    if isinstance(entry, list):
        entry[int(last)] = value
    else:
        entry[last] = value
    return record


WRONG = [
    ("scores.alti", "0.5 0.25"),
    ("scores.alti.0", "0.5"),
    ("prediction", ["positive"]),
    ("prediction.index", "1"),
    ("prediction.probabilities", ["a", "b"]),
    ("text", 12),
    ("tokens.0", 101),
    ("input_ids.0", "101"),
    ("special.0", 1),
    ("id", None),
    ("truncated", "no"),
    ("label", ["positive"]),
    ("target", {"label": 1, "index": "x"}),
    ("explained", {"kind": "answer"}),
    ("faithfulness.p_full", "high"),
    ("faithfulness.methods.alti.comprehensiveness.values", None),
]


@pytest.mark.parametrize("path, value", WRONG, ids=[p for p, _ in WRONG])
def test_a_wrongly_typed_field_is_no_record(path, value):
    assert runfile.problem(parsed()[0]) is None
    found = runfile.problem(broken(path, value))
    assert found is not None and found.strip()


def test_lists_of_another_length_than_the_tokens_are_no_record():
    record = parsed()[0]
    record["scores"]["alti"] = record["scores"]["alti"][:-1]
    assert runfile.problem(record) == "'scores.alti' is not one number per token"
    record = parsed()[0]
    record["special"].append(False)
    assert runfile.problem(record) == "'special' is not one true/false per token"


def test_a_strict_read_names_the_line_a_lenient_read_skips_it(tmp_path):
    items = records(4)
    path = write_run(tmp_path / "run.jsonl", [items[0], broken("scores.alti.0", "0.5"), *items[2:]])
    with pytest.raises(InputError, match=r"line 2 is not an 'alti attribute' record: 'scores.alti' is not one number"):
        runfile.read(str(path), strict=True)
    kept, problems = runfile.read(str(path), strict=False)
    assert [r["id"] for r in kept] == ["0", "2", "3"]
    assert problems == [f"{path}: line 2 not an 'alti attribute' record, skipped"]


def test_a_cut_last_line_is_dropped_and_cut_off_when_resuming(tmp_path):
    items = records(3)
    path = tmp_path / "run.jsonl"
    path.write_text("".join(runfile.line(r) for r in items) + runfile.line(items[0])[:40], encoding="utf-8")
    kept, problems = runfile.read(str(path), strict=False)
    assert len(kept) == 3 and problems == [f"{path}: the last line is cut short (an interrupted run?), skipped"]
    kept, _ = runfile.read(str(path), strict=True, drop_partial=True)
    assert len(kept) == 3 and path.read_text(encoding="utf-8").endswith("\n")
    assert path.read_text(encoding="utf-8") == "".join(runfile.line(r) for r in items)


def test_records_round_trip_to_explanations_with_their_target_objects():
    record = parsed()[0]
    explanation = runfile.explanation_from_record(record)
    assert explanation.target == ClassTarget(record["prediction"]["index"], None, 0, record["prediction"]["label"])
    legacy = {k: v for k, v in record.items() if k not in ("explained", "foil")}
    legacy["target"] = 0
    assert runfile.problem(legacy) is None
    assert runfile.target_of(legacy) == ClassTarget(0, None, 0, "negative")
    lm = dict(record)
    lm["explained"] = {"kind": "next_token", "position": 3, "quantity": "probability"}
    lm["target"] = {"token": " Paris", "id": 7}
    assert runfile.target_of(lm) == NextTokenTarget(7, None, 3, " Paris")
    assert runfile.target_type_of(lm) is NextTokenTarget and runfile.target_type_of(legacy) is ClassTarget


def test_the_writer_writes_what_the_reader_accepts(tmp_path):
    from alti.data import Sample
    from alti.results import Explanation

    record = parsed()[0]
    explanation = runfile.explanation_from_record(record)
    sample = Sample(record["id"], record["text"], record["label"])
    written = runfile.record(sample, explanation, list(record["scores"]))
    assert runfile.problem(json.loads(runfile.line(written))) is None
    assert isinstance(explanation, Explanation)
