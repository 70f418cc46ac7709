"""Evaluation throughput: deletion curves run as padded batches vs one input at a time.

Scores are computed once (outside the timing) with cheap methods; then the
comprehensiveness and sufficiency curves of every method on every sample are
measured with ``alti.faithfulness`` twice: all perturbed inputs of a sample in
padded batches (``--batch-size``) and one forward pass per perturbed input
(batch size 1).  Both runs must give the same scores; the script checks it.

    python benchmarks/bench_evaluate.py                       # demo model, embedded samples
    python benchmarks/bench_evaluate.py --steps one --limit 20
    python benchmarks/bench_evaluate.py --model path/to/classifier --dataset reviews.csv
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from alti import Explainer, __version__
from alti import faithfulness as F
from alti.data import load_dataset
from alti.process import prepare


def run(explainer, explanations, methods, protocol, batch_size):
    start = time.perf_counter()
    per_sample = [F.explanation_curves(explainer, e, methods, protocol, batch_size) for e in explanations]
    seconds = time.perf_counter() - start
    return seconds, F.summarize(per_sample, methods, protocol)


def main() -> None:
    prepare()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--dataset", default="samples")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--methods", default="alti,attention,rollout")
    parser.add_argument("--steps", choices=("bins", "one"), default="bins")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    explainer = Explainer.from_pretrained(args.model, device=args.device)
    samples = load_dataset(args.dataset, limit=args.limit)
    methods = [m for m in args.methods.split(",") if m]
    explanations = explainer.explain_batch([s.text for s in samples], methods, batch_size=16)
    protocol = F.Protocol(steps=args.steps)
    tokens = [int((~e.special).sum()) for e in explanations]

    batched_s, batched = run(explainer, explanations, methods, protocol, args.batch_size)
    single_s, single = run(explainer, explanations, methods, protocol, 1)
    for method in methods:
        a, b = batched.methods[method].to_dict(), single.methods[method].to_dict()
        assert all(abs(a[k] - b[k]) < 1e-5 for k in a), (method, a, b)

    n = len(explanations)
    result = {
        "model": explainer.name,
        "device": str(explainer.device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "samples": n,
        "mean_tokens": float(np.mean(tokens)),
        "methods": methods,
        "protocol": protocol.to_dict(),
        "batched": {"batch_size": args.batch_size, "seconds": batched_s, "samples_per_s": n / batched_s},
        "one_by_one": {"batch_size": 1, "seconds": single_s, "samples_per_s": n / single_s},
        "speedup": single_s / batched_s,
        "version": __version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{explainer.name} on {explainer.device} ({result['threads']} threads), {n} samples "
        f"(mean {result['mean_tokens']:.1f} tokens), methods {', '.join(methods)}, {args.steps}"
    )
    print(f"  batched (batch size {args.batch_size}): {batched_s:7.2f} s  {n / batched_s:7.2f} samples/s")
    print(f"  one by one (batch size 1):  {single_s:7.2f} s  {n / single_s:7.2f} samples/s")
    print(f"  speed-up: {result['speedup']:.1f}x")


if __name__ == "__main__":
    main()
