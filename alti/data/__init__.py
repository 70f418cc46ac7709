"""Datasets to explain and evaluate: the embedded samples, Hugging Face sets, local files.

``load_dataset(name_or_path, split=None, limit=None, text_column=None,
label_column=None)`` returns a :class:`Samples` list of :class:`Sample`:

- ``samples`` (the default): the sentences embedded in the package
  (``alti/data/samples.jsonl``).
- ``sst2`` (GLUE; split ``validation`` by default, labelled; ``test`` has no
  labels), ``imdb`` (split ``test``) and ``yelp`` (``yelp_polarity``, split
  ``test``) through Hugging Face ``datasets``.  Labels become ``"negative"`` /
  ``"positive"``.  When the Hub cannot be reached (or ``HF_HUB_OFFLINE`` /
  ``HF_DATASETS_OFFLINE`` is set) only the local cache is tried, so the call
  fails within seconds with a :class:`~alti.errors.DatasetError`.
- ``sva:PATH``: subject-verb agreement items from a local TSV, either the
  headerless five-column format of Goldberg (2019), derived from Linzen et
  al. (2016) (``attractors, sentence, masked sentence, correct verb, wrong
  verb``, the verb written ``***mask***``), or a TSV with a header naming
  ``sentence`` (with ``***mask***`` or ``[MASK]``), ``correct`` and ``wrong``.
  The text holds ``[MASK]`` at the verb; the label and the target are the
  correct form, the foil the wrong one, and ``extra`` holds ``attractors``.
  A masked LM explains them at ``[MASK]`` (:mod:`alti.targets`: the
  probability of the correct form against the wrong one), also
  ``alti attribute`` / ``alti evaluate --model MASKED_LM --dataset sva:PATH``.
- any local ``.csv``, ``.tsv`` or ``.jsonl`` file: the text column is the
  first of :data:`TEXT_COLUMNS` present, else the column with the longest
  values; the label column the first of :data:`LABEL_COLUMNS` present, else
  none (or, in a headerless two-column file, the other column).  Both can be
  named explicitly (a header name, or a 0-based index for headerless files).
  A table's first row is its header when it holds a known column name or a
  column named explicitly; a first row that names none but looks like a
  header (a word over a column of numbers, or of longer texts) is an error
  asking for ``--text-column``, never read as a sample.
  Columns named ``target`` and ``foil`` give each sample what a language
  model explains (a token such as ``" Paris"``, or ``id:1234``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlparse

from alti.errors import DatasetError

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "sentence1", "utterance")
LABEL_COLUMNS = ("label", "labels", "gold", "sentiment", "class", "target", "category")
ID_COLUMNS = ("id", "idx", "guid", "uid")
#: How a row's ``context`` and ``question`` make the prompt of an answer dataset.
CONTEXT_TEMPLATE = "{context}\n\nQuestion: {question}"

HUB = {
    # name: (path, config, default split, text column, label column)
    "sst2": ("nyu-mll/glue", "sst2", "validation", "sentence", "label"),
    "imdb": ("stanfordnlp/imdb", None, "test", "text", "label"),
    "yelp": ("fancyzhx/yelp_polarity", None, "test", "text", "label"),
}
POLARITY = {"neg": "negative", "pos": "positive", "1": "negative", "2": "positive"}
LOCAL_SUFFIXES = (".csv", ".tsv", ".jsonl")
MASK_MARKERS = ("***mask***", "[MASK]", "<mask>")
NAMES = ("samples", *HUB, "sva:PATH")


@dataclass(frozen=True)
class Sample:
    """One example: its text, gold label, and for language models what to explain.

    ``target`` / ``foil``: the token a language model's explanation is about and the
    one it is contrasted with (None: the predicted token, no foil).

    Answer datasets (a ``prompt`` column, or ``context`` and ``question`` joined by
    :data:`CONTEXT_TEMPLATE`): ``text`` is the prompt, ``answer`` the answer to explain (None:
    generate one), ``segments`` character spans of the prompt, ``support`` the 1-based indices
    of the segments that support the answer.
    """

    id: str
    text: str
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    foil: str | None = None
    answer: str | None = None
    segments: tuple[tuple[int, int], ...] | None = None
    support: tuple[int, ...] | None = None
    prompted: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "text": self.text, "label": self.label}
        if self.extra:
            data["extra"] = dict(self.extra)
        if self.target is not None or self.foil is not None:
            data["target"], data["foil"] = self.target, self.foil
        return data


class Samples(list):
    """A list of :class:`Sample` that remembers where it came from, and which rows of a local
    file it left out: ``skipped`` maps each reason to the file's line numbers."""

    def __init__(self, items, name: str, split: str | None = None, skipped: dict[str, list[int]] | None = None):
        super().__init__(items)
        self.name = name
        self.split = split
        self.skipped = skipped or {}

    def skip_note(self) -> str | None:
        """One line on the rows left out (how many, why, the first lines of each), or None."""
        if not self.skipped:
            return None
        count = sum(len(lines) for lines in self.skipped.values())
        return f"{self.name}: skipped {count} of {count + len(self)} rows: {_reasons(self.skipped)}"


