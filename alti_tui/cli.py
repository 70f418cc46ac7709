"""``alti-tui``'s command line: its flags (the model and target ones shared with ``alti``) and :func:`main`."""

from __future__ import annotations

import argparse
import sys

from alti.options import add_answer_options, add_model_options, add_target_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alti-tui",
        description="Explore ALTI and the comparison methods in the terminal: a classifier's class, "
        "a causal LM's next token or a masked LM's token, against a foil if you like (key c), "
        "or a causal LM's whole answer (key g).",
        epilog="examples:\n"
        "  alti-tui                                   demo sentiment classifier, embedded samples\n"
        "  alti-tui --model smollm2                   SmolLM2-135M-Instruct: press / and type a prompt\n"
        "  alti-tui --model smollm2 --foil ' London'  every prompt's prediction against ' London'\n"
        "  alti-tui --model smollm2 --chat            type a question with its context (/), g answers it\n"
        "  alti-tui --attributions run.jsonl          browse an 'alti attribute' run (s sort, o overview)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--attributions",
        "-a",
        metavar="RUN.jsonl",
        help="browse the output of 'alti attribute': rows come from the file at once, the model it records "
        "loads behind them for the heatmap, missing curves and typed text (s sorts, w ✗ only, o overview)",
    )
    add_model_options(
        parser,
        model_default=None,
        model_help="Hugging Face name or local directory of a sequence classifier, causal LM or masked LM; "
        "'demo' (default) is the embedded sentiment classifier, 'smollm2' is SmolLM2-135M-Instruct; "
        "with --attributions: the model the file records",
    )
    parser.add_argument(
        "--dataset",
        default="samples",
        help="dataset name or csv/tsv/jsonl file (default: samples); for language models the target and "
        "foil columns say what each sample explains",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        help="methods shown first (default: alti rollout norm_rollout ig_l2 for classifiers, "
        "alti alti_logit logit gxi_dot for language models; m changes them)",
    )
    add_target_options(parser, per_sample=True)
    add_answer_options(parser, explorer=True)
    parser.add_argument("--split", default=None, help="dataset split (default: the dataset's test split)")
    parser.add_argument("--limit", type=int, default=500, help="at most this many samples (default: 500)")
    parser.add_argument("--export-dir", default="alti-exports", help="where e writes (default: ./alti-exports)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from alti.errors import AltiError
    from alti.process import prepare
    from alti_tui.app import AltiApp
    from alti_tui.models import AnswerSettings
    from alti_tui.run_service import RunService
    from alti_tui.service import EngineService

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.generate < 1:
        parser.error(f"--generate must be at least 1 token, not {args.generate}")
    if args.system is not None and not args.chat:
        parser.error("--system sets the chat template's system turn; add --chat")
    prepare()
    methods = [m for item in args.methods or [] for m in item.split(",") if m] or None
    engine = {"device": args.device, "trust_remote_code": args.trust_remote_code, "adapter": args.adapter}
    service: RunService | EngineService
    if args.attributions:
        service = RunService(args.attributions, model=args.model, **engine)
        try:
            service.open_run()  # fast and torch-free: a file with nothing to show stops here, in one line
        except AltiError as error:
            print(f"alti-tui: {error}", file=sys.stderr)
            return 2
    else:
        model = args.model or "demo"
        service = EngineService(model=model, dataset=args.dataset, split=args.split, limit=args.limit, **engine)
    app = AltiApp(
        service,
        methods=methods,
        export_dir=args.export_dir,
        label=args.model or ("" if args.attributions else "demo"),
        target=args.target,
        foil=args.foil,
        answer=AnswerSettings(
            args.generate, args.chat, args.system, None if args.segments == "none" else args.segments
        ),
    )
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
