"""Dataset-run throughput of ``alti attribute``: one process against two under ``torchrun``.

Each configuration runs the real command in fresh processes on the demo model and the CPU:
one process with ``OMP_NUM_THREADS=2``, two processes (``torchrun --standalone
--nproc-per-node 2``) with ``OMP_NUM_THREADS=1`` each (the same two threads in all), and,
for reference, one process with one thread.  A run's startup (interpreter, imports, the
model, the rendezvous) is measured apart, by the same command with ``--limit 0``, and
taken off: samples/s = samples / median(run - startup) (give a run enough work to outweigh
the startup's noise: with ``torchrun`` it varies by seconds), and CPU seconds per sample
(of every process of the run, startup taken off the same way: steadier than wall time on a
shared machine).  The configurations are interleaved in each repeat; medians over repeats.
Every configuration's file is checked to hold the same records, in the same order, as the
first one's (their last bits differ: other thread counts round matrix products differently).
``--device cuda`` times one GPU instead: batches of 32 and of 8 (each layer of a batch
decomposed at once and one Triton launch), and batches of 32 with torch's chunks row by
row (``ALTI_NO_TRITON=1``).
``--wait-policy passive`` sets ``OMP_WAIT_POLICY=PASSIVE``: on a busy machine OpenMP
threads that spin while they wait can cost a two-thread process ten times the CPU time.

Texts: the 96 embedded samples (``--texts samples``), or a fixed set of texts of exactly
``--tokens`` tokens made of the embedded samples' words (``--texts long``).  ``--model bert-base`` (the default with ``--device cuda``) saves
BERT-base's geometry with random weights and a made-up vocabulary to a temporary folder and
gives ``alti attribute`` that path: no download, no model package.

    python benchmarks/bench_throughput.py [--texts samples|long] [--tokens 128] [--limit N]
        [--repeats 3] [--families alti,rollout,norm_rollout,globenc ig_l2]
        [--wait-policy default|passive|active] [--device cpu|cuda] [--model demo|bert-base] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import machine_line

BIN = Path(sys.executable).parent
FAMILIES = ("alti,rollout,norm_rollout,globenc", "ig_l2")
#: per device: configuration -> (processes, threads per process, batch size, extra environment);
#: the first is the one the others are compared with
CONFIGS = {
    "cpu": {
        "2 processes x 1 thread": (2, 1, 8, {}),
        "1 process x 1 thread": (1, 1, 8, {}),
        "1 process x 2 threads": (1, 2, 8, {}),
    },
    "cuda": {
        "1 GPU, batch 32": (1, 2, 32, {}),
        "1 GPU, batch 8": (1, 2, 8, {}),
        "1 GPU, batch 32, torch's chunks row by row": (1, 2, 32, {"ALTI_NO_TRITON": "1"}),
    },
}


def long_texts(tokenizer, tokens: int, count: int, path: Path) -> None:
    """``count`` texts of exactly ``tokens`` tokens ([CLS] and [SEP] included) for ``tokenizer``, as JSONL.

    The embedded samples' words, in order and round again, as many as fit; then "a" (one
    token) until the length is reached.
    """
    from alti.data import load_dataset

    words = [w for s in load_dataset("samples") for w in s.text.split()]

    def length(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    rows, at = [], 0
    for i in range(count):
        text = ""
        while length(f"{text} {words[at % len(words)]}".strip()) <= tokens:
            text = f"{text} {words[at % len(words)]}".strip()
            at += 1
        while length(text) < tokens:
            text += " a"
        if length(text) != tokens:
            raise SystemExit(f"text {i} has {length(text)} tokens, not {tokens}")
        rows.append({"id": f"t{i}", "text": text, "label": None})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def model_and_tokenizer(name: str, folder: Path) -> tuple[str, object]:
    """(what ``alti attribute --model`` is given, the model's tokenizer): the demo model, or
    BERT-base's geometry with random weights saved to ``folder`` (no download: the GPU machine has none)."""
    if name == "demo":
        from alti import Explainer

        return "demo", Explainer.from_pretrained("demo", "cpu").tokenizer
    from harness import bert_base_parts

    model, tokenizer = bert_base_parts()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), tokenizer


