"""The ``alti`` command: ``alti explain | attribute | evaluate``.

Each subcommand lives in its own module, which defines ``register(subparsers)``;
the parser it adds sets ``func`` to a callable ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("explain", "attribute", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    from alti import __version__

    parser = argparse.ArgumentParser(
        prog="alti",
        description="Explain Transformer classifiers with ALTI and the comparison methods.",
    )
    parser.add_argument("--version", action="version", version=f"alti {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"alti.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from alti.errors import AltiError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AltiError as exc:
        print(f"alti: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alti: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
