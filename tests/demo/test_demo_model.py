"""The embedded demo model: small shipped delta, merged correctly, right on unseen sentences."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
import torch
from safetensors import safe_open

from alti import demo
from alti.loading import load_model
from tests.conftest import tiny_model

# Plain sentences written for these tests: not in the IMDB training data, not in samples.jsonl.
UNSEEN = [
    ("An utterly charming film with a lovely, witty script.", "positive"),
    ("The acting is superb and the story is gripping.", "positive"),
    ("A beautiful, heartfelt movie that I will treasure.", "positive"),
    ("A boring, badly written and badly acted movie.", "negative"),
    ("The film is a tedious and pointless waste of time.", "negative"),
    ("Terrible dialogue, awful pacing and a stupid ending.", "negative"),
]
# The examples named in issue 3.
ISSUE = [
    ("A dull, lifeless film.", "negative"),
    ("A warm, funny and beautifully acted film.", "positive"),
]


@pytest.fixture(scope="module")
def loaded():
    return load_model("demo", "cpu")


def predict(model, tokenizer, texts):
    with torch.no_grad():
        probs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    return [model.config.id2label[int(i)] for i in probs.argmax(-1)], probs


def test_delta_is_at_most_2_mb():
    assert demo.DELTA_FILE.is_file()
    assert demo.DELTA_FILE.stat().st_size <= 2_000_000


def test_delta_metadata_matches_the_shipped_file():
    info = demo.info()
    assert info["labels"] == ["negative", "positive"]
    assert info["delta"]["sha256"] == hashlib.sha256(demo.DELTA_FILE.read_bytes()).hexdigest()
    # Issue 3 asks for at least 0.85; the shipped delta measured 0.885 (see sentiment-delta.json).
    assert info["results"]["test_accuracy"] >= 0.85
    assert info["data"]["test_reviews"] >= 1000


def test_delta_is_package_data():
    files = {f.name for f in resources.files("alti.demo").iterdir()}
    assert {demo.DELTA_FILE.name, demo.INFO_FILE.name} <= files


def test_demo_loads_as_an_eager_classifier_in_eval_mode(loaded):
    model, tokenizer, name = loaded
    assert name == demo.DISPLAY_NAME
    assert not model.training
    assert model.config._attn_implementation == "eager"
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert next(model.parameters()).device.type == "cpu"
    assert tokenizer("a film")["input_ids"][0] == tokenizer.cls_token_id


def test_demo_is_right_on_unseen_plain_sentences(loaded):
    model, tokenizer, _ = loaded
    predicted, probs = predict(model, tokenizer, [t for t, _ in UNSEEN])
    assert predicted == [label for _, label in UNSEEN]
    assert probs.max(-1).values.min() > 0.7


def test_demo_is_right_on_the_issue_examples(loaded):
    model, tokenizer, _ = loaded
    predicted, _ = predict(model, tokenizer, [t for t, _ in ISSUE])
    assert predicted == [label for _, label in ISSUE]


def test_demo_differs_from_the_bare_base_encoder(loaded):
    model, _, _ = loaded
    base = demo.base_weights()
    with safe_open(str(demo.DELTA_FILE), "pt") as delta:
        name = next(k[: -len(demo.LORA_A)] for k in delta.keys() if k.endswith(demo.LORA_A))
    tuned = dict(model.named_parameters())[name]
    assert not torch.equal(tuned, base[name])


def test_with_delta_adds_low_rank_updates_and_replaces_tensors():
    model, _ = tiny_model("bert", dtype=torch.float64)
    weights = dict(model.state_dict())
    name = "bert.encoder.layer.1.attention.self.query.weight"
    a = torch.randn(3, weights[name].shape[1], dtype=torch.float64)
    b = torch.randn(weights[name].shape[0], 3, dtype=torch.float64)
    head = torch.randn_like(weights["classifier.bias"])
    before = {key: value.clone() for key, value in weights.items()}
    merged = demo.with_delta(weights, {name + demo.LORA_A: a, name + demo.LORA_B: b, "classifier.bias": head})
    torch.testing.assert_close(merged[name], before[name] + b @ a)
    torch.testing.assert_close(merged["classifier.bias"], head)
    assert set(merged) == set(weights)
    for key, value in weights.items():
        assert torch.equal(value, before[key]), f"with_delta changed its input {key}"
