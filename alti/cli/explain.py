"""``alti explain TEXT``: explain one text with one or more methods.

Writes the explanation to the terminal (ANSI colours) or, with ``--format`` /
``--output``, as JSON, HTML, SVG or LaTeX.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import nullcontext

from alti.catalog import EXPLAIN_METHODS
from alti.errors import InputError, check_utf8
from alti.export import FORMATS
from alti.options import add_answer_options, add_length_option, add_model_options, add_target_options


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
            "  alti explain 'great acting' --output figure.tex\n"
            "  alti explain 'The capital of France is' --model smollm2 --methods alti,alti_logit\n"
            "  alti explain 'The capital of France is' --model smollm2 --target ' Paris' --foil ' London' \\\n"
            "      --methods alti_logit,logit,gxi_dot"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", metavar="TEXT", help="the text to explain; '-' reads it from standard input")
    parser.add_argument(
        "--methods",
        default=",".join(EXPLAIN_METHODS),
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
        help="output format (default: from the --output suffix .json/.html/.svg/.tex/.ansi/.txt, else ansi)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE (atomically) instead of standard output")
    add_target_options(parser)
    add_answer_options(parser)
    add_model_options(parser)
    add_length_option(parser)
    parser.set_defaults(func=run)


def read_text(arg: str) -> str:
    if arg == "-":
        try:
            text = sys.stdin.read().rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError("standard input is not valid UTF-8 text; pass UTF-8 text") from None
        check_utf8(text, "standard input")
    else:
        text = arg
        check_utf8(text, "the text")
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
        suffix = os.path.splitext(args.output)[1].lower()
        if suffix not in SUFFIXES:
            known = ", ".join(SUFFIXES)
            named = f"the suffix {suffix}" if suffix else "no suffix"
            raise InputError(f"--output {args.output} has {named}; use one of {known}, or choose with --format")
        return SUFFIXES[suffix]
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
        return nullcontext(None)
    from rich.console import Console

    return Console(stderr=True).status(message)


def truncation_note(explainer, total: int, kept: int) -> str:
    """One line, said before the work: how long the text is, what is kept, how to keep more."""
    side = "end" if explainer.target_type is not None and explainer.target_type.keeps_end else "start"
    if explainer.max_length < explainer.model_max_length:
        more = f"--max-tokens raises it, up to the model's {explainer.model_max_length:,}"
    else:
        more = "the model's own maximum"
    return (
        f"the text is {total:,} tokens, more than the {explainer.max_length:,} explained; "
        f"keeping its {side}, {kept:,} tokens ({more})"
    )


#: a single explanation reports its progress once it has run this long (seconds) ...
PROGRESS_AFTER_S = 3.0
#: ... and then at most this often, where stderr is no terminal
PROGRESS_EVERY_S = 5.0


def layer_progress(status, doing: str):
    """``on_progress`` for the explainer: layers done, on the spinner's line, or (stderr no terminal)
    a line now and then once the explanation has taken a few seconds."""
    start = time.monotonic()
    said = [PROGRESS_AFTER_S - PROGRESS_EVERY_S]

    def report(done: int, layers: int) -> None:
        elapsed = time.monotonic() - start
        text = f"{doing} layer {done} of {layers} ({elapsed:.0f} s)"
        if status is not None:
            status.update(text)
        elif elapsed >= PROGRESS_AFTER_S and elapsed - said[0] >= PROGRESS_EVERY_S:
            said[0] = elapsed
            print(f"alti: {text}", file=sys.stderr, flush=True)

    return report


def warn(message: str) -> None:
    print(f"alti: warning: {message}", file=sys.stderr)


def run(args) -> int:
    from alti import export

    text = read_text(args.text)
    if args.output:
        check_output(args.output)
    fmt = choose_format(args)
    if args.layers and fmt != "json":
        raise InputError(f"--layers only applies to JSON output; add --format json (got {fmt})")

    with _status(f"Loading {args.model} ...") as status:
        methods = parse_methods(args.methods)
        from alti.cli import load_explainer

        def progress(text: str) -> None:
            if status is not None:
                status.update(text)
            else:
                print(f"alti: {text}", file=sys.stderr)

        explainer = load_explainer(args, progress)
    answering = args.answer is not None or args.generate is not None
    if answering and args.target is not None:
        raise InputError("--target names one next token; an answer is given with --answer (or --generate)")
    if not answering and (args.chat or args.system is not None or args.segments or args.per_step):
        raise InputError(
            "--chat, --system, --segments and --per-step go with an answer: add --answer TEXT or --generate N"
        )
    if not answering:
        total, kept = explainer.measure(text)
        if kept < total:
            warn(truncation_note(explainer, total, kept))
    doing = f"Explaining with {', '.join(methods)} ..."
    with _status(doing) as status:
        explainer.on_progress = layer_progress(status, doing)
        if answering:
            explanation = explainer.explain(
                text,
                methods=methods,
                foil=args.foil,
                answer=args.answer,
                generate=args.generate,
                chat=args.chat,
                system=args.system,
                segments=args.segments,
                per_step=args.per_step,
            )
        else:
            explanation = explainer.explain(text, methods=methods, target=args.target, foil=args.foil)
    if answering and explanation.truncated:
        warn(f"the prompt was cut to its end to fit the answer within the {explainer.max_length:,} tokens explained")
    for note in explanation.notes:
        warn(note)

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
