"""alti/data/samples.jsonl: the embedded sample dataset shipped for the TUI and the CLI."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources


def rows():
    text = resources.files("alti.data").joinpath("samples.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_samples_are_at_least_80_balanced_labelled_sentences():
    samples = rows()
    assert len(samples) >= 80
    assert all(set(row) == {"text", "label"} for row in samples)
    counts = Counter(row["label"] for row in samples)
    assert set(counts) == {"negative", "positive"}
    assert counts["negative"] == counts["positive"]


def test_samples_are_unique_short_sentences():
    texts = [row["text"] for row in rows()]
    assert len(set(texts)) == len(texts)
    assert all(0 < len(t.split()) <= 20 and t == t.strip() for t in texts)


def test_samples_include_negated_and_contrastive_sentences():
    texts = [row["text"].lower() for row in rows()]
    negated = [t for t in texts if any(w in t.split() for w in ("not", "never", "no", "nothing", "didn't", "can't"))]
    contrastive = [t for t in texts if " but " in t or " yet " in t or ";" in t]
    assert len(negated) >= 20 and len(contrastive) >= 15
