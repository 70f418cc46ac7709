"""The public API: batching, hooks, errors, serialisation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification

from alti import Explainer
from alti.adapters import SUPPORTED_MODEL_TYPES, get_adapter
from alti.errors import InputError, UnknownMethodError, UnsupportedModelError
from alti.methods import METHODS, Source
from tests.conftest import tiny_config, tiny_model

TRACE_METHODS = [name for name, m in METHODS.items() if m.source is Source.TRACE]
TEXTS = [
    "a dull , lifeless film",
    "a warm , funny and beautifully acted film that i would see again",
    "bad",
    "the plot is thin but the acting is great",
]


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert", "albert", "deberta-v2"])
def test_padded_batch_equals_one_by_one(model_type):
    ex = Explainer(*tiny_model(model_type, torch.float64))
    batch = ex.explain_batch(TEXTS, methods=TRACE_METHODS, batch_size=3)
    for text, got in zip(TEXTS, batch):
        one = ex.explain(text, methods=TRACE_METHODS)
        assert got.text == text and got.tokens == one.tokens
        np.testing.assert_allclose(got.prediction.probabilities, one.prediction.probabilities, atol=1e-12)
        for name in TRACE_METHODS:
            np.testing.assert_allclose(got.scores[name], one.scores[name], atol=1e-10)
            np.testing.assert_allclose(got.layers[name], one.layers[name], atol=1e-10)


def test_predict_ids_matches_explain():
    ex = Explainer(*tiny_model("bert", torch.float64))
    ids = [ex.encode(t) for t in TEXTS]
    probs = ex.predict_ids(ids, batch_size=3)
    assert probs.shape == (len(TEXTS), 2)
    for text, p in zip(TEXTS, probs):
        np.testing.assert_allclose(p, ex.explain(text).prediction.probabilities, atol=1e-12)


def test_hooks_removed_after_success_and_after_raise(monkeypatch):
    ex = Explainer(*tiny_model("bert"))
    assert _no_hooks(ex.model)
    ex.explain(TEXTS[0], methods=TRACE_METHODS)
    assert _no_hooks(ex.model)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ex.adapter.layers[-1].output_norm, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        ex.explain(TEXTS[0], methods=["alti"])
    assert _no_hooks(ex.model)


def test_prediction_target_and_settings():
    ex = Explainer(*tiny_model("bert", num_labels=3))
    e = ex.explain(TEXTS[1], methods=["alti", "rollout"])
    assert e.prediction.index == int(np.argmax(e.prediction.probabilities))
    assert e.prediction.label == ex.labels[e.prediction.index]
    assert e.special.tolist() == [True] + [False] * (len(e.tokens) - 2) + [True]
    assert e.tokens[0] == "[CLS]" and e.tokens[-1] == "[SEP]"
    assert e.settings["alti"]["scores_from"] == "rolled-out product"
    with pytest.raises(InputError, match="out of range"):
        ex.explain(TEXTS[1], target=3)
    assert ex.explain(TEXTS[1], target=2).prediction.index == e.prediction.index


def test_to_dict_is_json():
    ex = Explainer(*tiny_model("distilbert"), name="tiny")
    e = ex.explain(TEXTS[0], methods=["alti", "attention"])
    data = json.loads(json.dumps(e.to_dict(layers=True)))
    assert data["model"] == "tiny" and data["version"]
    assert set(data["attributions"]) == {"alti", "attention"}
    assert len(data["attributions"]["alti"]) == len(data["tokens"])
    assert np.array(data["layers"]["alti"]).shape == e.layers["alti"].shape
    assert data["prediction"]["label"] == e.prediction.label
    assert "layers" not in e.to_dict()


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(text):
    ex = Explainer(*tiny_model("bert"))
    with pytest.raises(InputError, match="empty"):
        ex.explain(text)


def test_long_text_is_truncated():
    ex = Explainer(*tiny_model("roberta"))
    e = ex.explain("word " * 200, methods=["alti"])
    assert e.truncated and len(e.tokens) == ex.max_length == 64
    assert e.tokens[-1] == "[SEP]"
    assert not ex.explain("word " * 10).truncated


def test_unknown_method_lists_valid_ones():
    ex = Explainer(*tiny_model("bert"))
    with pytest.raises(UnknownMethodError, match="valid methods: .*alti.*rollout"):
        ex.explain("fine", methods=["alti", "lime"])


def test_unsupported_model_type_lists_supported():
    config = AutoConfig.for_model(
        "opt",
        hidden_size=8,
        num_hidden_layers=1,
        ffn_dim=16,
        num_attention_heads=2,
        word_embed_proj_dim=8,
        vocab_size=100,
    )
    model = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(UnsupportedModelError, match="'opt'.*bert, roberta.*gpt2, llama"):
        Explainer(model, None)
    assert {"deberta-v2", "gpt2", "llama", "mistral", "qwen2", "qwen3", "modernbert"} <= set(SUPPORTED_MODEL_TYPES)


def test_gemma2_is_refused_in_one_line():
    config = AutoConfig.for_model(
        "gemma2",
        hidden_size=8,
        num_hidden_layers=1,
        intermediate_size=16,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=4,
        vocab_size=100,
    )
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(UnsupportedModelError, match="'gemma2' is not supported: .*sandwich") as error:
        Explainer(model, None)
    assert "\n" not in str(error.value)


def test_masked_lm_is_read_at_its_mask():
    model = AutoModelForMaskedLM.from_config(tiny_config("bert"), attn_implementation="eager")
    adapter = get_adapter(model)
    assert adapter.encoder is model.bert and adapter.num_layers == 2
    assert adapter.head.task == "masked_lm" and adapter.head.reads == "mask"
    _, tokenizer = tiny_model("bert")
    ex = Explainer(model, tokenizer)
    with pytest.raises(InputError, match="0 mask tokens"):
        ex.explain("fine", target="is", foil="are")
    with pytest.raises(InputError, match="explained as a target against a foil .*: give both"):
        ex.explain("the [MASK] is here")
    layers = ex.layer_matrices(ex.encode("the [MASK] is here"), ["alti", "rollout"])
    assert layers["alti"].shape == (2, 6, 6)
    np.testing.assert_allclose(layers["rollout"].sum(-1), 1.0, atol=1e-6)


def test_albert_shares_one_layer():
    ex = Explainer(*tiny_model("albert"))
    assert ex.adapter.num_layers == 2
    assert ex.adapter.layers[0] == ex.adapter.layers[1]


@pytest.mark.subprocess
def test_import_alti_does_not_import_torch():
    code = "import sys, alti, alti.results; assert 'torch' not in sys.modules; alti.Explainer"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("method", ["decompx", "value_zeroing"])
def test_long_methods_pause_between_steps_and_can_be_stopped(method):
    ex = Explainer(*tiny_model("bert", torch.float64))
    calls = []
    ex.on_pause = lambda: calls.append(1)
    ex.explain(TEXTS[1], methods=[method])
    assert len(calls) >= ex.adapter.num_layers

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    ex.on_pause = stop
    with pytest.raises(Stop):
        ex.explain(TEXTS[1], methods=[method])
    assert _no_hooks(ex.model)
