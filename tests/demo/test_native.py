"""The demo model's own BERT and tokenizer (``alti.demo.native``) equal transformers' ones."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from alti import Explainer, demo
from alti.demo.native import DemoConfig, NativeBertForSequenceClassification, WordPieceTokenizer, build_classifier
from tests.conftest import tiny_model

TEXTS = [
    "A warm, funny and beautifully acted film.",
    "Ünïcödé café — naïve 東京 and an emoji 😀,   odd   spaces\tand tabs",
    "don't, can't; won't!! $5.99 [MASK] [CLS] e-mail: a@b.com",
    "word " * 300,
    "",
]
TRACE_METHODS = ["alti", "alti_l2", "norm", "norm_rollout", "globenc", "attention", "rollout"]


@pytest.fixture(scope="module")
def tokenizers():
    path = demo.base_path()
    return WordPieceTokenizer(path), AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def models():
    """The demo model natively and in transformers' class, holding the same tensors."""
    native, tokenizer = demo.load_demo()
    reference, _ = demo.base_classifier()
    reference.load_state_dict(demo.with_delta(demo.base_weights(), load_file(str(demo.DELTA_FILE))))
    return native, reference, tokenizer


@pytest.mark.parametrize("max_length", [None, 5, 16, 512])
@pytest.mark.parametrize("special", [True, False])
def test_tokenizer_ids_equal_transformers(tokenizers, max_length, special):
    ours, theirs = tokenizers
    for text in TEXTS:
        kwargs = {"add_special_tokens": special}
        if max_length is not None:
            kwargs.update(truncation=True, max_length=max_length)
        assert ours(text, **kwargs)["input_ids"] == theirs(text, **kwargs)["input_ids"], text


def test_tokenizer_batches_specials_and_tokens_equal_transformers(tokenizers):
    ours, theirs = tokenizers
    mine = ours(TEXTS, padding=True, truncation=True, max_length=40, return_tensors="pt")
    reference = theirs(TEXTS, padding=True, truncation=True, max_length=40, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(mine[key], reference[key]), key
    ids = ours(TEXTS[1])["input_ids"]
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
    for name in ("cls", "sep", "pad", "mask", "unk", "bos", "eos"):
        assert getattr(ours, f"{name}_token_id") == getattr(theirs, f"{name}_token_id"), name
    assert ours.model_max_length == theirs.model_max_length
    with pytest.raises(ValueError, match="only 'pt'"):
        ours("a film", return_tensors="np")


def test_demo_logits_equal_transformers_on_a_padded_batch(models):
    native, reference, tokenizer = models
    batch = tokenizer(TEXTS[:4], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(native(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-5)
        single = tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
        torch.testing.assert_close(native(single).logits, reference(input_ids=single).logits, rtol=0, atol=1e-5)


def test_demo_explanations_equal_transformers(models):
    native, reference, tokenizer = models
    ours = Explainer(native, tokenizer, name="native", device="cpu")
    theirs = Explainer(reference, tokenizer, name="transformers", device="cpu")
    for text in TEXTS[:3]:
        a = ours.explain(text, methods=TRACE_METHODS + ["grad_l2"])
        b = theirs.explain(text, methods=TRACE_METHODS + ["grad_l2"])
        assert a.tokens == b.tokens and a.prediction.label == b.prediction.label
        for method in TRACE_METHODS + ["grad_l2"]:
            np.testing.assert_allclose(a.scores[method], b.scores[method], atol=1e-5, err_msg=method)
        for method in TRACE_METHODS:
            np.testing.assert_allclose(a.layers[method], b.layers[method], atol=1e-5, err_msg=method)


def test_native_bert_equals_transformers_in_float64_on_another_geometry():
    reference, hf_tokenizer = tiny_model("bert", dtype=torch.float64, seed=3, num_labels=3)
    c = reference.config
    config = DemoConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings,
        type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps,
        pad_token_id=c.pad_token_id,
        id2label={0: "a", 1: "b", 2: "c"},
    )
    native = build_classifier(config, dict(reference.state_dict()))
    assert isinstance(native, NativeBertForSequenceClassification) and config.num_labels == 3
    batch = hf_tokenizer(["a good film", "a film that is not good at all, sadly"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(native(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-12)


def test_build_classifier_refuses_missing_weights():
    reference, _ = tiny_model("bert")
    c = reference.config
    config = DemoConfig(
        c.vocab_size,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.intermediate_size,
        c.max_position_embeddings,
        c.type_vocab_size,
        c.layer_norm_eps,
        c.pad_token_id,
        {0: "a", 1: "b"},
    )
    weights = dict(reference.state_dict())
    del weights["classifier.bias"]
    with pytest.raises(RuntimeError, match="classifier.bias"):
        build_classifier(config, weights)


@pytest.mark.subprocess
def test_explaining_with_the_demo_model_never_imports_transformers():
    code = (
        "import sys\n"
        "from alti import Explainer\n"
        "e = Explainer.from_pretrained('demo').explain('A dull, lifeless film.', methods=['alti'])\n"
        "assert e.prediction.label == 'negative', e.prediction\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
