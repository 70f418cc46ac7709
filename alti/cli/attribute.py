"""``alti attribute``: attributions of a whole dataset into one JSONL file.

One JSON record per line and per sample (:mod:`alti.runfile` owns the format).  With
``--curves`` a record also holds the sample's deletion curves (the paper's protocol, as
``alti evaluate``); the mean of a method's ``score`` and ``aupc`` over the records is what
``alti evaluate --attributions`` reports.

Every record is written in one piece and flushed, so an interrupted run
(Ctrl-C) leaves a file of complete lines; running the same command again
skips the ids already there and appends the rest, giving the same file as one
uninterrupted run (samples are explained in fixed batches of the dataset, so
a resumed batch is computed exactly as before).

Under ``torchrun`` (or ``accelerate launch``, ``srun torchrun``) each process
explains whole batches (:mod:`alti.distributed`) and rank 0 alone reads and
writes the file, in dataset order: the file is byte for byte that of one
process with the same number of threads (CPU matrix products round
differently with other thread counts), a killed run leaves a prefix of
complete lines, and the same command resumes it with any number of processes.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from dataclasses import dataclass
from typing import Any

from alti import runfile
from alti.catalog import DATASET_METHODS
from alti.errors import InputError
from alti.options import (
    add_answer_options,
    add_length_option,
    add_method_options,
    add_model_options,
    add_target_options,
    check_method_options,
    method_options,
)

DEFAULT_METHODS = ",".join(DATASET_METHODS)


def add_common_arguments(
    parser: argparse.ArgumentParser, methods_default: str | None, methods_help: str, batch_size: int
) -> None:
    """Model, dataset and method options shared by ``attribute`` and ``evaluate``."""
    add_model_options(parser)
    add_length_option(parser)
    add_target_options(parser, per_sample=True)
    add_answer_options(parser, per_sample=True)
    parser.add_argument(
        "--dataset",
        "-d",
        default="samples",
        help="samples (default, embedded), sst2, imdb, yelp, sva:PATH (agreement TSV; needs a masked-LM "
        "--model), or a local .csv/.tsv/.jsonl file (for language models: text and optional target/foil columns)",
    )
    parser.add_argument("--split", help="dataset split (default: sst2 validation, imdb/yelp test)")
    parser.add_argument("--text-column", help="text column of a local file (default: detected)")
    parser.add_argument("--label-column", help="label column of a local file (default: detected)")
    parser.add_argument(
        "--methods", default=methods_default, help=f"comma-separated method names (default: {methods_help})"
    )
    parser.add_argument("--limit", "-n", type=int, help="only the first N samples (default: all)")
    parser.add_argument(
        "--batch-size", type=int, default=batch_size, help=f"inputs per forward batch (default: {batch_size})"
    )
    add_method_options(parser)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "attribute",
        help="attributions of a dataset into a JSONL file",
        description=(
            "Explain every sample of a dataset with the chosen methods and write one JSON record\n"
            "per sample (tokens, prediction, scores, gold label; with --curves also its deletion\n"
            "curves). Ctrl-C leaves a valid file; running the same command again resumes where\n"
            "it stopped. Under torchrun each process explains whole batches on its own device\n"
            "(cuda:LOCAL_RANK, or the CPU) and rank 0 writes the one file, in dataset order."
        ),
        epilog=(
            "examples:\n"
            "  alti attribute --output samples.jsonl\n"
            "  alti attribute --dataset sst2 --limit 200 --methods alti,ig_l2 --output sst2.jsonl\n"
            "  alti attribute --curves --output curves.jsonl\n"
            "  torchrun --nproc-per-node 4 --no-python alti attribute --dataset imdb --output imdb.jsonl\n"
            "  alti evaluate --attributions sst2.jsonl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, DEFAULT_METHODS, DEFAULT_METHODS, batch_size=8)
    parser.add_argument("--output", "-o", required=True, metavar="FILE", help="the JSONL file to write or resume")
    parser.add_argument(
        "--curves",
        action="store_true",
        help="also store each sample's comprehensiveness and sufficiency curves (the paper's protocol, "
        "as 'alti evaluate') under 'faithfulness'",
    )
    parser.set_defaults(func=run)


def check_numbers(args) -> None:
    if args.limit is not None and args.limit < 0:
        raise InputError(f"--limit must be 0 or more, not {args.limit}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, not {args.batch_size}")
    check_method_options(args)


def load_samples(args, world=None):
    """The dataset's samples; the rows it left out are one warning on stderr (rank 0 alone)."""
    from alti.data import load_dataset

    samples = load_dataset(
        args.dataset, split=args.split, limit=args.limit, text_column=args.text_column, label_column=args.label_column
    )
    note = samples.skip_note()
    if note and (world is None or world.main):
        print(f"alti: warning: {note}", file=sys.stderr)
    return samples


def is_agreement(items) -> bool:
    """Masked-token data (subject-verb agreement): the text has a [MASK] and a foil."""
    return any((getattr(i, "foil", None) is not None and "[MASK]" in getattr(i, "text", "")) for i in items)


