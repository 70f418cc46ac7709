"""inseq's saliency on a whole answer against its own forward pass, for ``bench_answers.py``.

Runs in a Python that has inseq (its own environment, not alti's): reads the model directory,
the prompt and the answer from a JSON file that ``bench_answers.py`` writes, times
``model.attribute(prompt, prompt + answer)`` (gradient saliency: one backward pass per answer
token) and ``model(input_ids)`` over prompt + answer, and prints one JSON line.

    /path/to/inseq-venv/bin/python benchmarks/bench_answers_inseq.py INPUT.json [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib import metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="JSON with model_dir, prompt and answer")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8") as handle:
        given = json.load(handle)

    import inseq
    import torch

    torch.set_num_threads(args.threads)
    model = inseq.load_model(given["model_dir"], "saliency")
    model.model.eval()
    prompt, answer = given["prompt"], given["answer"]
    ids = model.tokenizer(prompt + answer, return_tensors="pt")["input_ids"]

    def forward():
        with torch.inference_mode():
            model.model(input_ids=ids)

    def attribute():
        return model.attribute(input_texts=prompt, generated_texts=prompt + answer, show_progress=False)

    forward()  # warm-up; an attribution takes minutes at 1,000 tokens: its own warm-up is not worth one more
    forwards, attributions = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        forward()
        forwards.append(time.perf_counter() - start)
        start = time.perf_counter()
        attribute()
        attributions.append(time.perf_counter() - start)
    forward_s, attribute_s = statistics.median(forwards), statistics.median(attributions)
    print(
        json.dumps(
            {
                "forward_s": forward_s,
                "attribute_s": attribute_s,
                "ratio": attribute_s / forward_s,
                "tokens": int(ids.shape[1]),
                "inseq": metadata.version("inseq"),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
