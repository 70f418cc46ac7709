"""ALTI on a GPU: the Triton kernel against torch's chunks, BERT-base geometry (random weights).

(a) Through ``alti.Explainer``: ``explain(text, ["alti", "rollout"])`` on one
512-token text against one plain forward pass, and ``explain_batch`` of 32
texts of 128 tokens against the plain forward pass of that batch, each with
the Triton kernel and with torch's chunks (``ALTI_NO_TRITON=1``); the batch
also with the kernel row by row (``BATCH_BYTES = 0``: each row decomposed and
launched alone), against the default of each layer decomposed for the whole
batch at once and one launch; medians of interleaved repeats and extra peak
GPU memory as in :mod:`harness`.

(b) The L1 step alone at 512 tokens, all 12 layers: the kernel
(``triton_l1.l1_contributions``) against torch's chunks
(``l1_distances_torch`` on a fresh decomposition, which rebuilds the
(n, n, H+1) weights as ``alti_l1`` does), and each one's largest difference
from the float64 torch result on the row-normalised ALTI matrices.
``--blocks`` times other block shapes of the kernel.

    python benchmarks/bench_gpu.py --device cuda
    python benchmarks/bench_gpu.py --device cuda --blocks 16,16,32,4 32,16,32,4 16,16,64,8

On the CPU it runs as a quick check of the script itself (the CPU kernel in
(a); (b) only with ``TRITON_INTERPRET=1``, triton's interpreter):

    TRITON_INTERPRET=1 python benchmarks/bench_gpu.py --device cpu --long 18 --batch 2 --short 16 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import random

from harness import bert_base, extra_peak_mb, interleaved, machine_line, timed


def text_of_length(ex, n: int, seed: int) -> str:
    """Words that are single tokens of the vocabulary: ``n`` tokens with [CLS] and [SEP]."""
    words = sorted(w for w in ex.tokenizer.get_vocab() if w.isascii() and w.isalpha() and w.islower() and len(w) > 2)
    rng = random.Random(seed)
    text = " ".join(rng.choice(words) for _ in range(n - 2))
    if len(ex.encode(text)) != n:
        raise SystemExit(f"bench_gpu: the text of {n} tokens came out as {len(ex.encode(text))}")
    return text


def with_path(fn, torch_path: bool, row_by_row: bool = False):
    """``fn`` run with ``ALTI_NO_TRITON=1`` (torch's chunks) or without (the kernel on CUDA),
    and with a batch's rows decomposed one by one or (the default) together."""
    import alti.explainer

    def run():
        previous = os.environ.pop("ALTI_NO_TRITON", None)
        budget = alti.explainer.BATCH_BYTES
        if torch_path:
            os.environ["ALTI_NO_TRITON"] = "1"
        if row_by_row:
            alti.explainer.BATCH_BYTES = 0
        try:
            return fn()
        finally:
            alti.explainer.BATCH_BYTES = budget
            os.environ.pop("ALTI_NO_TRITON", None)
            if previous is not None:
                os.environ["ALTI_NO_TRITON"] = previous

    return run


def explained(args, ex) -> list[tuple[str, dict, float]]:
    """(a): (row name, timings, extra peak MB) per input shape and L1 path."""
    import torch

    long_text = text_of_length(ex, args.long, 0)
    texts = [text_of_length(ex, args.short, 1 + k) for k in range(args.batch)]
    single = torch.tensor([ex.encode(long_text)], device=ex.device)
    batch = torch.tensor([ex.encode(t) for t in texts], device=ex.device)

    def forward_of(ids):
        def forward():
            with torch.inference_mode():
                ex.model(input_ids=ids, attention_mask=torch.ones_like(ids))

        return forward

    paths = (
        [("triton", False, False), ("torch", True, False)] if args.device == "cuda" else [("cpu kernel", False, False)]
    )
    shapes = [
        (f"1 x {args.long}", forward_of(single), lambda: ex.explain(long_text, ["alti", "rollout"]), paths),
        (
            f"{args.batch} x {args.short}",
            forward_of(batch),
            lambda: ex.explain_batch(texts, ["alti", "rollout"], batch_size=args.batch),
            paths + ([("triton rows", False, True)] if args.device == "cuda" else []),
        ),
    ]
    rows = []
    for shape, forward, explain, shape_paths in shapes:
        for path, torch_path, row_by_row in shape_paths:
            run = with_path(explain, torch_path, row_by_row)
            rows.append(
                (
                    f"{shape} {path}",
                    interleaved(forward, run, args.device, args.repeats),
                    extra_peak_mb(forward, run, args.device),
                )
            )
    return rows


def batch_difference(args, ex) -> float:
    """Largest |difference| of the batch's ALTI and rollout scores between one launch per layer
    for all rows (the default) and each row alone."""
    import numpy as np

    texts = [text_of_length(ex, args.short, 1 + k) for k in range(args.batch)]

    def explain():
        return ex.explain_batch(texts, ["alti", "rollout"], batch_size=args.batch)

    def scores(row_by_row: bool):
        return with_path(explain, torch_path=False, row_by_row=row_by_row)()

    together, alone = scores(False), scores(True)
    return max(float(np.abs(a.scores[m] - b.scores[m]).max()) for a, b in zip(together, alone) for m in a.scores)


def decompositions(ex, n: int):
    """Every layer's decomposition of one n-token text, float32, on the explainer's device (in inference mode)."""
    import torch

    from alti.capture import LayerView, capture

    ids = torch.tensor([ex.encode(text_of_length(ex, n, 0))], device=ex.device)
    trace = capture(ex.model, ex.adapter, ids)
    return [
        LayerView(layer, modules, 0, n, torch.float32).decomposition
        for layer, modules in zip(trace.layers, ex.adapter.layers)
    ]


def fresh(dec, dtype=None):
    """The four tensors the L1 step reads, in a new container (nothing cached on it)."""
    from alti.core.decomposition import PreLNDecomposition

    names = ("attentions", "head_vectors", "residual", "scaled_output")
    tensors = {name: getattr(dec, name).to(dtype or dec.scaled_output.dtype) for name in names}
    return PreLNDecomposition(**tensors, bias=tensors["residual"].new_zeros(tensors["residual"].shape[-1]))


def kernel_alone(args, ex) -> list[tuple[str, float, float]]:
    """(b): (row name, seconds for all layers, largest |difference| from float64) per path."""
    import torch

    from alti.core import contributions as C
    from alti.core import triton_l1

    decs = [fresh(dec) for dec in decompositions(ex, args.long)]
    references = []
    for dec in decs:
        exact = fresh(dec, torch.float64)
        clamped = (exact.scaled_output.abs().sum(-1, keepdim=True) - C.l1_distances_torch(exact)).clamp_min(0)
        references.append(normalise(clamped, exact))

    def by_kernel(blocks):
        return [
            triton_l1.l1_contributions(
                d.attentions, d.head_vectors, d.residual, d.scaled_output, lower=d.causal, blocks=blocks
            )
            for d in decs
        ]

    def by_torch():
        out = []
        for dec in decs:
            again = fresh(dec)  # alti_l1 builds the (n, n, H+1) weights for every layer
            distances = C.l1_distances_torch(again, C.GPU_CHUNK_BYTES if args.device == "cuda" else C.CHUNK_BYTES)
            out.append((again.scaled_output.abs().sum(-1, keepdim=True) - distances).clamp_min(0))
        return out

    candidates = [(f"triton {tuple(b)}", lambda b=b: by_kernel(b)) for b in args.blocks]
    candidates.append(("torch chunks", by_torch))
    rows = []
    for name, run in candidates:
        matrices = run()  # warm-up (the kernel compiles on first use) and the accuracy check
        seconds = sorted(timed(run, args.device)[0] for _ in range(args.repeats))[args.repeats // 2]
        error = max(
            float((normalise(m, dec).double() - ref).abs().max()) for m, dec, ref in zip(matrices, decs, references)
        )
        rows.append((name, seconds, error))
    return rows


def normalise(clamped, dec):
    """What ``alti_l1`` returns from the clamped contributions: unreached pairs 0, rows summing to 1."""
    from alti.core.contributions import normalize_rows

    if dec.unreached is not None:
        clamped[dec.unreached] = 0
    return normalize_rows(clamped)


def four_ints(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: four positive integers targets,sources,dims,warps (e.g. 16,16,32,4)"
        )
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="where to run (cpu: a quick check of the script, no Triton in (a))",
    )
    parser.add_argument("--long", type=int, default=512, help="tokens of the single text, and of (b) (default 512)")
    parser.add_argument("--batch", type=int, default=32, help="texts in the batch of (a) (default 32)")
    parser.add_argument("--short", type=int, default=128, help="tokens of each text of the batch (default 128)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats, medians reported (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--blocks",
        nargs="+",
        metavar="I,J,D,W",
        type=four_ints,
        default=None,
        help="kernel block shapes for (b): targets,sources,dims,warps (default: the kernel's own)",
    )
    parser.add_argument("--skip-api", action="store_true", help="only (b), the L1 step alone")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device here; --device cpu runs a quick check of the script")
    ex = bert_base(args.device)
    print(machine_line(args.threads, args.repeats))
    print(
        f"model: {ex.name}, {ex.adapter.num_layers} layers, {ex.adapter.num_heads} heads, float32, methods alti, rollout"
    )
    if not args.skip_api:
        header = f"{'(a) input, L1 path':<26} {'forward ms':>11} {'explain ms':>11} {'ratio':>7} {'extra peak MB':>14}"
        print(header)
        print("-" * len(header))
        for name, t, mb in explained(args, ex):
            print(
                f"{name:<26} {t['forward_s'] * 1e3:>11.2f} {t['explain_s'] * 1e3:>11.2f} {t['ratio']:>6.2f}x {mb:>14.0f}"
            )
        if args.device == "cuda":
            print(
                f"the batch, one launch per layer against row by row: largest score difference {batch_difference(args, ex):.2e}"
            )
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    if args.device == "cpu" and not interpreting:
        print("(b) skipped: the Triton kernel runs on CUDA, or on the CPU under TRITON_INTERPRET=1")
        return
    from alti.core.triton_l1 import BLOCKS, Blocks

    args.blocks = [Blocks(*b) for b in args.blocks] if args.blocks else [BLOCKS]
    header = f"{'(b) L1 step, ' + str(args.long) + ' tokens':<34} {'all layers ms':>14} {'max |diff| vs float64':>22}"
    print(header)
    print("-" * len(header))
    with torch.inference_mode():
        rows = kernel_alone(args, ex)
    for name, seconds, error in rows:
        print(f"{name:<34} {seconds * 1e3:>14.2f} {error:>22.2e}")


if __name__ == "__main__":
    main()