def load_explainer(args, samples=()):
    """The model of ``--model``; agreement ``samples`` need a masked LM."""
    from alti.cli import load_explainer as load

    explainer = load(args)
    if explainer.head.task != "masked_lm" and is_agreement(samples):
        raise InputError(
            "agreement data needs a masked LM: pass --model bert-base-uncased or a local masked-LM directory"
        )
    return explainer


def requests_for(explainer, chunk, args):
    """Each sample's target and foil: its own columns first, then --target/--foil.

    A classifier explains its predicted class unless --target names one; the
    dataset's ``target`` column belongs to language models.
    """
    from alti.targets import Request

    default = Request(getattr(args, "target", None), getattr(args, "foil", None))
    if not explainer.target_type.per_sample:
        return [default] * len(chunk)
    return [
        Request(s.target if s.target is not None else default.target, s.foil if s.foil is not None else default.foil)
        for s in chunk
    ]


def explain_chunk(explainer, chunk, methods, options, batch_size: int, args):
    """The explanations of a chunk of samples, in one padded batch; a text the model
    cannot read (no token left after tokenization) stops the run naming its sample.  The
    samples of an answer dataset (a prompt column) are explained as whole answers."""
    if any(getattr(s, "prompted", False) for s in chunk):
        from alti import answers

        return answers.explain_samples(
            explainer,
            chunk,
            methods,
            options,
            generate_tokens=args.generate,
            chat=args.chat,
            system=args.system,
            segments_of=args.segments,
            foil=getattr(args, "foil", None),
            batch_size=batch_size,
        )
    if args.generate is not None or args.chat or args.segments:
        raise InputError("--generate, --chat and --segments go with an answer dataset (a prompt column)")
    texts = [s.text for s in chunk]
    try:
        return explainer.explain_batch(
            texts, methods, batch_size=batch_size, options=options, targets=requests_for(explainer, chunk, args)
        )
    except InputError:
        for sample in chunk:
            try:
                explainer.encode(sample.text)
            except InputError as exc:
                raise InputError(f"sample {sample.id}: {exc}; fix or remove it in the dataset") from None
        raise


def progress_bar(description: str, show: bool = True):
    """A rich progress bar on stderr with count, rate and ETA (hidden unless ``show`` and stderr is a terminal)."""
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
        disable=not (show and console.is_terminal),
    )


@dataclass
class Job:
    """What every rank needs for a run, and (on rank 0) the records already in the file."""

    samples: list
    methods: list[str]
    explainer: Any
    records: list[dict[str, Any]]


def prepare(args, world) -> Job:
    """Check the arguments, read the dataset, load the model; only rank 0 reads the output file."""
    from alti.cli.explain import check_output, parse_methods

    check_numbers(args)
    methods = parse_methods(args.methods)
    if world.main:
        check_output(args.output)
    samples = load_samples(args, world)
    records = []
    if world.main and os.path.exists(args.output):
        records, _ = runfile.read(args.output, strict=True, drop_partial=True)
    runfile.check_resumable(args.output, records, methods, curves=args.curves)
    placed = copy.copy(args)
    placed.device = world.device(args.device)
    explainer = load_explainer(placed, samples)
    runfile.check_resumable(args.output, records, methods, explainer.name, args.curves)
    return Job(samples, methods, explainer, records)


def run(args) -> int:
    from alti.distributed import world as join

    with join(args.device) as world:
        job = world.agree(lambda: prepare(args, world))
        todo = world.share(runfile.plan(job.samples, job.records, args.batch_size) if world.main else None)
        skip = set(todo["skip"])
        options = method_options(job.methods, args)
        protocol = None
        if args.curves:
            from alti.faithfulness import Protocol

            protocol = Protocol()

        def work(b: int) -> list[str]:
            """The JSON lines of batch ``b`` (without the samples already written)."""
            chunk = job.samples[b * args.batch_size : (b + 1) * args.batch_size]
            explained = explain_chunk(job.explainer, chunk, job.methods, options, args.batch_size, args)
            lines = []
            for sample, explanation in zip(chunk, explained):
                if sample.id in skip:
                    continue
                record = runfile.record(sample, explanation, job.methods)
                if protocol is not None:
                    record["faithfulness"] = runfile.curves_entry(
                        job.explainer, explanation, job.methods, protocol, args.batch_size
                    )
                lines.append(runfile.line(record))
            return lines

        if not world.main:
            for _ in world.results(todo["batches"], work):
                pass
            return 0
        written = 0
        try:
            with open(args.output, "a", encoding="utf-8") as out, progress_bar("attribute") as progress:
                done = {str(r["id"]) for r in job.records}
                task = progress.add_task(
                    "attribute", total=len(job.samples), completed=sum(s.id in done for s in job.samples)
                )
                for lines, _ in world.results(todo["batches"], work):
                    for line in lines:
                        out.write(line)
                        out.flush()
                        written += 1
                        progress.advance(task)
        except KeyboardInterrupt:
            runfile.cut_partial_line(args.output)
            print(f"alti: wrote {written} records to {args.output}; run the same command to resume", file=sys.stderr)
            raise
    print(
        f"alti: wrote {written} records to {args.output} ({len(job.records)} were already there)",
        file=sys.stderr,
    )
    return 0
