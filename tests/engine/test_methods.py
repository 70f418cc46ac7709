"""Exactness of the decomposition and of every trace method, on every adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive import layer_inputs_and_attentions, naive_layer

from alti import Explainer
from alti.capture import LayerView, capture
from alti.core import transformed_vectors
from tests.conftest import tiny_model

TEXT = "a warm , funny and beautifully acted film"
TRACE_METHODS = ["alti", "alti_l2", "attention", "rollout", "norm", "norm_rollout", "globenc"]


@pytest.fixture(scope="module")
def explained():
    cache = {}

    def get(model_type, dtype=torch.float64):
        if (model_type, dtype) not in cache:
            model, tokenizer = tiny_model(model_type, dtype)
            ex = Explainer(model, tokenizer)
            cache[model_type, dtype] = ex, ex.explain(TEXT, methods=TRACE_METHODS)
        return cache[model_type, dtype]

    return get


def _views(ex, text, dtype=torch.float64):
    ids = torch.tensor([ex.encode(text)])
    trace = capture(ex.model, ex.adapter, ids)
    return [
        LayerView(layer, modules, 0, ids.shape[1], dtype) for layer, modules in zip(trace.layers, ex.adapter.layers)
    ]


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_decomposition_identity(model_type, dtype, tol):
    """sum_j T_i(x_j) + gamma (b_O - mean b_O) / sigma_i + beta == y_i (GUIDE §1.1 step 4)."""
    model, tokenizer = tiny_model(model_type, dtype)
    ex = Explainer(model, tokenizer)
    for view in _views(ex, TEXT, dtype):
        dec = view.decomposition
        n = view.x.shape[0]
        vectors = transformed_vectors(dec, slice(0, n)) / dec.sigma[:, None, None]
        rebuilt = vectors.sum(1) + dec.bias / dec.sigma[:, None] + dec.beta
        assert torch.allclose(rebuilt, view.norm_output, atol=tol, rtol=0)
        # the LayerNorm input is the sum of everything the tokens send, plus b_O
        assert torch.allclose(
            (vectors * dec.sigma[:, None, None]).sum(1) + dec.bias,
            view.parameter(view.modules.attention_norm.weight)
            * (view.norm_input - view.norm_input.mean(-1, keepdim=True)),
            atol=tol * 10,
            rtol=0,
        )


def test_rows_sum_to_one(model_type, explained):
    ex, e = explained(model_type)
    for method in TRACE_METHODS:
        layers = e.layers[method]
        assert layers.shape == (ex.adapter.num_layers, len(e.tokens), len(e.tokens))
        assert np.all(layers >= 0)
        np.testing.assert_allclose(layers.sum(-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(e.scores[method].sum(), 1.0, atol=1e-12)


def test_methods_equal_naive_loops(model_type, explained):
    ex, e = explained(model_type)
    ids = torch.tensor([e.input_ids])
    inputs, attentions = layer_inputs_and_attentions(ex.model, ex.adapter, ids)
    assert len(inputs) == ex.adapter.num_layers
    for layer, (x, attn, modules) in enumerate(zip(inputs, attentions, ex.adapter.layers)):
        with torch.no_grad():
            expected, identity_error = naive_layer(x, attn, modules, ex.adapter.num_heads)
        assert identity_error < 1e-10
        for name, matrix in expected.items():
            np.testing.assert_allclose(e.layers[name][layer], matrix.numpy(), atol=1e-10)


def test_rolled_scores_are_the_rolled_out_target_row(explained):
    _, e = explained("bert")
    for name in ("alti", "alti_l2", "rollout", "norm_rollout", "globenc"):
        layers = e.layers[name]
        product = layers[1] @ layers[0]
        np.testing.assert_allclose(e.rolled_out(name), product, atol=1e-14)
        np.testing.assert_allclose(e.rolled_out(name, upto=1), layers[0])
        np.testing.assert_allclose(e.scores[name], product[0], atol=1e-14)
    for name in ("attention", "norm"):
        np.testing.assert_allclose(e.scores[name], e.layers[name][-1][0])


def test_attention_and_rollout_from_output_attentions(model_type, explained):
    ex, e = explained(model_type)
    with torch.no_grad():
        out = ex.model(input_ids=torch.tensor([e.input_ids]), output_attentions=True)
    mean = [a[0].mean(0).numpy() for a in out.attentions]
    np.testing.assert_allclose(e.scores["attention"], mean[-1][0], atol=1e-12)
    row = np.eye(len(e.tokens))[0]
    for a in reversed(mean):
        row = row @ (0.5 * (a + np.eye(len(a))))
    np.testing.assert_allclose(e.scores["rollout"], row, atol=1e-12)


def test_capture_input_is_the_hidden_state(explained):
    ex, e = explained("bert")
    with torch.no_grad():
        out = ex.model(input_ids=torch.tensor([e.input_ids]), output_hidden_states=True)
    for view, hidden in zip(_views(ex, TEXT), out.hidden_states):
        assert torch.allclose(view.x, hidden[0], atol=1e-12)
