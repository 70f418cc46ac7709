"""Past ``Explainer.layer_budget`` an input keeps no per-layer matrices: each trace method rolls
out as the layers come and ALTI-Logit folds its block terms into ALTI's running product.  The
scores equal those computed from the kept layers (float64, 1e-10), on causal models (the
lower-triangular product, a few rows at a time) and encoders (the full product)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alti import Explainer
from alti.explainer import _Rolling
from tests.conftest import tiny_model, tiny_pre_ln

TRACE = ["alti", "alti_l2", "rollout", "norm_rollout", "attention", "norm"]
PROMPT = "the film was good and the cast"
ANSWER = " was great indeed and fun"


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(_Rolling, "BLOCK", 3)  # several blocks of rows even in tiny inputs


def both(ex: Explainer, explain):
    """``explain()`` with the layers kept, then with none kept."""
    ex.layer_budget = None
    kept = explain()
    ex.layer_budget = 0
    try:
        rolled = explain()
    finally:
        ex.layer_budget = None
    return kept, rolled


def assert_same_scores(kept, rolled, methods):
    for method in methods:
        np.testing.assert_allclose(rolled.scores[method], kept.scores[method], atol=1e-10, err_msg=method)
    trace = [m for m in methods if m in TRACE]
    assert sorted(kept.layers) == sorted(trace) and rolled.layers == {}
    for method in trace:
        assert "not kept" in rolled.settings[method]["layers"] and "layers" not in kept.settings[method]


def assert_same_terms(rolled, kept):
    """ALTI-Logit's non-token terms (numbers, per-block lists, words) agree."""
    assert rolled.keys() == kept.keys()
    for key, value in kept.items():
        if isinstance(value, str):
            assert rolled[key] == value
        else:
            np.testing.assert_allclose(rolled[key], value, atol=1e-10, err_msg=key)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "qwen2"])
def test_a_whole_answer_without_its_layers(kind):
    ex = Explainer(*tiny_pre_ln(kind, "causal_lm", layers=4))
    methods = [*TRACE, "alti_logit", "logit"]
    kept, rolled = both(ex, lambda: ex.explain(PROMPT, methods=methods, answer=ANSWER))
    assert_same_scores(kept, rolled, methods)
    for method in methods:
        np.testing.assert_allclose(rolled.steps[method], kept.steps[method], atol=1e-10, err_msg=method)
    assert_same_terms(rolled.logit_terms, kept.logit_terms)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_next_tokens_of_a_padded_batch_without_their_layers(kind):
    ex = Explainer(*tiny_pre_ln(kind, "causal_lm", layers=3))
    methods = ["alti", "rollout", "attention", "alti_logit", "logit"]
    texts = [PROMPT, "a warm and funny film about a dog and its boy", "fine"]
    kept, rolled = both(ex, lambda: ex.explain_batch(texts, methods, batch_size=3, foil=" film"))
    for one, other in zip(kept, rolled):
        assert_same_scores(one, other, methods)
        assert_same_terms(other.logit_terms, one.logit_terms)


@pytest.mark.parametrize(
    "build",
    [
        lambda: tiny_model("bert", dtype=torch.float64),  # post-LN, reads the first row
        lambda: tiny_pre_ln("modernbert", "classifier", layers=3, pooling="mean"),  # the mean of the rows
        lambda: tiny_pre_ln("llama", "classifier", layers=3),  # a decoder reading the last row
    ],
    ids=["bert", "modernbert-mean", "llama-classifier"],
)
def test_classifiers_without_their_layers(build):
    ex = Explainer(*build())
    methods = TRACE + (["alti_logit"] if "alti_logit" in ex.applicable_methods() else [])
    kept, rolled = both(ex, lambda: ex.explain("a warm and funny film about a dog and its boy", methods))
    assert_same_scores(kept, rolled, methods)


def test_the_budget_counts_every_trace_method():
    ex = Explainer(*tiny_pre_ln("llama", "causal_lm", layers=3))
    size = 3 * 10 * 10 * 8  # three float64 layers of 10 x 10
    ex.layer_budget = 2 * size
    assert ex.keeps_layers(10, 2) and not ex.keeps_layers(10, 3) and not ex.keeps_layers(11, 2)
    text, methods = "a warm and funny film about a dog", ["alti", "rollout", "gxi_dot"]
    n = len(ex.encode(text))
    ex.layer_budget = 2 * 3 * n * n * 8  # alti's and rollout's layers
    assert sorted(ex.explain(text, methods).layers) == ["alti", "rollout"]
    ex.layer_budget -= 1
    assert ex.explain(text, methods).layers == {}
    ex.layer_budget = None
    assert ex.keeps_layers(10**6, 10)
    ex.layer_budget = 0  # layer_matrices is asked for the layers: it keeps them
    assert ex.layer_matrices(ex.encode("a warm film"), ["alti"])["alti"].shape == (3, 4, 4)
