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

COMMANDS = ("explain", "attribute", "evaluate", "report")


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (argparse prints two)."""

    def error(self, message: str):
        self.exit(2, f"alti: error: {message} (see '{self.prog} --help')\n")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device`` and ``--trust-remote-code``, shared by every subcommand."""
    parser.add_argument(
        "--model",
        "-m",
        default="demo",
        help="a Hugging Face name or a local directory of a sequence classifier, causal LM or masked LM; "
        "'demo' (default) is the embedded sentiment classifier, 'smollm2' is SmolLM2-135M-Instruct",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run the model (default: auto)"
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a checkpoint's own Python code to run (only for models you trust)",
    )
    parser.add_argument(
        "--adapter",
        metavar="FILE.toml",
        help="module paths of an architecture alti does not know (see the README, 'Your own architecture')",
    )


def add_target_options(parser: argparse.ArgumentParser, per_sample: bool = False) -> None:
    """``--target`` and ``--foil``: what a language model (or a classifier) explains."""
    where = " (a dataset's target/foil columns take precedence)" if per_sample else ""
    parser.add_argument(
        "--target",
        help="what to explain: a class (index or label) of a classifier, or a token of a language model as the "
        f"tokenizer writes a continuation (' Paris', with its space) or id:1234 (default: the prediction){where}",
    )
    parser.add_argument(
        "--foil",
        help="explain the target against this class or token: logit(target) - logit(foil) "
        f"(ALTI-Logit and the gradient methods, occlusion, curves){where}",
    )


def load_explainer(args, progress=None):
    """The model of ``--model`` (after registering ``--adapter``), as an :class:`alti.Explainer`."""
    from alti import Explainer

    quiet_libraries()
    if getattr(args, "adapter", None):
        from alti.adapters import load_adapter_file

        load_adapter_file(args.adapter)
    return Explainer.from_pretrained(args.model, args.device, args.trust_remote_code, progress)


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


def quiet_libraries() -> None:
    """Keep library progress bars and advice off stderr: the CLI reports for itself.

    transformers reads these variables when it is first imported, and it is imported only when
    a model needs it (the demo model does not), so importing it here would only cost time.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _os_error_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def main(argv: list[str] | None = None) -> int:
    from alti.errors import AltiError

    args = build_parser().parse_args(argv)
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
