"""Command-line options shared by ``alti`` and ``alti-tui``: one declaration of each flag.

Each builder adds a group of flags to an :class:`argparse.ArgumentParser`.  Nothing here
imports torch or the engine.
"""

from __future__ import annotations

import argparse


def add_model_options(
    parser: argparse.ArgumentParser, model_default: str | None = "demo", model_help: str | None = None
) -> None:
    """``--model``, ``--device`` and ``--trust-remote-code``, shared by every subcommand; ``alti-tui``
    gives ``--model`` its own default and help (``model_default``, ``model_help``)."""
    parser.add_argument(
        "--model",
        "-m",
        default=model_default,
        help=model_help
        or "a Hugging Face name or a local directory of a sequence classifier, causal LM or masked LM; "
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
        help="module paths of an architecture alti does not know (see the documentation, 'Your own architecture')",
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


def add_answer_options(parser: argparse.ArgumentParser, per_sample: bool = False, explorer: bool = False) -> None:
    """``--answer`` / ``--generate``, ``--chat``, ``--system`` and ``--segments``: a causal LM's
    whole answer against its prompt (:mod:`alti.answers`); ``per_sample``: a dataset's rows
    bring their answers; ``explorer``: the explorer's key g generates them (sentences scored
    by default)."""
    if not per_sample and not explorer:
        parser.add_argument(
            "--answer",
            metavar="TEXT",
            help="explain this answer after the prompt (a causal LM): every answer token against the prompt and "
            "the answer before it, and the whole answer",
        )
    if not per_sample and not explorer:
        parser.add_argument(
            "--per-step",
            action="store_true",
            help="with an answer: the gradient methods and occlusion also explain each answer token (one backward "
            "pass per token; the ALTI family's steps come from the same forward pass anyway)",
        )
    if explorer:
        parser.add_argument(
            "--generate",
            type=int,
            default=32,
            metavar="N",
            help="g generates up to N tokens greedily (to end of text or of the turn) and explains them as the "
            "answer (default: 32)",
        )
    else:
        parser.add_argument(
            "--generate",
            type=int,
            metavar="N",
            help="generate up to N tokens greedily (to end of text or of the turn) and explain them as the answer"
            + (" (rows without an answer)" if per_sample else ""),
        )
    parser.add_argument(
        "--chat",
        action="store_true",
        help="format the prompt with the tokenizer's chat template (its own tokens are special); the answer is the "
        "assistant's turn",
    )
    parser.add_argument("--system", metavar="TEXT", help="with --chat: the system turn")
    parser.add_argument(
        "--segments",
        choices=("sentences", "lines", "turns", "none") if explorer else ("sentences", "lines", "turns"),
        default="sentences" if explorer else None,
        help="also score spans of the prompt: its sentences, lines or chat turns (a span's score is the sum of its "
        "tokens')" + ("; default: sentences" if explorer else ""),
    )


def add_length_option(parser: argparse.ArgumentParser) -> None:
    """``--max-tokens``: the longest input explained."""
    parser.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help="explain at most N tokens of each text, truncating longer ones (a causal LM keeps the end) "
        "(default: the model's maximum; 2048 for causal LMs: ALTI and ALTI-Logit take about 21 s per "
        "2,048-token answer on a 2-core CPU for SmolLM2-135M)",
    )


def _flagged():
    """Each method-option flag once, with the option that declares it (methods sharing a flag
    declare the same option), from the catalog: no torch needed to build a parser."""
    from alti.catalog import INFOS

    flags: dict[str, object] = {}
    for info in INFOS.values():
        for option in info.options:
            if option.flag is not None:
                flags.setdefault(option.flag, option)
    return flags


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """The flags methods declare for their options (:attr:`alti.catalog.MethodInfo.options`),
    such as ``--ig-steps``."""
    for flag, option in _flagged().items():
        parser.add_argument(
            flag, type=option.type, default=option.default, help=f"{option.help} (default: {option.default})"
        )


def check_method_options(args: argparse.Namespace) -> None:
    """Refuse a flag's value outside what its option accepts, in one line."""
    for flag, option in _flagged().items():
        option.check(getattr(args, _dest(flag)))


def method_options(methods, args: argparse.Namespace) -> dict[str, dict]:
    """What each chosen method gets from the flags of its declared options."""
    from alti.catalog import INFOS

    out: dict[str, dict] = {}
    for name in methods:
        for option in INFOS[name].options:
            if option.flag is not None:
                out.setdefault(name, {})[option.name] = getattr(args, _dest(option.flag))
    return out
