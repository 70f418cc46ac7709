"""ALTI (all layers) + rollout against one plain forward pass, BERT-base geometry.

Random-init ``bert-base-uncased`` geometry from a config (no download), eager
attention, float32.  Each repeat times a plain forward pass and then
``Explainer.explain_ids(ids, ["alti", "rollout"])`` (which runs its own
forward pass with hooks); how the ratios and the extra peak memory are
measured: :mod:`harness`.

    python benchmarks/bench_alti.py [--lengths 128 512] [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

from harness import bert_base as build
from harness import extra_peak_mb, in_child, interleaved, machine_line

GOALS = {128: 1.5, 512: 2.5}
MEMORY_GOAL_MB = 512


def ids_of_length(n: int) -> list[int]:
    import random

    rng = random.Random(n)
    return [101] + [rng.randrange(1000, 29000) for _ in range(n - 2)] + [102]


def measure_time(ex, device: str, n: int, repeats: int) -> dict:
    import torch

    ids = ids_of_length(n)
    tensor = torch.tensor([ids], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=tensor)

    return interleaved(forward, lambda: ex.explain_ids(ids, ["alti", "rollout"]), device, repeats)


def memory_child(device: str, n: int, threads: int) -> None:
    """Runs in a fresh process; prints the extra peak memory in MB as JSON."""
    import torch

    torch.set_num_threads(threads)
    ex = build(device)
    ids = ids_of_length(n)
    tensor = torch.tensor([ids], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=tensor)

    print(json.dumps({"extra_mb": extra_peak_mb(forward, lambda: ex.explain_ids(ids, ["alti", "rollout"]), device)}))


def measure_memory(device: str, n: int, threads: int) -> float:
    return in_child(__file__, ["--memory-child", device, str(n), "--threads", str(threads)])["extra_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--memory-child", nargs=2, metavar=("DEVICE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), args.threads)
        return

    import torch

    torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(machine_line(args.threads, args.repeats))
    header = f"{'device':<6} {'tokens':>6} {'forward s':>10} {'alti+rollout s':>15} " \
             f"{'ratio':>6} {'cpu-time ratio':>15} {'goal':>5} {'extra peak MB':>14} {'goal MB':>8}"
    print(header)
    print("-" * len(header))
    for device in devices:
        ex = build(device)
        for n in args.lengths:
            t = measure_time(ex, device, n, args.repeats)
            mb = measure_memory(device, n, args.threads)
            goal = GOALS.get(n)
            print(f"{device:<6} {n:>6} {t['forward_s']:>10.3f} {t['explain_s']:>15.3f} "
                  f"{t['ratio']:>5.2f}x {t['cpu_ratio']:>14.2f}x {f'{goal}x' if goal else '-':>5} "
                  f"{mb:>14.0f} "
                  f"{MEMORY_GOAL_MB if n == 512 else '-':>8}")


if __name__ == "__main__":
    main()
