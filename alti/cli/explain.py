"""``alti explain TEXT``: explain one text with one or more methods.

Writes the explanation to the terminal (ANSI colours) or, with ``--format`` /
``--output``, as JSON, HTML, SVG or LaTeX.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext

from alti.cli import add_model_options
from alti.errors import InputError
from alti.export import FORMATS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="explain one text",
        description=(
            "Explain one text: which input tokens the classifier's prediction was built from.\n"
            "Prints coloured tokens, one row per method, or writes JSON, HTML, SVG or LaTeX."
        ),
        epilog=(
            "examples:\n"
            "  alti explain 'a gripping, beautifully shot film'\n"
            "  alti explain 'not bad at all' --methods alti,rollout,attention\n"
            "  alti explain - --format json --layers < review.txt > review.json\n"
            "  alti explain 'great acting' --output figure.tex"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", metavar="TEXT", help="the text to explain; '-' reads it from standard input")
    parser.add_argument(
        "--methods",
        default="alti",
        help="comma-separated method names, e.g. alti,rollout,attention (default: alti; "
        "an unknown name lists the valid ones)",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="include the per-layer token-to-token matrices (L x n x n) of matrix methods (JSON only)",
    )
    parser.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        help="output format (default: from the --output suffix .json/.html/.svg/.tex, else ansi)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE (atomically) instead of standard output")
    add_model_options(parser)
    parser.set_defaults(func=run)


def read_text(arg: str) -> str:
    if arg == "-":
        try:
            text = sys.stdin.read().rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError("standard input is not valid UTF-8 text; pass UTF-8 text") from None
    else:
        text = arg
    if not text.strip():
        raise InputError("the text is empty; give the text to explain, or '-' to read it from standard input")
    return text


def parse_methods(spec: str) -> list[str]:
    from alti.methods import get_method

    names = list(dict.fromkeys(name.strip() for name in spec.split(",") if name.strip()))
    if not names:
        raise InputError("--methods is empty; name at least one method, e.g. --methods alti")
    for name in names:
        get_method(name)
    return names


def choose_format(args) -> str:
    from alti.export import SUFFIXES

    if args.format:
        return args.format
    if args.output:
        return SUFFIXES.get(os.path.splitext(args.output)[1].lower(), "ansi")
    return "ansi"


def check_output(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"--output {path} is a directory; give a file name")
    if not os.path.isdir(directory):
        raise InputError(f"cannot write --output {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise InputError(f"cannot write --output {path}: directory {directory} is not writable")


def _status(message: str):
    """A spinner on stderr while something slow runs, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def run(args) -> int:
    from alti import export

    text = read_text(args.text)
    fmt = choose_format(args)
    if args.layers and fmt != "json":
        raise InputError(f"--layers only applies to JSON output; add --format json (got {fmt})")
    if args.output:
        check_output(args.output)

    with _status(f"Loading {args.model} ..."):
        methods = parse_methods(args.methods)
        from alti import Explainer
        from alti.cli import quiet_libraries

        quiet_libraries()
        explainer = Explainer.from_pretrained(
            args.model, device=args.device, trust_remote_code=args.trust_remote_code
        )
    with _status(f"Explaining with {', '.join(methods)} ..."):
        explanation = explainer.explain(text, methods=methods)
    if explanation.truncated:
        print(
            f"alti: warning: the text is longer than the model's maximum; truncated to "
            f"{len(explanation.tokens)} tokens",
            file=sys.stderr,
        )

    if args.output:
        try:
            export.write_atomic(args.output, export.render(explanation, fmt, methods, args.layers))
        except OSError as exc:
            raise InputError(f"cannot write --output {args.output}: {exc.strerror or exc}") from None
    elif fmt == "ansi":
        from rich.console import Console

        Console().print(export.to_ansi(explanation, methods))
    else:
        sys.stdout.write(export.render(explanation, fmt, methods, args.layers))
    return 0
