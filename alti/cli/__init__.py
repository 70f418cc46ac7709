"""The ``alti`` command: ``alti explain | attribute | evaluate | report``.

Each subcommand lives in its own module, which defines ``register(subparsers)``;
the parser it adds sets ``func`` to a callable ``(args) -> int``.

Expected problems (bad arguments, bad input, unreadable or unwritable files)
end with exactly one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from alti.options import add_length_option, add_model_options, add_target_options
from alti.process import prepare, quiet_libraries

__all__ = ["add_length_option", "add_model_options", "add_target_options", "load_explainer", "main"]

COMMANDS = ("explain", "attribute", "evaluate", "report")


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (argparse prints two)."""

    def error(self, message: str):
        self.exit(2, f"alti: error: {message} (see '{self.prog} --help')\n")


def load_explainer(args, progress=None):
    """The model of ``--model`` (after registering ``--adapter``), as an :class:`alti.Explainer`."""
    from alti import Explainer

    quiet_libraries()
    if getattr(args, "adapter", None):
        from alti.adapters import load_adapter_file

        load_adapter_file(args.adapter)
    return Explainer.from_pretrained(
        args.model, args.device, args.trust_remote_code, progress, max_tokens=getattr(args, "max_tokens", None)
    )


def build_parser() -> argparse.ArgumentParser:
    from alti import __version__

    parser = Parser(
        prog="alti",
        description="Explain Transformer classifiers with ALTI and the comparison methods.",
    )
    parser.add_argument("--version", action="version", version=f"alti {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"alti.cli.{name}").register(subparsers)
    return parser


def _os_error_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def main(argv: list[str] | None = None) -> int:
    from alti.errors import AltiError

    args = build_parser().parse_args(argv)
    prepare()
    try:
        return int(args.func(args) or 0)
    except AltiError as exc:
        print(f"alti: error: {' '.join(str(exc).split(chr(10)))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python
        # from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"alti: error: {_os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alti: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
