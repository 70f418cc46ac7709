"""Gradient methods at the embedding layer, checked against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alti import Explainer
from alti.methods import METHODS, gradients
from alti.methods.occlusion import occlusion
from tests.conftest import tiny_model


def make_explainer(model_type="bert", dtype=torch.float64, seed=0):
    model, tokenizer = tiny_model(model_type, dtype=dtype, seed=seed)
    return Explainer(model, tokenizer)


def encode(explainer, text="the movie was not good at all"):
    return explainer.tokenizer(text, return_tensors="pt")["input_ids"]


def probability(explainer, input_ids, target):
    with torch.no_grad():
        return float(torch.softmax(explainer.model(input_ids=input_ids).logits, -1)[0, target])


def test_integrated_gradients_is_complete():
    explainer = make_explainer()
    with torch.no_grad():
        explainer.model.classifier.weight.mul_(100.0)
    ids = encode(explainer)
    attributions, delta = gradients.integrated_gradients(explainer, ids, target=1, steps=64)
    baseline = gradients.ig_baseline(explainer, ids)
    expected = probability(explainer, ids, 1) - probability(explainer, baseline, 1)
    assert abs(expected) > 1e-3
    assert float(attributions.sum()) == pytest.approx(expected, abs=1e-6)
    assert delta < 1e-6
    scores = gradients.ig_dot(explainer, ids, 1, steps=64, internal_batch_size=64)
    assert scores.shape == (ids.shape[1],)
    assert scores.sum() == pytest.approx(expected, abs=1e-6)


def test_ig_baseline_keeps_special_tokens_and_masks_the_rest():
    explainer = make_explainer()
    ids = encode(explainer, "a b")
    tok = explainer.tokenizer
    baseline = gradients.ig_baseline(explainer, ids)[0].tolist()
    assert baseline == [tok.cls_token_id, tok.mask_token_id, tok.mask_token_id, tok.sep_token_id]


def hand_gradient(explainer, ids, target):
    captured = {}

    def hook(module, inputs, output):
        output.retain_grad()
        captured["embeddings"] = output

    handle = explainer.adapter.embeddings.register_forward_hook(hook)
    try:
        p = torch.softmax(explainer.model(input_ids=ids).logits, -1)[0, target]
        p.backward()
    finally:
        handle.remove()
    embeddings = captured["embeddings"]
    return embeddings.grad[0].detach(), embeddings[0].detach()


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "deberta-v2"])
def test_input_x_gradient_matches_autograd(model_type):
    explainer = make_explainer(model_type)
    ids = encode(explainer)
    grad, embeddings = hand_gradient(explainer, ids, 0)
    explainer.model.zero_grad()
    np.testing.assert_allclose(gradients.grad_l2(explainer, ids, 0), grad.norm(dim=-1).numpy(), rtol=1e-9)
    product = grad * embeddings
    np.testing.assert_allclose(gradients.gxi_l2(explainer, ids, 0), product.norm(dim=-1).numpy(), rtol=1e-9)
    np.testing.assert_allclose(gradients.gxi_dot(explainer, ids, 0), product.sum(-1).numpy(), rtol=1e-9)


def test_gradient_methods_leave_no_hooks():
    explainer = make_explainer()
    ids = encode(explainer)
    gradients.ig_l2(explainer, ids, 1, steps=4)
    gradients.gxi_l2(explainer, ids, 1)
    for module in explainer.model.modules():
        assert not module._forward_hooks
        assert not module._forward_pre_hooks


def test_occlusion_is_the_drop_when_masking_each_token():
    explainer = make_explainer()
    ids = encode(explainer, "good film")
    tok = explainer.tokenizer
    scores = occlusion(explainer, ids, 1, batch_size=2)
    full = probability(explainer, ids, 1)
    assert scores[0] == 0 and scores[-1] == 0
    for j in range(1, ids.shape[1] - 1):
        masked = ids.clone()
        masked[0, j] = tok.mask_token_id
        assert scores[j] == pytest.approx(full - probability(explainer, masked, 1), abs=1e-12)


def test_method_infos_are_labelled():
    infos = {name: m.info for name, m in METHODS.items() if m.compute.__module__ == gradients.__name__}
    assert set(infos) == {"grad_l2", "gxi_l2", "gxi_dot", "ig_l2", "ig_dot"}
    assert {name for name, info in infos.items() if info.signed} == {"gxi_dot", "ig_dot"}
    assert all(info.explains == "probability" and not info.matrix for info in infos.values())
