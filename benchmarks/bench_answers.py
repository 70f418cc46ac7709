"""A whole answer for about the price of one forward pass (issue: answers and their context).

SmolLM2-135M-Instruct (``--model smollm2``; ``--random`` builds its geometry with random
weights, no download), float32, on the CPU by default.  A prompt of ``--prompt`` tokens and an
answer of ``--answer`` tokens, as text (a review sentence repeated, cut to length), so that
inseq reads the same input.  Each repeat times, interleaved:

- ``forward``: ``model(input_ids)`` over prompt + answer (``forward, last logits``: with
  ``logits_to_keep=1``, the vocabulary-sized output at the last row only);
- ``next token``: ``Explainer.explain_ids(prompt + answer, ["alti", "alti_logit"])``, one next
  token at the same total length;
- ``answer``: ``Explainer.explain(prompt, methods=["alti", "alti_logit"], answer=...)``, every
  step of the answer and the whole answer, as users call it;

and reports medians and the ratios of one run (goals: answer ≤ 1.3× next token, ≤ 2.2×
forward).  ``--memory-tokens`` measures, in a fresh process at that total length, the peak
memory of a plain forward pass and of the answer over what the loaded model holds; the goal
(≤ 1 GB at 4,096) is the answer's peak beyond the forward pass's own, which eager attention
sets (SmolLM2's 9 heads hold two n × n float32 arrays each while a layer's attention runs).  ``--inseq-python``
names a Python with inseq installed (its own environment: its pins may clash with alti's):
``benchmarks/bench_answers_inseq.py`` then times inseq's saliency on the same model and
answer against its own forward pass, in that interpreter.

    python benchmarks/bench_answers.py [--prompt 1024] [--answer 32] [--repeats 5] [--threads 2]
    python benchmarks/bench_answers.py --memory-tokens 4096 --inseq-python /tmp/venv-inseq/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import in_child, machine_line, peak_mb, timed

METHODS = ["alti", "alti_logit"]
GOAL_NEXT_TOKEN = 1.3
GOAL_FORWARD = 2.2
MEMORY_GOAL_MB = 1024
SENTENCE = "The film was long, but the acting was warm and the music stayed with me for days. "
ANSWER_WORDS = "It was a warm film with fine acting and music that lasts, and I would watch it again soon. " * 4


def explainer(args):
    import torch

    from alti import Explainer

    torch.set_num_threads(args.threads)
    if not args.random:
        return Explainer.from_pretrained("smollm2", device=args.device, max_tokens=8192)
    from transformers import AutoConfig, AutoModelForCausalLM

    from alti import smollm2

    tokenizer_dir = smollm2.model_dir()
    config = AutoConfig.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    from transformers import AutoTokenizer

    return Explainer(model, AutoTokenizer.from_pretrained(tokenizer_dir), device=args.device, max_tokens=8192)


def texts(tokenizer, prompt_tokens: int, answer_tokens: int) -> tuple[str, str]:
    """A prompt of ``prompt_tokens`` tokens (its start-of-text token included, if any) and an
    answer of ``answer_tokens``, as text that tokenizes back to those counts."""
    lead = len(tokenizer("x")["input_ids"]) - len(tokenizer("x", add_special_tokens=False)["input_ids"])
    ids = tokenizer(SENTENCE * (prompt_tokens // 8 + 8), add_special_tokens=False)["input_ids"]
    prompt = tokenizer.decode(ids[: prompt_tokens - lead])
    answer_ids = tokenizer(" " + ANSWER_WORDS, add_special_tokens=False)["input_ids"][:answer_tokens]
    return prompt, tokenizer.decode(answer_ids)


def measure(args) -> dict:
    import torch

    ex = explainer(args)
    prompt, answer = texts(ex.tokenizer, args.prompt, args.answer)
    e = ex.explain(prompt, methods=METHODS, answer=answer)
    ids = torch.tensor([e.input_ids], device=ex.device)
    calls = {
        "forward": lambda: ex.model(input_ids=ids),
        "forward, last logits": lambda: ex.model(input_ids=ids, logits_to_keep=1),
        "next token": lambda: ex.explain_ids(e.input_ids, METHODS),
        "answer": lambda: ex.explain(prompt, methods=METHODS, answer=answer),
    }
    with torch.inference_mode():
        for call in calls.values():  # warm-up: the kernel's compilation, first allocations
            call()
        times: dict[str, list[float]] = {name: [] for name in calls}
        ratios: dict[str, list[float]] = {"answer / next token": [], "answer / forward": [], "answer / last logits": []}
        for _ in range(args.repeats):
            once = {name: timed(call, args.device)[0] for name, call in calls.items()}
            for name, seconds in once.items():
                times[name].append(seconds)
            ratios["answer / next token"].append(once["answer"] / once["next token"])
            ratios["answer / forward"].append(once["answer"] / once["forward"])
            ratios["answer / last logits"].append(once["answer"] / once["forward, last logits"])
    return {
        "prompt_tokens": e.target.start,
        "answer_tokens": e.target.steps,
        "seconds": {name: statistics.median(values) for name, values in times.items()},
        "ratios": {name: statistics.median(values) for name, values in ratios.items()},
        "machine": machine_line(args.threads, args.repeats),
    }


def memory(args) -> dict:
    """Extra peak memory (MB) of the answer and of one next token at ``--memory-tokens`` in all."""
    import torch

    ex = explainer(args)
    prompt, answer = texts(ex.tokenizer, args.memory_tokens - args.answer, args.answer)
    e = ex.explain(prompt, methods=["alti"], answer=answer)
    ids = torch.tensor([e.input_ids], device=ex.device)

    def forward():
        with torch.inference_mode():
            ex.model(input_ids=ids)

    forward(), forward()
    forward_peak = peak_mb(forward, args.device)
    if args.child_memory == "answer":
        used = peak_mb(lambda: ex.explain(prompt, methods=METHODS, answer=answer), args.device)
    else:
        used = peak_mb(lambda: ex.explain_ids(e.input_ids, METHODS), args.device)
    return {"tokens": len(e.input_ids), "extra_peak_mb": used, "forward_peak_mb": forward_peak}


def inseq(args, result: dict) -> dict:
    """inseq's saliency on the same model, prompt and answer, in ``--inseq-python``."""
    from transformers import AutoTokenizer

    from alti import smollm2

    model_dir = str(smollm2.model_dir())
    prompt, answer = texts(AutoTokenizer.from_pretrained(model_dir), args.prompt, args.answer)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"model_dir": model_dir, "prompt": prompt, "answer": answer}, handle)
    script = str(Path(__file__).with_name("bench_answers_inseq.py"))
    out = subprocess.run(
        [
            args.inseq_python,
            script,
            handle.name,
            "--repeats",
            str(args.inseq_repeats),
            "--threads",
            str(args.threads),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    Path(handle.name).unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=1024, help="prompt tokens (default: 1024)")
    parser.add_argument("--answer", type=int, default=32, help="answer tokens (default: 32)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random", action="store_true", help="SmolLM2's geometry with random weights")
    parser.add_argument("--memory-tokens", type=int, help="also measure extra peak memory at this total length")
    parser.add_argument("--inseq-python", help="a Python with inseq: compare its saliency on the same answer")
    parser.add_argument("--inseq-repeats", type=int, default=1, help="inseq attributions timed (default: 1)")
    parser.add_argument("--child-memory", choices=("answer", "next token"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.child_memory:
        print(json.dumps(memory(args)))
        return
    result = measure(args)
    if args.memory_tokens:
        common = ["--memory-tokens", str(args.memory_tokens), "--answer", str(args.answer)]
        common += ["--threads", str(args.threads), "--device", args.device] + (["--random"] if args.random else [])
        result["memory"] = {
            which: in_child(__file__, [*common, "--child-memory", which]) for which in ("answer", "next token")
        }
    if args.inseq_python:
        result["inseq"] = inseq(args, result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    seconds, ratios = result["seconds"], result["ratios"]
    print(f"{result['prompt_tokens']}-token prompt, {result['answer_tokens']}-token answer, {', '.join(METHODS)}")
    for name, value in seconds.items():
        print(f"  {name:<20} {value:7.2f} s")
    print(f"  answer / next token {ratios['answer / next token']:.2f}x (goal <= {GOAL_NEXT_TOKEN}x)")
    print(f"  answer / forward    {ratios['answer / forward']:.2f}x (goal <= {GOAL_FORWARD}x)")
    print(f"  answer / forward, last logits {ratios['answer / last logits']:.2f}x")
    if "memory" in result:
        for which, found in result["memory"].items():
            beyond = found["extra_peak_mb"] - found["forward_peak_mb"]
            print(
                f"  peak at {found['tokens']} tokens, {which}: {found['extra_peak_mb']:.0f} MB over the model, "
                f"{beyond:.0f} MB beyond the forward pass's {found['forward_peak_mb']:.0f} MB"
            )
        print(f"  (goal for the answer: <= {MEMORY_GOAL_MB} MB beyond the forward pass)")
    if "inseq" in result:
        found = result["inseq"]
        print(
            f"  inseq saliency: {found['attribute_s']:.1f} s, {found['ratio']:.0f}x its forward pass "
            f"({found['forward_s']:.2f} s; inseq {found['inseq']}, torch {found['torch']})"
        )
    print(result["machine"], file=sys.stderr)


if __name__ == "__main__":
    main()
