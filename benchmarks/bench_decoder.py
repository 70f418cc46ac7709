"""ALTI + ALTI-Logit on a decoder against one plain forward pass (issue: decoders and pre-LN models).

Default: SmolLM2-135M-Instruct (``--model smollm2``: the hub copy or alti's
converted one; 30 layers, 9 heads, 3 key/value heads, d = 576), float32, on
random token ids.  ``--random`` builds the same geometry with random weights
(no download; the times do not depend on the weights).  ``--geometry
llama3-8b`` builds Llama-3-8B's geometry (32 layers, 32 heads, 8 key/value
heads, d = 4096, vocabulary 128,256) with random weights in bfloat16 on CUDA,
for the GPU machine.  Each repeat times ``model(input_ids)`` and then
``Explainer.explain_ids(ids, ["alti", "alti_logit"])`` (its own forward pass
with hooks, ALTI's per-layer matrices and the logit contributions; ``--methods``
chooses others); ratios and memory as in :mod:`harness`.

    python benchmarks/bench_decoder.py [--lengths 128 512] [--repeats 5] [--threads 2] [--random]
    python benchmarks/bench_decoder.py --geometry llama3-8b --device cuda --lengths 4096 --methods alti --repeats 3
"""

from __future__ import annotations

import argparse
import json

from harness import extra_peak_mb, in_child, interleaved, machine_line

METHODS = ["alti", "alti_logit"]
GOALS = {512: 3.0}
MEMORY_GOAL_MB = 512
#: Llama-3-8B's geometry: seconds for the explanation and extra peak MB, by input length
LLAMA3_8B_GOALS = {4096: (10.0, 8192)}
SMOLLM2_135M = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)
LLAMA3_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
)


def build(args):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from alti import Explainer

    if args.geometry == "llama3-8b":
        config = LlamaConfig(**{**LLAMA3_8B, **_depth(args)}, attn_implementation="eager")
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        model = model.to_empty(device=args.device).to(torch.bfloat16)
        _random_weights(model)
        return Explainer(model.eval(), NoTokenizer(config.vocab_size), name="Llama-3-8B geometry (random, bf16)")
    if args.random:
        config = AutoConfig.for_model("llama", **SMOLLM2_135M, attn_implementation="eager")
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        return Explainer(
            model.eval(), NoTokenizer(config.vocab_size), name="SmolLM2-135M geometry (random)", device=args.device
        )
    return Explainer.from_pretrained(args.model, device=args.device)


class NoTokenizer:
    """Stands in for a tokenizer where the benchmark only feeds ids (random-weight geometries)."""

    cls_token_id = sep_token_id = bos_token_id = eos_token_id = pad_token_id = mask_token_id = None
    unk_token_id = 0
    padding_side = "right"

    def __init__(self, vocab_size: int):
        self.model_max_length = 1 << 20
        self.vocab_size = vocab_size

    def convert_ids_to_tokens(self, ids):
        return [f"<{int(i)}>" for i in ids]

    def decode(self, ids):
        return "".join(self.convert_ids_to_tokens(ids))


def _depth(args) -> dict:
    """``--layers`` shortens a geometry (a quick check that the script runs)."""
    return {"num_hidden_layers": args.layers} if args.layers else {}


def _random_weights(model) -> None:
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02)
        rotary = model.model.rotary_emb  # its frequencies were never computed on the meta device
        model.model.rotary_emb = type(rotary)(model.config).to(next(model.parameters()).device)


def ids_of_length(n: int, vocab: int) -> list[int]:
    import random

    rng = random.Random(n)
    return [rng.randrange(100, min(vocab, 30000)) for _ in range(n)]


def forward_and_explain(ex, n: int, methods: list[str]):
    import torch

    ids = ids_of_length(n, ex.vocab_size)
    tensor = torch.tensor([ids], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=tensor)

    return forward, lambda: ex.explain_ids(ids, methods)


def memory_child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    forward, explain = forward_and_explain(build(args), args.memory_child, args.methods)
    print(json.dumps({"extra_mb": extra_peak_mb(forward, explain, args.device)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="a causal LM name or directory (default: smollm2)")
    parser.add_argument("--random", action="store_true", help="SmolLM2's geometry with random weights")
    parser.add_argument("--geometry", choices=["llama3-8b"], help="a large geometry with random weights (CUDA)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512], help="input lengths in tokens")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats, medians reported")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model runs")
    parser.add_argument("--layers", type=int, help="only this many layers of --geometry (a smoke run)")
    parser.add_argument(
        "--methods", nargs="+", default=METHODS, help=f"methods to explain with (default: {' '.join(METHODS)})"
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    import torch

    torch.set_num_threads(args.threads)
    ex = build(args)
    print(machine_line(args.threads, args.repeats))
    print(
        f"model: {ex.name}, {ex.adapter.num_layers} layers, {ex.adapter.num_heads} heads "
        f"({ex.adapter.kv_heads} key/value), {next(ex.model.parameters()).dtype}, methods {', '.join(args.methods)}"
    )
    header = (
        f"{'device':<6} {'tokens':>6} {'forward s':>10} {'+'.join(args.methods) + ' s':>18} {'ratio':>6} "
        f"{'cpu-time ratio':>15} {'goal':>5} {'extra peak MB':>14} {'goal MB':>8}"
    )
    print(header)
    print("-" * len(header))
    passthrough = ["--threads", str(args.threads), "--device", args.device, "--model", args.model]
    passthrough += ["--random"] if args.random else []
    passthrough += ["--geometry", args.geometry] if args.geometry else []
    passthrough += ["--layers", str(args.layers)] if args.layers else []
    passthrough += ["--methods", *args.methods]
    for n in args.lengths:
        t = interleaved(*forward_and_explain(ex, n, args.methods), args.device, args.repeats)
        mb = in_child(__file__, [*passthrough, "--memory-child", str(n)])["extra_mb"]
        if args.geometry == "llama3-8b":
            seconds, goal_mb = LLAMA3_8B_GOALS.get(n, (None, None))
            goal = f"{seconds:.0f}s" if seconds else "-"
        else:
            goal = f"{GOALS[n]}x" if n in GOALS else "-"
            goal_mb = MEMORY_GOAL_MB if n == 512 else None
        print(
            f"{args.device:<6} {n:>6} {t['forward_s']:>10.3f} {t['explain_s']:>18.3f} {t['ratio']:>5.2f}x "
            f"{t['cpu_ratio']:>14.2f}x {goal:>5} {mb:>14.0f} {goal_mb or '-':>8}"
        )


if __name__ == "__main__":
    main()
