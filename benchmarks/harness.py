"""What the benchmark scripts share: interleaved timing, extra peak memory, machine names.

Each repeat times a plain forward pass and then the explanation, so the ratio
of a pair is measured under the same machine load; medians over repeats of
the wall-clock ratio and of the ratio of this process's CPU time (steadier on
a shared machine).  :func:`back_to_back` times blocks of calls of one kind
instead (as a dataset run makes them), with the minor page faults per call.
Extra peak memory: the highest resident set size sampled
every millisecond while explaining, minus the resident size after two plain
forward passes (CUDA: peak allocated minus the forward pass's peak), measured
in a fresh process per input length.

The benchmarks are entry points, as ``alti`` is: importing this module makes alti's
process-wide settings (:func:`alti.process.prepare`), so calls are timed as the CLI makes them.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from alti.process import prepare

prepare()


def timed(fn: Callable[[], object], device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


def interleaved(forward: Callable, explain: Callable, device: str, repeats: int) -> dict[str, float]:
    """Medians of forward and explanation times and of their ratios, after one warm-up each."""
    forward(), explain()
    fwd, exp, ratios, cpu_ratios = [], [], [], []
    for _ in range(repeats):
        f, f_cpu = timed(forward, device)
        e, e_cpu = timed(explain, device)
        fwd.append(f), exp.append(e), ratios.append(e / f), cpu_ratios.append(e_cpu / f_cpu)
    return {
        "forward_s": statistics.median(fwd),
        "explain_s": statistics.median(exp),
        "ratio": statistics.median(ratios),
        "cpu_ratio": statistics.median(cpu_ratios),
    }


def minor_faults() -> int:
    """Minor page faults of this process so far (pages the kernel had to map and zero)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def back_to_back(forward: Callable, explain: Callable, device: str, rounds: int, calls: int) -> dict[str, float]:
    """Blocks of ``calls`` back-to-back forward passes, then of ``calls`` explanations, ``rounds`` times.

    After one call of each kind, the first call of each block (which follows
    the other kind) is not timed, so a block sees the state its own kind
    leaves behind, as consecutive calls of a dataset run do.  Alternating the blocks keeps the forward and
    explanation times of one round under the same machine load: the ratio of a
    round is that of the two blocks' medians; the medians over rounds are
    reported, with the minor page faults per call of each kind.
    """
    blocks: dict[str, list] = {"forward": [], "explain": []}
    forward(), explain()  # one-off costs (kernel compilation, first allocations) before any block
    for _ in range(rounds):
        for name, fn in (("forward", forward), ("explain", explain)):
            fn()
            faults = minor_faults()
            times = [timed(fn, device) for _ in range(calls)]
            blocks[name].append(
                (
                    statistics.median(t[0] for t in times),
                    statistics.median(t[1] for t in times),
                    (minor_faults() - faults) / calls,
                )
            )
    fwd, exp = blocks["forward"], blocks["explain"]
    return {
        "forward_s": statistics.median(f[0] for f in fwd),
        "explain_s": statistics.median(e[0] for e in exp),
        "ratio": statistics.median(e[0] / f[0] for f, e in zip(fwd, exp)),
        "cpu_ratio": statistics.median(e[1] / f[1] for f, e in zip(fwd, exp)),
        "forward_faults": statistics.median(f[2] for f in fwd),
        "explain_faults": statistics.median(e[2] for e in exp),
    }


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def extra_peak_mb(forward: Callable, explain: Callable, device: str) -> float:
    """Extra peak memory (MB) of ``explain`` over what two plain forward passes leave."""
    forward(), forward()
    return peak_mb(explain, device)


def peak_mb(call: Callable, device: str) -> float:
    """Peak memory (MB) of ``call`` over what was in use when it began: CUDA's allocator, or
    the process's resident set sampled every millisecond."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - base) / 2**20
    base = rss()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return (max(peak[0], rss()) - base) / 2**20


def in_child(script: str, argv: list[str]) -> dict:
    """Run ``script argv`` in a fresh process; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, script, *argv], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bert_base(device: str):
    """An Explainer around a random-initialised BERT-base classifier (``BertConfig()``, no download)."""
    from alti import Explainer

    model, tokenizer = bert_base_parts()
    return Explainer(model, tokenizer, name="bert-base (random init)", device=device)


def bert_base_parts():
    """A random-initialised BERT-base classifier (seed 0, eager attention) and :func:`bert_base_tokenizer`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(attn_implementation="eager"))
    return model.eval(), bert_base_tokenizer()


def bert_base_tokenizer():
    """A WordPiece tokenizer of BERT-base's size for the random geometry: BERT's special tokens and
    30,517 made-up lowercase words of 3 and 4 letters, each one token.  With random weights only
    the number of tokens matters; this needs no download and no model package (the GPU machine
    has neither)."""
    import itertools
    import string

    from transformers import BertTokenizerFast

    words = ("".join(w) for size in (3, 4) for w in itertools.product(string.ascii_lowercase, repeat=size))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *itertools.islice(words, 30522 - 5)]
    return BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}, model_max_length=512)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_line(threads: int, repeats: int, timing: str = "interleaved repeats") -> str:
    import platform

    import torch

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"torch {torch.__version__}, {threads} threads, CPU {platform.machine()} ({cpu_name()}){gpu}, "
        f"{repeats} {timing}, medians"
    )
