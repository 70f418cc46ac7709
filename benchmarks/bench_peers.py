"""DecompX and Value Zeroing as throughput against a plain forward pass (issue: the strongest peers).

Both are dominated by n² products through the FFN (DecompX carries every
token's part of every token through it; Value Zeroing reruns each layer on n
copies of its input), so they are measured as GFLOP/s of their own matrix
products against the forward pass's GFLOP/s in the same run (goal ≥ 50 %),
with their extra peak memory (goal ≤ 1 GB).  Random-init BERT-base geometry
(12 layers, 12 heads, d = 768, d_ff = 3072), float32, 128 tokens by default;
each repeat times ``model(input_ids)`` and then
``Explainer.explain_ids(ids, [method])``; ratios and memory as in :mod:`harness`.

Multiply-adds counted (matrix products only, x2 for FLOPs), n tokens, L layers, C classes:

- forward pass: ``L (4 n d^2 + 2 n^2 d + 2 n d d_ff) + d^2 + d C``;
- DecompX: the FFN on every part in layers 1 .. L-1 ``(L-1) 2 n^2 d d_ff``, W_V, the per-head mixing
  and W_O in the middle layers ``(L-2)(2 n^2 d^2 + n^3 d)``, the first layer ``n d^2 + n^2 H d``, the
  last layer on the [CLS] row ``n^2 H d + 2 n d^2 + 2 n d d_ff``, the head ``n d^2 + n d C``;
- Value Zeroing: one recording pass and n copies of every layer, ``(n + 1) L (4 n d^2 + 2 n^2 d + 2 n d d_ff)``.

    python benchmarks/bench_peers.py [--lengths 128] [--repeats 3] [--threads 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json

from harness import bert_base as build
from harness import extra_peak_mb, in_child, interleaved, machine_line

METHODS = ("decompx", "value_zeroing")
RATE_GOAL = 0.5
MEMORY_GOAL_MB = 1024


def layer_macs(n: int, d: int, d_ff: int) -> int:
    return 4 * n * d * d + 2 * n * n * d + 2 * n * d * d_ff


def flops(method: str, n: int, config) -> float:
    d, d_ff, layers, heads, classes = (
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_labels,
    )
    if method == "forward":
        macs = layers * layer_macs(n, d, d_ff) + d * d + d * classes
    elif method == "decompx":
        macs = (
            (layers - 1) * 2 * n * n * d * d_ff
            + (layers - 2) * (2 * n * n * d * d + n**3 * d)
            + n * d * d
            + n * n * heads * d
            + n * n * heads * d
            + 2 * n * d * d
            + 2 * n * d * d_ff
            + n * d * d
            + n * d * classes
        )
    else:
        macs = (n + 1) * layers * layer_macs(n, d, d_ff)
    return 2.0 * macs


def forward_and_explain(ex, n: int, method: str):
    import random

    import torch

    rng = random.Random(n)
    ids = [101] + [rng.randrange(1000, 29000) for _ in range(n - 2)] + [102]
    tensor = torch.tensor([ids], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=tensor)

    return forward, lambda: ex.explain_ids(ids, [method])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--memory-child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        method, n = args.memory_child[0], int(args.memory_child[1])
        forward, explain = forward_and_explain(build(args.device), n, method)
        print(json.dumps({"extra_mb": extra_peak_mb(forward, explain, args.device)}))
        return
    ex = build(args.device)
    print(machine_line(args.threads, args.repeats))
    header = (
        f"{'device':<6} {'method':<14} {'tokens':>6} {'forward s':>10} {'method s':>9} {'fwd GFLOP/s':>12} "
        f"{'GFLOP/s':>8} {'rate':>6} {'goal':>5} {'extra peak MB':>14} {'goal MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for n in args.lengths:
        for method in METHODS:
            t = interleaved(*forward_and_explain(ex, n, method), args.device, args.repeats)
            forward_rate = flops("forward", n, ex.model.config) / t["forward_s"] / 1e9
            rate = flops(method, n, ex.model.config) / t["explain_s"] / 1e9
            mb = in_child(
                __file__, ["--threads", str(args.threads), "--device", args.device, "--memory-child", method, str(n)]
            )["extra_mb"]
            print(
                f"{args.device:<6} {method:<14} {n:>6} {t['forward_s']:>10.3f} {t['explain_s']:>9.2f} "
                f"{forward_rate:>12.1f} {rate:>8.1f} {rate / forward_rate:>5.2f}x {RATE_GOAL:>4}x "
                f"{mb:>14.0f} {MEMORY_GOAL_MB:>8}"
            )


if __name__ == "__main__":
    main()
