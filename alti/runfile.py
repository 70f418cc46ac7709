"""The run file: what ``alti attribute`` writes, one JSON record per sample and line, and how
it is read back.

This module owns the record: its schema (:func:`problem` checks a record's fields, types and
lengths), its writer (:func:`record`, :func:`curves_entry`, :func:`line`), the one reader
(:func:`read`, strict or lenient), the checks that make a resumed run append to the right
file (:func:`check_resumable`, :func:`plan`, :func:`cut_partial_line`), and the way back
from a record to an :class:`~alti.results.Explanation` (:func:`explanation_from_record`).

A record holds ``id``, ``text``, ``label`` (the gold label, or null), ``tokens``,
``input_ids``, ``special``, ``prediction``, ``target`` / ``foil`` / ``explained`` (what was
explained, as in ``alti explain --format json``), ``target_position``, ``scores`` (one list
per method), ``truncated``, ``model``, ``settings`` and ``version``; ``logit_terms`` with
ALTI-Logit, ``extra`` (a dataset's own fields), and with ``--curves`` the sample's deletion
curves under ``faithfulness``: ``{"protocol", "p_full", "methods": {method:
{"comprehensiveness" | "sufficiency": {"score", "aupc", "fractions", "values"}}}}``, and
for an answer with segments ``"context": {method | "random": {"drop@1", "drop@2", "drop@3"}}``
(null where the prompt has fewer segments).  A whole answer's record adds ``answer``,
``steps``, ``segments`` and ``support`` (:func:`problem` checks them).

Nothing here imports torch: the explorer and the HTML report read runs without it.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import numpy as np
import orjson

from alti.errors import InputError
from alti.faithfulness import METRICS
from alti.results import Explanation, Prediction, Segment
from alti.targets import ClassTarget, Target, kind_named

#: what a line that is no record is called in messages
NOT_A_RECORD = "not an 'alti attribute' record"


# ------------------------------------------------------------------ the schema
def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _numbers(values: Any) -> TypeGuard[list[int | float]]:
    return type(values) is list and set(map(type, values)) <= {int, float}


def _all(values: Any, kind: type) -> TypeGuard[list[Any]]:
    return type(values) is list and set(map(type, values)) <= {kind}


def _prediction_problem(prediction: Any) -> str | None:
    if not isinstance(prediction, dict):
        return "'prediction' is not an object"
    if not isinstance(prediction.get("label"), str) or type(prediction.get("index")) is not int:
        return "'prediction' needs a text 'label' and an integer 'index'"
    if "probability" in prediction and not _number(prediction["probability"]):
        return "'prediction.probability' is not a number"
    if "top" in prediction:
        top = prediction["top"]
        good = type(top) is list and all(
            isinstance(t, dict)
            and isinstance(t.get("token"), str)
            and type(t.get("id")) is int
            and _number(t.get("probability"))
            for t in top
        )
        return None if good and top else "'prediction.top' is not a list of {token, id, probability}"
    labels, probabilities = prediction.get("labels"), prediction.get("probabilities")
    if not (_all(labels, str) and _numbers(probabilities) and labels and len(labels) == len(probabilities)):
        return "'prediction' needs as many text 'labels' as numeric 'probabilities'"
    if not 0 <= prediction["index"] < len(labels):
        return "'prediction.index' is not one of its labels"
    return None


def _target_problem(record: dict[str, Any]) -> str | None:
    explained, target = record.get("explained"), record.get("target")
    if explained is None:  # records of earlier versions: a class index, or nothing
        return None if target is None or type(target) is int else "'target' without 'explained'"
    if not isinstance(explained, dict):
        return "'explained' is not an object"
    try:
        kind = kind_named(explained.get("kind"))
    except InputError as error:
        return str(error)
    problem = kind.entry_problem(target, record.get("foil"))
    position = explained.get("position")
    if problem is None and position is not None and type(position) is not int:
        problem = "'explained.position' is not an integer"
    return problem


def _curves_problem(faithfulness: Any, methods: Sequence[str]) -> str | None:
    if not isinstance(faithfulness, dict) or not isinstance(faithfulness.get("protocol"), dict):
        return "'faithfulness' needs a 'protocol' object"
    if not _number(faithfulness.get("p_full")):
        return "'faithfulness.p_full' is not a number"
    curves = faithfulness.get("methods")
    if not isinstance(curves, dict) or set(curves) != set(methods):
        return "'faithfulness.methods' does not hold a curve for each method scored"
    for method, entry in curves.items():
        for metric in METRICS:
            curve = entry.get(metric) if isinstance(entry, dict) else None
            if not (
                isinstance(curve, dict)
                and _number(curve.get("score"))
                and _number(curve.get("aupc"))
                and _numbers(curve.get("fractions"))
                and _numbers(curve.get("values"))
                and len(curve["fractions"]) == len(curve["values"])
            ):
                return f"'faithfulness.methods.{method}.{metric}' is not {{score, aupc, fractions, values}}"
    context = faithfulness.get("context")
    if context is not None and not (
        isinstance(context, dict)
        and set(methods) <= set(context)
        and all(
            isinstance(row, dict) and all(value is None or _number(value) for value in row.values())
            for row in context.values()
        )
    ):
        return "'faithfulness.context' is not {method: {'drop@k': number or null}} for each method scored"
    return None


def _answer_problem(record: dict[str, Any]) -> str | None:
    """A whole answer's fields: ``answer``, each method's ``steps``, ``segments``, ``support``."""
    n = len(record["tokens"])
    answer = record.get("answer")
    if answer is not None:
        if not (
            isinstance(answer, dict)
            and isinstance(answer.get("text"), str)
            and _all(answer.get("ids"), int)
            and type(answer.get("start")) is int
            and 0 < answer["start"] < n
            and len(answer["ids"]) == n - answer["start"]
        ):
            return "'answer' is not {text, ids, tokens, start} closing the tokens"
    steps = record.get("steps")
    if steps is not None:
        if answer is None or not isinstance(steps, dict):
            return "'steps' without an 'answer'"
        for method, rows in steps.items():
            if not (
                type(rows) is list
                and len(rows) == len(answer["ids"])
                and all(_numbers(row) and len(row) == answer["start"] + i for i, row in enumerate(rows))
            ):
                return f"'steps.{method}' is not one list of scores per answer token"
    segments = record.get("segments")
    if segments is not None and not (
        type(segments) is list
        and all(
            isinstance(s, dict)
            and isinstance(s.get("text"), str)
            and type(s.get("start")) is int
            and type(s.get("end")) is int
            and 0 <= s["start"] < s["end"] <= n
            for s in segments
        )
    ):
        return "'segments' is not a list of {text, start, end} token spans"
    support = record.get("support")
    if support is not None and not (_all(support, int) and support and min(support) >= 1):
        return "'support' is not 1-based segment numbers"
    return None


#: optional fields and the test their value must pass
_OPTIONAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "label": (lambda v: v is None or isinstance(v, (str, int)) and type(v) is not bool, "text, a number or null"),
    "target_position": (lambda v: v is None or type(v) is int, "an integer or null"),
    "truncated": (lambda v: type(v) is bool, "true or false"),
    "model": (lambda v: isinstance(v, str), "text"),
    "version": (lambda v: isinstance(v, str), "text"),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "logit_terms": (lambda v: v is None or isinstance(v, dict), "an object"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
}


def problem(record: Any) -> str | None:
    """What makes ``record`` (as parsed from a line of JSON) no valid run record, in a phrase;
    None when it is one.

    Checks every field a reader relies on: presence, types (a score is a number, a token a
    text, ...) and that the token-wise lists (``tokens``, ``input_ids``, ``special`` and each
    method's scores) have one entry per token.
    """
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in ("id", "text", "tokens", "input_ids", "special", "prediction", "scores") if k not in record]
    if missing:
        return f"no {', '.join(repr(k) for k in missing)}"
    if type(record["id"]) not in (str, int):
        return "'id' is not text or an integer"
    if not isinstance(record["text"], str):
        return "'text' is not text"
    tokens = record["tokens"]
    if not _all(tokens, str):
        return "'tokens' is not a list of texts"
    if not _all(record["input_ids"], int) or len(record["input_ids"]) != len(tokens):
        return "'input_ids' is not one integer per token"
    if not _all(record["special"], bool) or len(record["special"]) != len(tokens):
        return "'special' is not one true/false per token"
    scores = record["scores"]
    if not isinstance(scores, dict):
        return "'scores' is not an object of methods"
    for method, values in scores.items():
        if not _numbers(values) or len(values) != len(tokens):
            return f"'scores.{method}' is not one number per token"
    found = _prediction_problem(record["prediction"]) or _target_problem(record)
    if found:
        return found
    for key, (test, wanted) in _OPTIONAL.items():
        if key in record and not test(record[key]):
            return f"'{key}' is not {wanted}"
    found = _answer_problem(record)
    if found is None and "faithfulness" in record:
        found = _curves_problem(record["faithfulness"], list(scores))
    return found


# ------------------------------------------------------------------ reading
def read(path: str, strict: bool = True, drop_partial: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """``(records, problems)`` of a run file, in file order.

    ``strict``: the first line that is no valid record (or scores other methods than the
    first record) raises :class:`InputError` naming its line; a last line without its
    newline (an interrupted write) is left out, and cut off the file when
    ``drop_partial``.  Lenient (``strict=False``): such lines are skipped and summed up in
    one-line ``problems``; a complete record on a last line without newline is kept.
    An unreadable file, and in lenient mode a file with no valid record, raise
    :class:`InputError`.
    """
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; write a run with 'alti attribute --output {path}'") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not an 'alti attribute' JSONL file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = content.split(b"\n")
    partial = lines.pop() if lines else b""
    if strict and drop_partial and partial:
        cut_partial_line(path)
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    other_methods = 0
    # millions of small objects: the collector's passes over them (they hold no cycles) would
    # take more time than the parsing itself
    collecting = gc.isenabled()
    gc.disable()
    try:
        numbered = list(enumerate(lines, start=1))
        if not strict and partial.strip():
            numbered.append((len(lines) + 1, partial))
        methods: list[str] | None = None
        for number, text in numbered:
            if not text.strip():
                continue
            record, found = _parse(text)
            if found is None and methods is not None and list(record["scores"]) != methods:
                if strict:
                    found = f"it scores {','.join(record['scores'])}, not {','.join(methods)} as the first record"
                else:
                    other_methods += 1
                    continue
            if found is None:
                methods = methods or list(record["scores"])
                records.append(record)
            elif strict:
                raise InputError(f"{path} line {number} is {NOT_A_RECORD}: {found}")
            else:
                bad.append(number)
    finally:
        if collecting:
            gc.enable()
    problems = []
    cut = bool(not strict and partial.strip() and bad and bad[-1] == len(lines) + 1)
    if cut:
        bad.pop()
    if bad:
        where = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        problems.append(f"{path}: line{'s' if len(bad) > 1 else ''} {where} {NOT_A_RECORD}, skipped")
    if cut:
        problems.append(f"{path}: the last line is cut short (an interrupted run?), skipped")
    if other_methods:
        problems.append(
            f"{path}: {other_methods} record(s) score other methods than {','.join(methods or [])}, skipped"
        )
    if not strict and not records:
        raise InputError(f"{path} holds no 'alti attribute' record; write one with 'alti attribute --output FILE'")
    return records, problems


def _parse(line: bytes) -> tuple[Any, str | None]:
    """A line's record and what is wrong with it (None: nothing)."""
    try:
        record = orjson.loads(line)  # the same objects as json's, four times faster on score lists
    except orjson.JSONDecodeError:
        try:  # Python's json also writes NaN and Infinity, which orjson refuses
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, "not JSON"
    return record, problem(record)


# ------------------------------------------------------------------ writing
def record(sample, explanation: Explanation, methods: Sequence[str]) -> dict[str, Any]:
    """The record of ``sample`` (an :class:`alti.data.Sample`) explained by ``methods``."""
    doc = explanation.to_dict()
    out = {
        "id": sample.id,
        "text": sample.text,
        "label": sample.label,
        "tokens": doc["tokens"],
        "input_ids": doc["input_ids"],
        "special": doc["special"],
        "prediction": doc["prediction"],
        "target": doc.get("target"),
        "foil": doc.get("foil"),
        "explained": doc.get("explained"),
        "target_position": doc["target_position"],
        "scores": {m: [float(v) for v in explanation.scores[m]] for m in methods},
        "truncated": bool(explanation.truncated),
        "model": explanation.model_name,
        "settings": {m: explanation.settings.get(m, {}) for m in methods},
        "version": explanation.version,
    }
    if "logit_terms" in doc:
        out["logit_terms"] = doc["logit_terms"]
    for key in ("answer", "steps", "segments"):  # a whole answer's
        if key in doc:
            out[key] = doc[key] if key != "steps" else {m: doc["steps"][m] for m in methods if m in doc["steps"]}
    if getattr(sample, "support", None) is not None:
        out["support"] = list(sample.support)
    if sample.extra:
        out["extra"] = dict(sample.extra)
    return out


def curves_entry(explainer, explanation: Explanation, methods: Sequence[str], protocol, batch_size: int) -> dict:
    """A record's ``faithfulness`` entry: the sample's deletion curves under ``protocol``; for
    an answer with segments also ``context``, each method's (and the random baseline's)
    ``drop@k`` of log p(answer) without its top segments (null where there are fewer than k)."""
    from alti.faithfulness import explained_target, explanation_curves, segment_drops

    curves = explanation_curves(explainer, explanation, methods, protocol, batch_size)
    entry = {
        "protocol": {**protocol.to_dict(), "target": explained_target(explanation).protocol_description()},
        "p_full": curves[(methods[0], "comprehensiveness")].p_full,
        "methods": {
            method: {
                metric: {
                    "score": curve.score,
                    "aupc": curve.aupc,
                    "fractions": list(curve.fractions),
                    "values": list(curve.values),
                }
                for metric in METRICS
                for curve in [curves[(method, metric)]]
            }
            for method in methods
        },
    }
    if explanation.segments is not None:
        drops = segment_drops(explainer, explanation, methods)
        entry["context"] = {
            name: {key: None if math.isnan(value) else value for key, value in row.items()}
            for name, row in drops.items()
        }
    return entry


def line(entry: dict[str, Any]) -> str:
    """One record as the line the file holds."""
    return json.dumps(entry, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ back to an explanation
def target_of(entry: dict[str, Any]) -> Target:
    """What a record explained; records of earlier versions hold a class index under ``target``
    (or nothing: the predicted class)."""
    explained, target = entry.get("explained"), entry.get("target")
    if isinstance(explained, dict) and isinstance(target, dict):
        return Target.from_dict({**explained, "target": target, "foil": entry.get("foil")})
    prediction = entry["prediction"]
    index = int(prediction["index"]) if target is None else int(target)
    labels = prediction.get("labels") if "top" not in prediction else None
    label = labels[index] if labels and index < len(labels) else ""
    return ClassTarget(index, None, entry.get("target_position", 0), label)


def target_type_of(entry: dict[str, Any]) -> type[Target]:
    """The kind of target a record explained (a class for records of earlier versions)."""
    explained = entry.get("explained")
    return kind_named(explained.get("kind") if isinstance(explained, dict) else None)


def explanation_from_record(entry: dict[str, Any]) -> Explanation:
    """An :class:`~alti.results.Explanation` (scores only) rebuilt from a record."""
    prediction = Prediction.from_dict(entry["prediction"])
    position = entry.get("target_position", 0)
    return Explanation(
        text=entry["text"],
        tokens=list(entry["tokens"]),
        input_ids=[int(i) for i in entry["input_ids"]],
        prediction=prediction,
        scores={m: np.asarray(v, dtype=np.float64) for m, v in entry["scores"].items()},
        target_position=None if position is None else int(position),
        special=np.asarray(entry["special"], dtype=bool),
        truncated=bool(entry.get("truncated", False)),
        model_name=entry.get("model", ""),
        settings=dict(entry.get("settings", {})),
        version=entry.get("version", ""),
        target=target_of(entry),
        logit_terms=entry.get("logit_terms"),
        steps={m: _steps(rows, len(entry["tokens"])) for m, rows in (entry.get("steps") or {}).items()},
        segments=None
        if entry.get("segments") is None
        else [Segment(s["text"], int(s["start"]), int(s["end"])) for s in entry["segments"]],
    )


def _steps(rows: list[list[float]], n: int) -> np.ndarray:
    """A whole answer's steps as an (k, n) array: step i's scores, zeros after them."""
    out = np.zeros((len(rows), n))
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


# ------------------------------------------------------------------ resuming
def cut_partial_line(path: str) -> None:
    """Cut an incomplete last line (no newline yet) off the file."""
    with open(path, "r+b") as handle:
        content = handle.read()
        handle.truncate(content.rfind(b"\n") + 1)


def check_resumable(
    path: str, records, methods: Sequence[str], model: str | None = None, curves: bool | None = None
) -> None:
    """Refuse to append records of other methods, with(out) curves, or (once loaded) of another model to ``path``."""
    if not records:
        return
    have = list(records[0]["scores"])
    if have != list(methods):
        raise InputError(
            f"{path} holds scores for {','.join(have)}; resume with --methods {','.join(have)} "
            "or write to another --output"
        )
    if curves is not None and ("faithfulness" in records[0]) != curves:
        raise InputError(
            f"{path} holds deletion curves; resume with --curves or write to another --output"
            if not curves
            else f"{path} holds no deletion curves; resume without --curves or write to another --output"
        )
    if model is not None and records[0].get("model") != model:
        raise InputError(
            f"{path} was written with model {records[0].get('model')!r}, not {model!r}; "
            "resume with the same --model or write to another --output"
        )


def plan(samples, records, batch_size: int) -> dict[str, list]:
    """The batches still to explain (by index), and the ids inside them that are already written.

    Samples are explained in fixed batches of the dataset, so a resumed batch is computed
    exactly as it would have been without the interruption."""
    done = {str(r["id"]) for r in records}
    batches: list[int] = []
    skip: list[str] = []
    for b, start in enumerate(range(0, len(samples), batch_size)):
        ids = [s.id for s in samples[start : start + batch_size]]
        if not all(i in done for i in ids):
            batches.append(b)
            skip.extend(i for i in ids if i in done)
    return {"batches": batches, "skip": skip}
