"""``alti evaluate``: comprehensiveness and sufficiency of methods over a dataset.

By default the paper's protocol (GUIDE §1.4): tokens removed, bins of 1, 5,
10, 20 and 50 %, monotone envelope.  Attributions are computed on the fly,
or read from an ``alti attribute`` file with ``--attributions``.  Prints a
table (one row per method, the best value of each column in bold) or, with
``--format json``, ``{"samples", "protocol", "methods": {name: {...}}}``
(plus ``"agreement"`` with ``--agreement``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from alti.cli.attribute import DEFAULT_METHODS, add_common_arguments
from alti.errors import InputError

COLUMNS = (
    # key, heading, higher is better
    ("comprehensiveness", "Comp. ↑", True),
    ("sufficiency", "Suff. ↓", False),
    ("aupc_comprehensiveness", "AUPC comp. ↓", False),
    ("aupc_sufficiency", "AUPC suff. ↑", True),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="faithfulness (comprehensiveness, sufficiency) of methods over a dataset",
        description=(
            "Delete the tokens each method ranks highest, re-run the model and measure how the\n"
            "predicted class's probability falls (comprehensiveness) or survives (sufficiency).\n"
            "Defaults to the paper's protocol: removal, bins of 1/5/10/20/50 %, monotone envelope."
        ),
        epilog=(
            "examples:\n"
            "  alti evaluate\n"
            "  alti evaluate --methods alti,rollout,ig_l2 --limit 50 --format json\n"
            "  alti evaluate --attributions sst2.jsonl --agreement\n"
            "  alti evaluate --steps one --step-limit 10 --deletion mask --raw"
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
        "--steps", choices=("bins", "one"), default="bins", help="bins of 1/5/10/20/50 %% (default) or one token at a time"
    )
    parser.add_argument("--step-limit", type=int, help="with --steps one: at most this many tokens (default: all)")
    parser.add_argument(
        "--deletion", choices=("remove", "mask"), default="remove", help="remove tokens (default) or replace them by [MASK]"
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
        raise InputError(
            f"{args.attributions} has no scores for {','.join(missing)}; it has {','.join(have)}"
        )
    return methods


def explained(args, explainer, methods, samples, records):
    """Yield each sample's explanation, read from records or computed."""
    from alti.cli.attribute import explain_chunk, explanation_from_record, method_options

    if records is not None:
        for record in records:
            yield explanation_from_record(record)
        return
    options = method_options(methods, args.ig_steps)
    for start in range(0, len(samples), args.batch_size):
        chunk = samples[start : start + args.batch_size]
        yield from explain_chunk(explainer, chunk, methods, options, args.batch_size, args)


def target_description(explanation) -> str:
    """The protocol's ``target`` entry: what the curves read."""
    target = explanation.target or {}
    kind, foil = target.get("kind", "class"), target.get("foil")
    if kind == "masked_token":
        return "p(target form) against the foil form at the mask"
    what = "class predicted on the full input" if kind == "class" else "target token (default: predicted)"
    return f"logit difference of the {what} and the foil" if foil else f"probability of the {what}"


def run(args) -> int:
    from alti import faithfulness as F
    from alti.cli.attribute import check_numbers, is_agreement, load_explainer, load_samples, progress_bar, read_records

    check_numbers(args)
    if args.step_limit is not None and args.steps != "one":
        raise InputError("--step-limit only applies to --steps one")
    protocol = F.Protocol(deletion=args.deletion, steps=args.steps, envelope=not args.raw, limit=args.step_limit)
    records = samples = None
    if args.attributions:
        records = read_records(args.attributions)
        if args.limit is not None:
            records = records[: args.limit]
    else:
        samples = load_samples(args)
    methods = _methods_from(args, records)
    items = records if records is not None else samples
    if not items:
        raise InputError("there are no samples to evaluate; check --dataset, --limit or --attributions")
    masked = is_agreement(samples or []) or any(
        (r.get("explained") or {}).get("kind") == "masked_token" or "correct" in (r.get("extra") or {})
        for r in records or []
    )
    if masked and protocol.deletion == "mask":
        raise InputError("agreement data is evaluated by removal only: [MASK] marks the verb; drop --deletion mask")
    explainer = load_explainer(args, samples or [])
    if records and records[0].get("model") != explainer.name:
        print(
            f"alti: warning: {args.attributions} was written with model {records[0].get('model')!r}, "
            f"evaluating with {explainer.name!r}",
            file=sys.stderr,
        )

    per_sample, kept, described = [], [], {}
    with progress_bar("evaluate") as progress:
        task = progress.add_task("evaluate", total=len(items))
        for explanation in explained(args, explainer, methods, samples, records):
            per_sample.append(F.explanation_curves(explainer, explanation, methods, protocol, args.batch_size))
            described.setdefault(target_description(explanation), None)
            if args.agreement:
                kept.append(explanation)
            progress.advance(task)
    evaluation = F.summarize(per_sample, methods, protocol)
    evaluation.protocol["target"] = " / ".join(described)
    if len(described) > 1:
        print(
            f"alti: warning: the samples explain different quantities ({'; '.join(described)}); "
            "their curve scores are averaged together",
            file=sys.stderr,
        )
    if args.agreement:
        evaluation.agreement = F.agreement(kept, methods)

    if args.format == "json":
        sys.stdout.write(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        return 0
    from rich.console import Console

    console = Console()
    console.print(results_table(evaluation, explainer.name))
    if evaluation.agreement is not None:
        console.print(agreement_table(evaluation.agreement))
    return 0


def _protocol_line(protocol: dict) -> str:
    steps = "bins " + "/".join(f"{q:g}" for q in [100 * b for b in protocol["bins"]]) + " %" if protocol["bins"] else (
        "one token at a time" + (f" (at most {protocol['limit']})" if protocol["limit"] else "")
    )
    return f"deletion: {protocol['deletion']}, {steps}, curve: {protocol['curve']}"


def results_table(evaluation, model_name: str):
    from rich.table import Table

    table = Table(
        title=f"Faithfulness of {model_name} on {evaluation.samples} samples",
        caption=_protocol_line(evaluation.protocol),
    )
    table.add_column("Method")
    for _, heading, _ in COLUMNS:
        table.add_column(heading, justify="right")
    best = {}
    for key, _, higher in COLUMNS:
        values = [getattr(s, key) for s in evaluation.methods.values() if not math.isnan(getattr(s, key))]
        if values:
            best[key] = max(values) if higher else min(values)
    for name, scores in evaluation.methods.items():
        cells = []
        for key, _, _ in COLUMNS:
            value = getattr(scores, key)
            text = f"{value:.3f}"
            cells.append(f"[bold]{text}[/bold]" if len(evaluation.methods) > 1 and value == best.get(key) else text)
        table.add_row(name, *cells)
    return table


def agreement_table(agreement: dict[str, dict[str, float]]):
    from rich.table import Table

    names = list(agreement)
    table = Table(title="Method agreement (mean Spearman rank correlation over samples)")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for a in names:
        table.add_row(a, *("—" if math.isnan(agreement[a][b]) else f"{agreement[a][b]:.2f}" for b in names))
    return table