def _reasons(skipped: dict[str, list[int]]) -> str:
    return "; ".join(f"{reason} ({_lines(lines)})" for reason, lines in skipped.items())


def _lines(numbers: list[int], shown: int = 3) -> str:
    head = ", ".join(map(str, numbers[:shown]))
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    return f"line{'s' if len(numbers) > 1 else ''} {head}{more}"


def load_dataset(
    name_or_path: str = "samples",
    split: str | None = None,
    limit: int | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> Samples:
    """Load a dataset by name (``samples``, ``sst2``, ``imdb``, ``yelp``, ``sva:PATH``) or path."""
    if limit is not None and limit < 0:
        raise DatasetError(f"the limit must be 0 or more, not {limit}")
    name = name_or_path.strip()
    if name == "samples":
        items, split = _embedded(), None
    elif name.lower() in HUB:
        name = name.lower()
        split = split or HUB[name][2]
        items = _hub(name, split, limit)
    elif name.lower().startswith("sva:") or name.lower() == "sva":
        path = name[4:]
        if not path:
            raise DatasetError("sva needs a local TSV in the Linzen/Goldberg agreement format: use sva:PATH")
        items, name = _sva(path), f"sva:{path}"
    elif name.lower().endswith(LOCAL_SUFFIXES) or os.path.isfile(name):
        items = _local(name, text_column, label_column)
    else:
        raise DatasetError(
            f"unknown dataset {name_or_path!r}; use one of {', '.join(NAMES)}, or a local .csv, .tsv or .jsonl file"
        )
    skipped = getattr(items, "skipped", {})
    if limit is not None:
        items = items[:limit]
    return Samples(items, name, split, skipped)


def _embedded() -> list[Sample]:
    source = resources.files("alti.data").joinpath("samples.jsonl")
    if not source.is_file():
        raise DatasetError("the embedded samples (alti/data/samples.jsonl) are missing; reinstall alti")
    rows = _jsonl_rows(source.read_text(encoding="utf-8"), "samples")
    return _samples(rows, "text", "label", "samples")


def _open_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DatasetError(f"dataset file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise DatasetError(f"dataset path {path} is a directory; give a .csv, .tsv or .jsonl file") from None
    except UnicodeDecodeError:
        raise DatasetError(f"dataset file {path} is not UTF-8 text; convert it to UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"cannot read dataset file {path}: {exc.strerror or exc}") from None


def _jsonl_rows(content: str, path: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of each line of a JSONL text."""
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} line {number} is not valid JSON ({exc.msg}); fix or remove it") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path} line {number} is not a JSON object; write one object per line")
        rows.append((number, row))
    return rows


def _table_rows(
    content: str, delimiter: str, path: str, named: tuple[str, ...] = ()
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """``(line number, row)`` of each row, as dicts keyed by header names, or by "0", "1", ...
    when there is no header; the line is where the row starts (a quoted cell may span lines).

    The first row is a header when it holds a known column name or one of the
    ``named`` columns (those given by name, not by index).
    """
    reader = csv.reader(io.StringIO(content), delimiter=delimiter)
    table, line = [], 1
    try:
        for row in reader:
            if row:
                table.append((line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DatasetError(f"cannot parse {path}: {exc}") from None
    if not table:
        return [], True
    known = {*TEXT_COLUMNS, *LABEL_COLUMNS, *ID_COLUMNS}
    first = [cell.strip() for cell in table[0][1]]
    header = any(cell.lower() in known for cell in first) or any(n in first for n in named if not n.isdigit())
    names = first if header else [str(i) for i in range(len(table[0][1]))]
    body = table[1:] if header else table
    return [(number, dict(zip(names, row))) for number, row in body], header


def _local(path: str, text_column: str | None, label_column: str | None) -> list[Sample]:
    content = _open_text(path)
    lower = path.lower()
    header = True
    if lower.endswith(".jsonl"):
        numbered = _jsonl_rows(content, path)
    else:
        delimiter = "," if lower.endswith(".csv") else "\t"
        named = tuple(c for c in (text_column, label_column) if c is not None)
        numbered, header = _table_rows(content, delimiter, path, named)
    if not numbered:
        raise DatasetError(f"dataset file {path} has no rows")
    rows = [row for _, row in numbered]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if not columns:
        raise DatasetError(f"the rows of {path} hold no field; each row needs a text (a 'text' column)")
    found = _columns_found(rows, columns, header)
    if text_column is None and not header and _reads_as_header(rows, columns):
        raise DatasetError(
            f"{path}: its first row ({', '.join(rows[0].get(c, '') for c in columns)}) looks like a header that "
            "names no text column; name the text column with --text-column (and the label column with "
            "--label-column): a name from that row, or a 0-based index if the file has no header"
        )
    lowered = {c.lower(): c for c in columns}
    if text_column is None and {"context", "question"} <= set(lowered):
        context, question = lowered["context"], lowered["question"]
        prompt = lowered.setdefault("prompt", "prompt")
        if prompt not in columns:
            columns.append(prompt)
        for row in rows:  # the rows are numbered's own dicts: the prompt is there for _samples
            if row.get(prompt) is None and isinstance(row.get(context), str) and isinstance(row.get(question), str):
                row[prompt] = CONTEXT_TEMPLATE.format(context=row[context], question=row[question])
    if text_column is None and "prompt" in lowered:
        text_column = lowered["prompt"]
    text = text_column if text_column is not None else _guess_text(rows, columns, path, found)
    if text not in columns:
        raise DatasetError(f"{path} has no column {text!r}; its columns are: {found}")
    if label_column is None:
        label = _first_present(LABEL_COLUMNS, columns)
        if label is None and not header and len(columns) == 2:
            label = next(c for c in columns if c != text)
    else:
        label = label_column
        if label not in columns:
            raise DatasetError(f"{path} has no column {label!r}; its columns are: {found}")
    return _samples(numbered, text, label, path, prompted="prompt" in lowered)


def _first_present(candidates, columns) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _columns_found(rows, columns, header: bool) -> str:
    """The columns, as an error lists them: a headerless file's by index, with its first row."""
    if header:
        return ", ".join(columns)
    return f"{', '.join(columns)} (no header; the first row holds: {', '.join(rows[0].get(c, '') for c in columns)})"


def _reads_as_header(rows, columns) -> bool:
    """Whether the first row of a file read as headerless looks like a header after all:
    a name over a column of numbers, or one word over a column of longer texts."""
    first, rest = rows[0], rows[1:]
    for column in columns:
        cell = (first.get(column) or "").strip()
        values = [v.strip() for v in (row.get(column) for row in rest) if isinstance(v, str) and v.strip()]
        if not cell or not values:
            continue
        if not _is_number(cell) and all(_is_number(v) for v in values):
            return True
        if " " not in cell and 2 * sum(" " in v for v in values) > len(values):
            return True
    return False


def _guess_text(rows, columns, path, listed: str) -> str:
    """The first column named like a text, else the one with the longest non-numeric values."""
    found = _first_present(TEXT_COLUMNS, columns)
    if found is not None:
        return found

    def mean_length(column):
        values = [row.get(column) for row in rows]
        strings = [v for v in values if isinstance(v, str) and not _is_number(v)]
        return sum(len(s) for s in strings) / len(values) if strings else -1.0

    best = max(columns, key=mean_length)
    if mean_length(best) <= 0:
        raise DatasetError(
            f"{path} has no text column among its columns, {listed}; name it with --text-column "
            "(and the label with --label-column)"
        )
    return best


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _kind_of(value: Any) -> str:
    """What a JSON value is, in a reason for skipping its row."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _answer_fields(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """An answer row's ``answer``, ``segments`` and ``support`` (or why the row is unusable)."""
    answer, segments, support = row.get("answer"), row.get("segments"), row.get("support")
    if answer is not None and not isinstance(answer, str):
        return {}, f"'answer' is {_kind_of(answer)}, not text"
    if isinstance(answer, str) and not answer.strip():
        answer = None  # empty: generate one
    spans = None
    if segments not in (None, ""):
        if isinstance(segments, str):
            try:
                segments = json.loads(segments)
            except json.JSONDecodeError:
                return {}, "'segments' is not a list of [start, end] character spans"
        if not isinstance(segments, list) or not all(
            isinstance(s, list) and len(s) == 2 and all(type(v) is int for v in s) and 0 <= s[0] < s[1]
            for s in segments
        ):
            return {}, "'segments' is not a list of [start, end] character spans"
        spans = tuple((s[0], s[1]) for s in segments)
    indices = None
    if support not in (None, ""):
        if isinstance(support, str):
            parts = [p.strip() for p in support.split(",")]
            support = [int(p) if p.isdigit() else p for p in parts]
        if type(support) is int:
            support = [support]
        if not isinstance(support, list) or not support or not all(type(v) is int and v >= 1 for v in support):
            return {}, "'support' is not 1-based segment numbers"
        indices = tuple(support)
    return {"answer": answer, "segments": spans, "support": indices}, None


def _samples(numbered, text: str, label: str | None, path: str, prompted: bool = False) -> Samples:
    """The samples of ``(line, row)`` pairs; rows without a usable text (or with a target/foil
    that is neither text nor a token id) are left out and counted by reason in ``skipped``.
    No row left is an error naming the reasons."""
    id_column = _first_present(ID_COLUMNS, list(numbered[0][1])) if numbered else None
    samples: list[Sample] = []
    seen: set[str] = set()
    skipped: dict[str, list[int]] = {}
    for number, (line, row) in enumerate(numbered):
        value = row.get(text)
        reason = None
        if not isinstance(value, str):
            reason = f"'{text}' is {_kind_of(value)}" if text in row else f"no '{text}'"
        elif not value.strip():
            reason = f"'{text}' is empty"
        else:
            for column in ("target", "foil"):
                cell = row.get(column)
                if not (
                    cell is None or isinstance(cell, str) or (isinstance(cell, int) and not isinstance(cell, bool))
                ):
                    reason = f"'{column}' is {_kind_of(cell)}, not a token or an id"
        fields: dict[str, Any] = {}
        if reason is None and prompted:
            fields, reason = _answer_fields(row)
        if reason is not None:
            skipped.setdefault(reason, []).append(line)
            continue
        sample_id = str(row[id_column]) if id_column and row.get(id_column) is not None else str(number)
        if sample_id in seen:
            raise DatasetError(f"{path} repeats the id {sample_id!r}; ids must be unique")
        seen.add(sample_id)
        samples.append(
            Sample(
                sample_id,
                value,
                _label(row.get(label)) if label else None,
                target=_token(row.get("target")),
                foil=_token(row.get("foil")),
                prompted=prompted,
                **fields,
            )
        )
    found = Samples(samples, path, None, skipped)
    if not samples and skipped:
        raise DatasetError(f"{path} has no usable row: {_reasons(skipped)}")
    return found


def _token(value: Any) -> str | None:
    """A target or foil cell: kept as written (a leading space matters), None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value if isinstance(value, str) else f"id:{int(value)}"


def _sva(path: str) -> list[Sample]:
    rows, header = _table_rows(_open_text(path), "\t", path)
    samples = []
    for number, (line, row) in enumerate(rows):
        if header:
            sentence = row.get("sentence") or row.get("masked") or ""
            correct, wrong, attractors = row.get("correct"), row.get("wrong"), row.get("attractors")
        elif len(row) >= 5:
            attractors, _, sentence, correct, wrong = (row[str(i)] for i in range(5))
        else:
            raise DatasetError(
                f"{path} line {line} has {len(row)} columns; sva expects "
                "attractors, sentence, masked sentence, correct verb, wrong verb"
            )
        marker = next((m for m in MASK_MARKERS if m in sentence), None)
        if marker is None or not correct or not wrong:
            raise DatasetError(f"{path} line {line} needs a sentence with ***mask*** and both verb forms")
        extra = {}
        if attractors not in (None, ""):
            extra["attractors"] = int(attractors) if str(attractors).isdigit() else attractors
        samples.append(
            Sample(str(number), sentence.replace(marker, "[MASK]"), correct, extra, target=correct, foil=wrong)
        )
    return samples


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _offline_by_env() -> bool:
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag.strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags)


@contextlib.contextmanager
def _offline_mode():
    """Make ``datasets`` read its cache only, without its slow retries against an unreachable Hub."""
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _hub(name: str, split: str, limit: int | None) -> list[Sample]:
    path, config, _, text, label = HUB[name]
    offline = _offline_by_env() or not _hub_reachable()
    try:
        import datasets
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
        with _offline_mode() if offline else contextlib.nullcontext():
            data = datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # datasets raises many types: connection, missing split, cache errors
        if offline:
            raise DatasetError(
                f"cannot reach the Hugging Face Hub for {name} and it is not in the local cache; "
                "download it once online, or pass a local .csv/.tsv/.jsonl file instead"
            ) from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"cannot load {name} split {split!r}: {reason}") from None
    names = getattr(data.features.get(label), "names", None)
    count = len(data) if limit is None else min(limit, len(data))
    samples = []
    for number, row in enumerate(data.select(range(count))):
        value = row[label]
        gold = None if value is None or value < 0 else str(names[value] if names else value)
        sample_id = str(row.get("idx", number))
        samples.append(Sample(sample_id, row[text], POLARITY.get(gold, gold) if gold else None))
    return samples
