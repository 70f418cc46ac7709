"""``alti report``: one self-contained HTML page for a whole ``alti attribute`` run.

Reads the run leniently (:func:`alti.runs.read_run`): damaged or cut lines are reported
on stderr and on the page, and the report shows the valid records.  Needs no model and
never imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys

from alti.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="one self-contained HTML page for a whole 'alti attribute' run",
        description=(
            "Write one HTML page (no network needed to view it) with the run's settings, its\n"
            "faithfulness table (runs written with --curves), the methods' agreement matrix, top\n"
            "tokens, histograms, and every sample's coloured rows per method (hover a token for its\n"
            "score), with the explorer's sorts and filters, a page of samples at a time."
        ),
        epilog=(
            "examples:\n"
            "  alti attribute --curves --output run.jsonl && alti report run.jsonl\n"
            "  alti report sst2.jsonl --output sst2.html --title 'SST-2, 8 methods'\n"
            "  (open sst2.html#sort=disagreement&a=alti&b=rollout for a sorted view)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN.jsonl", help="the JSONL file 'alti attribute --output' wrote")
    parser.add_argument(
        "--output", "-o", metavar="FILE.html", help="where to write the page (default: RUN with the suffix .html)"
    )
    parser.add_argument("--title", help="the page's heading (default: 'alti report: ' and the run's file name)")
    parser.add_argument(
        "--page-size",
        type=int,
        metavar="N",
        default=None,
        help="samples shown per page when the page opens (10, 25, 50, 100 or 200; default: 50)",
    )
    parser.set_defaults(func=run)


def default_output(path: str) -> str:
    root, suffix = os.path.splitext(path)
    return (root if suffix.lower() == ".jsonl" else path) + ".html"


def run(args) -> int:
    from alti import report
    from alti.cli.explain import check_output
    from alti.runs import read_run

    page_size = report.PAGE_SIZE if args.page_size is None else args.page_size
    if page_size not in report.PAGE_SIZES:
        raise InputError(f"--page-size must be one of {', '.join(map(str, report.PAGE_SIZES))}, not {page_size}")
    output = args.output or default_output(args.run)
    if os.path.abspath(output) == os.path.abspath(args.run):
        raise InputError(f"--output {output} is the run file itself; give another file name")
    check_output(output)
    loaded = read_run(args.run)
    for problem in loaded.problems:
        print(f"alti: warning: {problem}", file=sys.stderr)
    report.write(loaded, output, args.title, page_size)
    methods = len(loaded.methods)
    print(f"wrote {output} ({len(loaded):,} samples, {methods} method{'s' if methods != 1 else ''})")
    return 0
