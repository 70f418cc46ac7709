"""ALTI (all layers) + rollout against one plain forward pass, BERT-base geometry, back to back.

Random-init ``bert-base-uncased`` geometry from a config (no download), eager
attention, float32.  ``Explainer.explain(text, methods=["alti", "rollout"])``
(the public API, tokenization and a forward pass with hooks included) is
timed in blocks of back-to-back calls, as a dataset run makes them, against
blocks of back-to-back plain forward passes on the same token ids; the blocks
alternate (:func:`harness.back_to_back`), so both kinds of a round run under
the same machine load and each sees only what its own kind leaves behind
(memory freed and faulted in again shows up: minor page faults per call are
reported).  Extra peak memory: :func:`harness.extra_peak_mb`, in a fresh process.

    python benchmarks/bench_alti.py [--lengths 128 512] [--rounds 3] [--calls 5] [--threads 2] [--kernel-pool]
"""

from __future__ import annotations

import argparse
import json

from harness import back_to_back, extra_peak_mb, in_child, machine_line
from harness import bert_base as build

GOALS = {128: 1.5, 512: 2.5}
MEMORY_GOAL_MB = 512
METHODS = ["alti", "rollout"]


def text_of_length(ex, n: int) -> str:
    """Random whole words of the vocabulary, one token each: ``n`` tokens with [CLS] and [SEP]."""
    import random

    words = sorted(w for w in ex.tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) > 2)
    text = " ".join(random.Random(n).choices(words, k=n - 2))
    if len(ex.encode(text)) != n:
        raise RuntimeError(f"the benchmark text is not {n} tokens long")
    return text


def calls_of(ex, n: int):
    """(plain forward pass on the text's ids, the explanation of the text)."""
    import torch

    text = text_of_length(ex, n)
    tensor = torch.tensor([ex.encode(text)], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=tensor)

    return forward, lambda: ex.explain(text, methods=METHODS)


def memory_child(device: str, n: int, threads: int) -> None:
    """Runs in a fresh process; prints the extra peak memory in MB as JSON."""
    import torch

    torch.set_num_threads(threads)
    ex = build(device)
    print(json.dumps({"extra_mb": extra_peak_mb(*calls_of(ex, n), device)}))


def measure_memory(device: str, n: int, threads: int) -> float:
    return in_child(__file__, ["--memory-child", device, str(n), "--threads", str(threads)])["extra_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512], help="input lengths in tokens")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of a forward and an explain block")
    parser.add_argument("--calls", type=int, default=5, help="timed back-to-back calls per block (after one untimed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the kernel uses as many)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="where to run")
    parser.add_argument(
        "--kernel-pool",
        action="store_true",
        help="run the CPU kernel on its own thread pool instead of torch's OpenMP threads (the old way, to compare)",
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("DEVICE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernel_pool:
        from alti.core import kernels

        kernels._team_runner = lambda: None
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), args.threads)
        return

    import torch

    torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(machine_line(args.threads, args.rounds, f"rounds of {args.calls} back-to-back calls per kind"))
    header = (
        f"{'device':<6} {'tokens':>6} {'forward s':>10} {'alti+rollout s':>15} {'ratio':>6} "
        f"{'cpu-time ratio':>15} {'goal':>5} {'faults/call fwd':>16} {'explain':>8} "
        f"{'extra peak MB':>14} {'goal MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for device in devices:
        ex = build(device)
        for n in args.lengths:
            t = back_to_back(*calls_of(ex, n), device, args.rounds, args.calls)
            mb = measure_memory(device, n, args.threads)
            goal = GOALS.get(n)
            print(
                f"{device:<6} {n:>6} {t['forward_s']:>10.3f} {t['explain_s']:>15.3f} {t['ratio']:>5.2f}x "
                f"{t['cpu_ratio']:>14.2f}x {f'{goal}x' if goal else '-':>5} {t['forward_faults']:>16.0f} "
                f"{t['explain_faults']:>8.0f} {mb:>14.0f} {MEMORY_GOAL_MB if n == 512 else '-':>8}"
            )


if __name__ == "__main__":
    main()
