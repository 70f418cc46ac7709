"""``alti evaluate``: comprehensiveness and sufficiency of methods over a dataset.

By default the paper's protocol (GUIDE §1.4): tokens removed, bins of 1, 5,
10, 20 and 50 %, monotone envelope.  Attributions are computed on the fly,
or read from an ``alti attribute`` file with ``--attributions``.  Prints a
table (one row per method, the best value of each column in bold) or, with
``--format json``, ``{"samples", "protocol", "methods": {name: {...}}}``
(plus ``"agreement"`` with ``--agreement``).

Under ``torchrun`` (or ``accelerate launch``, ``srun torchrun``) each process
explains and measures whole batches of the samples (:mod:`alti.distributed`)
and rank 0 gathers the curves in dataset order and prints the one result:
equal to a single process's with the same number of threads per process.
With ``--attributions`` every process reads the file (on a shared file system
across nodes).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from alti.cli.attribute import DEFAULT_METHODS, add_common_arguments
from alti.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="faithfulness (comprehensiveness, sufficiency) of methods over a dataset",
        description=(
            "Delete the tokens each method ranks highest, re-run the model and measure how the\n"
            "predicted class's probability falls (comprehensiveness) or survives (sufficiency).\n"
            "Defaults to the paper's protocol: removal, bins of 1/5/10/20/50 %, monotone envelope.\n"
            "Under torchrun each process measures whole batches on its own device and rank 0\n"
            "prints the one result."
        ),
        epilog=(
            "examples:\n"
            "  alti evaluate\n"
            "  alti evaluate --methods alti,rollout,ig_l2 --limit 50 --format json\n"
            "  alti evaluate --attributions sst2.jsonl --agreement\n"
            "  alti evaluate --steps one --step-limit 10 --deletion mask --raw\n"
            "  torchrun --nproc-per-node 4 --no-python alti evaluate --dataset sst2 --format json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, None, f"{DEFAULT_METHODS}, or all of --attributions", batch_size=32)
    parser.add_argument(
        "--attributions",
        "-a",
        metavar="FILE",
        help="reuse the scores of an 'alti attribute' JSONL file (its samples replace --dataset)",
    )
    parser.add_argument("--format", "-f", choices=("table", "json"), default="table", help="output (default: table)")
    parser.add_argument(
        "--steps",
        choices=("bins", "one"),
        default="bins",
        help="bins of 1/5/10/20/50 %% (default) or one token at a time",
    )
    parser.add_argument("--step-limit", type=int, help="with --steps one: at most this many tokens (default: all)")
    parser.add_argument(
        "--deletion",
        choices=("remove", "mask"),
        default="remove",
        help="remove tokens (default) or replace them by [MASK]",
    )
    parser.add_argument("--raw", action="store_true", help="score the raw curves instead of their monotone envelope")
    parser.add_argument(
        "--agreement", action="store_true", help="also show the Spearman rank correlation between every pair of methods"
    )
    parser.set_defaults(func=run)


def _methods_from(args, records) -> list[str]:
    from alti.cli.explain import parse_methods

    if records is None:
        return parse_methods(args.methods or DEFAULT_METHODS)
    have = list(records[0]["scores"]) if records else []
    if args.methods is None:
        return have
    methods = parse_methods(args.methods)
    missing = [m for m in methods if m not in have]
    if missing:
        raise InputError(f"{args.attributions} has no scores for {','.join(missing)}; it has {','.join(have)}")
    return methods


@dataclass
class Job:
    """What every rank needs to measure the curves."""

    protocol: Any
    methods: list[str]
    items: list  # the samples, or the records of --attributions
    records: list | None
    explainer: Any


def prepare(args, world) -> Job:
    """Check the arguments, read the samples or records, load the model (on every rank)."""
    from alti import faithfulness as F
    from alti import runfile
    from alti.cli.attribute import check_numbers, is_agreement, load_explainer, load_samples

    check_numbers(args)
    if args.step_limit is not None and args.steps != "one":
        raise InputError("--step-limit only applies to --steps one")
    protocol = F.Protocol(deletion=args.deletion, steps=args.steps, envelope=not args.raw, limit=args.step_limit)
    records = samples = None
    if args.attributions:
        records, _ = runfile.read(args.attributions, strict=True)
        if args.limit is not None:
            records = records[: args.limit]
    else:
        samples = load_samples(args, world)
    methods = _methods_from(args, records)
    items = records if records is not None else samples
    if not items:
        raise InputError("there are no samples to evaluate; check --dataset, --limit or --attributions")
    masked = is_agreement(samples or []) or any(
        not runfile.target_type_of(r).mask_deletion or "correct" in (r.get("extra") or {}) for r in records or []
    )
    if masked and protocol.deletion == "mask":
        raise InputError("agreement data is evaluated by removal only: [MASK] marks the verb; drop --deletion mask")
    placed = copy.copy(args)
    placed.device = world.device(args.device)
    return Job(protocol, methods, items, records, load_explainer(placed, samples or []))


def sample_result(explanation, curves, methods, agreement: bool, explainer=None, support=None) -> dict[str, Any]:
    """One sample's curves and explained quantity (and its scores, for --agreement; an answer's
    segment drops and support ranks), as JSON data."""
    from alti import faithfulness as F

    result: dict[str, Any] = {
        "curves": [curve.to_dict() for curve in curves.values()],
        "target": F.explained_target(explanation).protocol_description(),
    }
    if explanation.segments is not None and explainer is not None:
        context = F.segment_drops(explainer, explanation, methods)
        if support is not None:
            for method, ranks in F.support_ranks(explanation, methods, support).items():
                context[method].update(ranks)
        result["context"] = context
    if agreement:
        special = explanation.special
        result["special"] = None if special is None else [bool(v) for v in special]
        result["scores"] = {m: [float(v) for v in explanation.scores[m]] for m in methods}
    return result


def curve_from_dict(data: dict[str, Any]):
    from alti.faithfulness import Curve

    return Curve(
        data["method"],
        data["metric"],
        data["p_full"],
        data["ks"],
        data["fractions"],
        data["raw"],
        data["values"],
        data["protocol"],
    )


def run(args) -> int:
    from alti import faithfulness as F
    from alti.cli.attribute import explain_chunk, progress_bar
    from alti.distributed import world as join
    from alti.options import method_options
    from alti.runfile import explanation_from_record

    with join(args.device) as world:
        job = world.agree(lambda: prepare(args, world))
        explainer, methods, records = job.explainer, job.methods, job.records
        if world.main and records and records[0].get("model") != explainer.name:
            print(
                f"alti: warning: {args.attributions} was written with model {records[0].get('model')!r}, "
                f"evaluating with {explainer.name!r}",
                file=sys.stderr,
            )
        options = method_options(methods, args)
        size = args.batch_size

        with progress_bar("evaluate", show=world.main) as progress:
            task = progress.add_task("evaluate", total=len(job.items))

            def work(b: int) -> list[dict[str, Any]]:
                """The results of batch ``b``: each sample's curves, explained now or read from its record."""
                chunk = job.items[b * size : (b + 1) * size]
                if records is not None:
                    explanations = [explanation_from_record(r) for r in chunk]
                else:
                    explanations = explain_chunk(explainer, chunk, methods, options, size, args)
                results = []
                for item, explanation in zip(chunk, explanations):
                    curves = F.explanation_curves(explainer, explanation, methods, job.protocol, size)
                    support = item.get("support") if isinstance(item, dict) else getattr(item, "support", None)
                    results.append(sample_result(explanation, curves, methods, args.agreement, explainer, support))
                    progress.advance(task)
                return results

            per_sample, kept, described, contexts = [], [], {}, []
            for results, local in world.results(range(math.ceil(len(job.items) / size)), work):
                for result in results:
                    per_sample.append({(c["method"], c["metric"]): curve_from_dict(c) for c in result["curves"]})
                    if "context" in result:
                        contexts.append(result["context"])
                    described.setdefault(result["target"], None)
                    if args.agreement:
                        special = result["special"]
                        kept.append(
                            SimpleNamespace(
                                scores={m: np.asarray(v, dtype=np.float64) for m, v in result["scores"].items()},
                                special=None if special is None else np.asarray(special, dtype=bool),
                            )
                        )
                if not local:
                    progress.advance(task, len(results))
    if not world.main:
        return 0
    evaluation = F.summarize(per_sample, methods, job.protocol)
    evaluation.protocol["target"] = " / ".join(described)
    if len(described) > 1:
        print(
            f"alti: warning: the samples explain different quantities ({'; '.join(described)}); "
            "their curve scores are averaged together",
            file=sys.stderr,
        )
    if args.agreement:
        evaluation.agreement = F.agreement(kept, methods)
    if contexts:
        evaluation.context = F.summarize_context(contexts)

    if args.format == "json":
        sys.stdout.write(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        return 0
    from rich.console import Console

    from alti.tables import agreement_table, context_table, results_table

    console = Console()
    console.print(results_table(evaluation, explainer.name))
    if evaluation.context is not None:
        console.print(context_table(evaluation.context))
    if evaluation.agreement is not None:
        console.print(agreement_table(evaluation.agreement))
    return 0