def attribute(
    device: str, model: str, config: tuple, methods: str, dataset: str, limit: int, output: Path
) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all its processes) of one ``alti attribute`` run (a fresh output file)."""
    processes, threads, batch_size, extra = config
    output.unlink(missing_ok=True)
    # the installed command, or the working tree's package (the GPU machine runs it uninstalled)
    alti = [str(BIN / "alti")] if (BIN / "alti").exists() else [sys.executable, "-m", "alti"]
    command = [
        *alti,
        "attribute",
        "--model",
        model,
        "--device",
        device,
        "--dataset",
        dataset,
        "--methods",
        methods,
        "--limit",
        str(limit),
        "--batch-size",
        str(batch_size),
        "--output",
        str(output),
    ]
    if processes > 1:
        launcher = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", str(processes)]
        command = [*launcher, "--no-python", *command] if len(alti) == 1 else [*launcher, "-m", *command[2:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **extra}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def same_records(a: Path, b: Path) -> bool:
    """Same ids, tokens and predicted labels in the same order, scores within 1e-4."""
    import numpy as np

    left, right = ([json.loads(line) for line in p.read_text().splitlines()] for p in (a, b))
    if [(r["id"], r["tokens"], r["prediction"]["label"]) for r in left] != [
        (r["id"], r["tokens"], r["prediction"]["label"]) for r in right
    ]:
        return False
    return all(np.allclose(x["scores"][m], y["scores"][m], atol=1e-4) for x, y in zip(left, right) for m in x["scores"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", choices=("samples", "long"), default="samples", help="which texts (see above)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per text with --texts long (default: 128)")
    parser.add_argument("--limit", type=int, default=96, help="samples per run (default: 96)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: 3)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), help="method lists, one run each")
    parser.add_argument(
        "--wait-policy",
        choices=("default", "passive", "active"),
        default="default",
        help="OMP_WAIT_POLICY of every run (passive: idle OpenMP threads sleep instead of spinning)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu: 1 and 2 processes; cuda: one GPU, batches of 32 and 8, and torch's path",
    )
    parser.add_argument(
        "--model",
        choices=("demo", "bert-base"),
        default=None,
        help="the demo model (default on the CPU) or BERT-base's geometry, random weights "
        "(default on CUDA; needs --texts long)",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    configs = CONFIGS[args.device]
    reference = next(iter(configs))
    args.model = args.model or ("demo" if args.device == "cpu" else "bert-base")
    if args.model != "demo" and args.texts != "long":
        parser.error("--model bert-base reads made-up words: give --texts long")
    if args.texts == "samples" and not 0 < args.limit <= 96:
        parser.error("--texts samples has 96 texts: give --limit 1 to 96, or use --texts long")
    if args.wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = args.wait_policy.upper()
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model, tokenizer = model_and_tokenizer(args.model, work / "model")
        dataset = "samples"
        if args.texts == "long":
            dataset = str(work / "long.jsonl")
            long_texts(tokenizer, args.tokens, args.limit, Path(dataset))
        rows = []
        for methods in args.families:
            runs = {name: [] for name in configs}
            startups = {name: [] for name in configs}
            outputs = {name: work / f"run{k}.jsonl" for k, name in enumerate(configs)}
            for _ in range(args.repeats):
                for name, config in configs.items():
                    startups[name].append(attribute(args.device, model, config, methods, dataset, 0, outputs[name]))
                    runs[name].append(
                        attribute(args.device, model, config, methods, dataset, args.limit, outputs[name])
                    )
            agree = all(same_records(outputs[reference], outputs[name]) for name in configs)
            net = {name: statistics.median(r[0] - s[0] for r, s in zip(runs[name], startups[name])) for name in configs}
            # a run no longer than its startup's noise has no rate to give
            rate = {name: args.limit / net[name] if net[name] > 0 else math.nan for name in configs}
            cpu = {
                name: statistics.median((r[1] - s[1]) / args.limit for r, s in zip(runs[name], startups[name]))
                for name in configs
            }
            rows.append(
                {
                    "methods": methods,
                    "samples_per_s": rate,
                    "cpu_s_per_sample": cpu,
                    "startup_s": {name: statistics.median(s[0] for s in startups[name]) for name in configs},
                    "speedup": {name: rate[reference] / rate[name] for name in configs if name != reference},
                    "same_records": agree,
                }
            )

    if args.texts == "samples":
        texts = f"the first {args.limit} embedded samples"
    else:
        texts = f"{args.limit} texts of {args.tokens} tokens"
    texts += f", OMP_WAIT_POLICY {args.wait_policy}"
    if args.json:
        print(
            json.dumps(
                {"texts": texts, "samples": args.limit, "machine": machine_line(2, args.repeats), "rows": rows},
                indent=2,
            )
        )
        return
    print(f"alti attribute, {args.model} model, {texts}, device {args.device}")
    print(machine_line(2, args.repeats) + "; startup taken off")
    names = list(configs)
    others = [n for n in names if n != reference]
    print(
        f"| methods | {' | '.join(f'{n}: samples/s (CPU s/sample)' for n in names)} | "
        f"{' | '.join(f'{reference} / {n}' for n in others)} | startup (s) |"
    )
    print("|---|" + "---:|" * (len(names) + len(others) + 1))
    for row in rows:
        cells = " | ".join(f"{row['samples_per_s'][n]:.2f} ({row['cpu_s_per_sample'][n]:.3f})" for n in names)
        ratios = " | ".join(f"{row['speedup'][n]:.2f}x" for n in others)
        startup = " / ".join(f"{row['startup_s'][n]:.1f}" for n in names)
        flag = "" if row["same_records"] else " (records differ!)"
        print(f"| {row['methods']}{flag} | {cells} | {ratios} | {startup} |")


if __name__ == "__main__":
    main()
