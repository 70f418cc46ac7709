"""``alti attribute``: attributions of a whole dataset into one JSONL file.

One JSON object per line and per sample: ``id``, ``text``, ``label`` (the
gold label, or null), ``tokens``, ``input_ids``, ``special``, ``prediction``,
``scores`` (one list per method), ``truncated``, ``model``, ``settings`` and
``version``.  Every record is written in one piece and flushed, so an
interrupted run (Ctrl-C) leaves a file of complete lines; running the same
command again skips the ids already there and appends the rest, giving the
same file as one uninterrupted run (samples are explained in fixed batches of
the dataset, so a resumed batch is computed exactly as before).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from alti.cli import add_model_options
from alti.errors import InputError

DEFAULT_METHODS = "alti,attention,rollout,norm_rollout,globenc,grad_l2,gxi_l2,ig_l2"


def add_common_arguments(
    parser: argparse.ArgumentParser, methods_default: str | None, methods_help: str, batch_size: int
) -> None:
    """Model, dataset and method options shared by ``attribute`` and ``evaluate``."""
    add_model_options(parser)
    parser.add_argument(
        "--dataset",
        "-d",
        default="samples",
        help="samples (default, embedded), sst2, imdb, yelp, sva:PATH (agreement TSV; needs a masked-LM "
        "--model), or a local .csv/.tsv/.jsonl file",
    )
    parser.add_argument("--split", help="dataset split (default: sst2 validation, imdb/yelp test)")
    parser.add_argument("--text-column", help="text column of a local file (default: detected)")
    parser.add_argument("--label-column", help="label column of a local file (default: detected)")
    parser.add_argument("--methods", default=methods_default, help=f"comma-separated method names (default: {methods_help})")
    parser.add_argument("--limit", "-n", type=int, help="only the first N samples (default: all)")
    parser.add_argument(
        "--batch-size", type=int, default=batch_size, help=f"inputs per forward batch (default: {batch_size})"
    )
    parser.add_argument("--ig-steps", type=int, default=50, help="integration steps of ig_l2/ig_dot (default: 50)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attribute",
        help="attributions of a dataset into a JSONL file",
        description=(
            "Explain every sample of a dataset with the chosen methods and write one JSON record\n"
            "per sample (tokens, prediction, scores, gold label). Ctrl-C leaves a valid file;\n"
            "running the same command again resumes where it stopped."
        ),
        epilog=(
            "examples:\n"
            "  alti attribute --output samples.jsonl\n"
            "  alti attribute --dataset sst2 --limit 200 --methods alti,ig_l2 --output sst2.jsonl\n"
            "  alti evaluate --attributions sst2.jsonl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, DEFAULT_METHODS, DEFAULT_METHODS, batch_size=8)
    parser.add_argument("--output", "-o", required=True, metavar="FILE", help="the JSONL file to write or resume")
    parser.set_defaults(func=run)


def check_numbers(args) -> None:
    if args.limit is not None and args.limit < 0:
        raise InputError(f"--limit must be 0 or more, not {args.limit}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.ig_steps < 1:
        raise InputError(f"--ig-steps must be at least 1, not {args.ig_steps}")


def method_options(methods: Sequence[str], ig_steps: int) -> dict[str, dict[str, Any]]:
    return {m: {"steps": ig_steps} for m in methods if m in ("ig_l2", "ig_dot")}


def load_samples(args):
    from alti.data import load_dataset

    return load_dataset(
        args.dataset, split=args.split, limit=args.limit, text_column=args.text_column, label_column=args.label_column
    )


def is_agreement(items) -> bool:
    """Subject-verb agreement samples (or records) carry the two verb forms."""
    return any("correct" in (getattr(i, "extra", None) or (i.get("extra") if isinstance(i, dict) else None) or {})
               for i in items)


def load_explainer(args, agreement: bool = False):
    """The classifier of ``--model``, or for agreement data the masked LM of ``--model``."""
    from alti import Explainer
    from alti.cli import quiet_libraries

    quiet_libraries()
    if agreement:
        from alti.data.sva import load_masked_lm

        if args.model == "demo":
            raise InputError("agreement data needs a masked LM: pass --model bert-base-uncased or a local masked-LM directory")
        return load_masked_lm(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    return Explainer.from_pretrained(args.model, device=args.device, trust_remote_code=args.trust_remote_code)


def explain_chunk(explainer, chunk, methods, options, batch_size: int, agreement: bool):
    """``(explanation, curve explainer, target)`` per sample of ``chunk``.

    Classifier samples are explained in one batch, for their predicted class;
    agreement samples one by one at ``[MASK]``, for the correct verb form.
    """
    if not agreement:
        explanations = explainer.explain_batch([s.text for s in chunk], methods, batch_size=batch_size, options=options)
        return [(e, explainer, e.prediction.index) for e in explanations]
    from alti.data.sva import CORRECT, explain_agreement

    return [(*explain_agreement(explainer, s, methods, options), CORRECT) for s in chunk]


def progress_bar(description: str):
    """A rich progress bar on stderr with count, rate and ETA (hidden when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?/s" if speed is None else f"{speed:.2f} samples/s", style="progress.data.speed")

    console = Console(stderr=True)
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def to_record(sample, explanation, methods: Sequence[str], target: int) -> dict[str, Any]:
    record = {
        "id": sample.id,
        "text": sample.text,
        "label": sample.label,
        "tokens": list(explanation.tokens),
        "input_ids": [int(i) for i in explanation.input_ids],
        "special": [bool(s) for s in explanation.special],
        "prediction": explanation.prediction.to_dict(),
        "target": int(target),
        "target_position": int(explanation.target_position),
        "scores": {m: [float(v) for v in explanation.scores[m]] for m in methods},
        "truncated": bool(explanation.truncated),
        "model": explanation.model_name,
        "settings": {m: explanation.settings.get(m, {}) for m in methods},
        "version": explanation.version,
    }
    if sample.extra:
        record["extra"] = dict(sample.extra)
    return record


def explanation_from_record(record: dict[str, Any]):
    """An :class:`~alti.results.Explanation` (scores only) rebuilt from a JSONL record."""
    from alti.results import Explanation, Prediction

    prediction = record["prediction"]
    return Explanation(
        text=record["text"],
        tokens=list(record["tokens"]),
        input_ids=[int(i) for i in record["input_ids"]],
        prediction=Prediction(
            label=prediction["label"],
            index=int(prediction["index"]),
            probabilities=np.asarray(prediction["probabilities"], dtype=np.float64),
            labels=list(prediction["labels"]),
        ),
        scores={m: np.asarray(v, dtype=np.float64) for m, v in record["scores"].items()},
        target_position=int(record.get("target_position", 0)),
        special=np.asarray(record["special"], dtype=bool),
        truncated=bool(record.get("truncated", False)),
        model_name=record.get("model", ""),
        settings=dict(record.get("settings", {})),
        version=record.get("version", ""),
    )


def cut_partial_line(path: str) -> None:
    """Cut an incomplete last line (no newline yet) off the file."""
    with open(path, "r+b") as handle:
        content = handle.read()
        handle.truncate(content.rfind(b"\n") + 1)


def read_records(path: str, drop_partial: bool = False) -> list[dict[str, Any]]:
    """The complete records of a JSONL attributions file.

    A last line without its newline is what an interrupted write leaves: it is
    cut off the file when ``drop_partial``, else ignored.
    """
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise InputError(f"attributions file {path} does not exist; write it with 'alti attribute'") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    complete = content[: content.rfind(b"\n") + 1]
    if drop_partial and len(complete) < len(content):
        cut_partial_line(path)
    records = []
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(f"{path} line {number} is not a JSON record; is it an 'alti attribute' output?") from None
        if not isinstance(record, dict) or not {"id", "scores", "input_ids", "special", "prediction"} <= set(record):
            raise InputError(f"{path} line {number} is not an 'alti attribute' record")
        records.append(record)
    return records


def check_resumable(path: str, records, methods: Sequence[str], model: str | None = None) -> None:
    """Refuse to append records of other methods (or, once loaded, another model) to ``path``."""
    if not records:
        return
    have = list(records[0]["scores"])
    if have != list(methods):
        raise InputError(
            f"{path} holds scores for {','.join(have)}; resume with --methods {','.join(have)} "
            "or write to another --output"
        )
    if model is not None and records[0].get("model") != model:
        raise InputError(
            f"{path} was written with model {records[0].get('model')!r}, not {model!r}; "
            "resume with the same --model or write to another --output"
        )


def run(args) -> int:
    from alti.cli.explain import check_output, parse_methods

    check_numbers(args)
    methods = parse_methods(args.methods)
    check_output(args.output)
    samples = load_samples(args)
    exists = os.path.exists(args.output)
    records = read_records(args.output, drop_partial=True) if exists else []
    check_resumable(args.output, records, methods)
    agreement = is_agreement(samples)
    explainer = load_explainer(args, agreement)
    check_resumable(args.output, records, methods, explainer.name)
    done = {str(r["id"]) for r in records}
    options = method_options(methods, args.ig_steps)
    written = 0
    try:
        with open(args.output, "a", encoding="utf-8") as out, progress_bar("attribute") as progress:
            task = progress.add_task("attribute", total=len(samples), completed=sum(s.id in done for s in samples))
            for start in range(0, len(samples), args.batch_size):
                chunk = samples[start : start + args.batch_size]
                if all(s.id in done for s in chunk):
                    continue
                explained = explain_chunk(explainer, chunk, methods, options, args.batch_size, agreement)
                for sample, (explanation, _, target) in zip(chunk, explained):
                    if sample.id in done:
                        continue
                    record = to_record(sample, explanation, methods, target)
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    out.flush()
                    done.add(sample.id)
                    written += 1
                    progress.advance(task)
    except KeyboardInterrupt:
        cut_partial_line(args.output)
        print(f"alti: wrote {written} records to {args.output}; run the same command to resume", file=sys.stderr)
        raise
    print(
        f"alti: wrote {written} records to {args.output} ({len(records)} were already there)",
        file=sys.stderr,
    )
    return 0
