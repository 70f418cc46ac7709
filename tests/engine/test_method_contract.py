"""Every registered method, run on three kinds of model, keeps its declared contract.

A new method registered in :mod:`alti.methods` is covered here without editing a list:
each applicable method is run on a post-LN encoder classifier (BERT), a pre-LN decoder
classifier (Llama, grouped-query attention) and a causal LM (GPT-2), in float64, and
checked against what its :class:`alti.catalog.MethodInfo` declares: one finite score per
token, no negative score where it is unsigned, per-layer matrices (L, n, n) where it has
them, rows and scores that sum to one where it is ``normalised``, lower-triangular matrices
on a causal model.  A method that refuses a model says why in words.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alti import Explainer
from alti.methods import METHODS
from tests.conftest import tiny_model, tiny_pre_ln

TEXT = "a warm , funny film"
MODELS = ("bert classifier", "llama classifier", "gpt2 causal lm")


def _explainer(which: str) -> Explainer:
    if which == "bert classifier":
        model, tokenizer = tiny_model("bert", torch.float64)
        return Explainer(model, tokenizer)
    kind, task = ("llama", "classifier") if which == "llama classifier" else ("gpt2", "causal_lm")
    return Explainer(*tiny_pre_ln(kind, task))


@pytest.fixture(scope="module")
def explainers():
    return {which: _explainer(which) for which in MODELS}


@pytest.mark.parametrize("which", MODELS)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_keeps_its_contract(explainers, which, name):
    explainer = explainers[which]
    method = METHODS[name]
    reason = method.refusal(explainer)
    if reason is not None:
        assert isinstance(reason, str) and len(reason.split()) >= 3, reason  # a reason in words
        assert name not in explainer.applicable_methods()
        return
    info = method.info
    options = {o.name: 4 for o in info.options if o.name == "steps"}  # integrated gradients: few steps
    e = explainer.explain(TEXT, methods=[name], options={name: options} if options else None)
    n = len(e.tokens)
    scores = e.scores[name]
    assert scores.shape == (n,) and np.isfinite(scores).all()
    if not info.signed:
        assert (scores >= -1e-12).all()
    assert e.settings[name]["kind"] == method.source.value
    if info.matrix:
        layers = e.layers[name]
        assert layers.shape == (explainer.adapter.num_layers, n, n) and np.isfinite(layers).all()
        if not info.signed:
            assert (layers >= -1e-12).all()
        if info.normalised:  # to float32 rounding: some models' eager attention takes its softmax in float32
            np.testing.assert_allclose(layers.sum(-1), 1.0, atol=1e-6)
            assert scores.sum() == pytest.approx(1.0, abs=1e-6)
        if explainer.adapter.causal and not info.cumulative:
            assert np.abs(np.triu(layers, k=1)).max() < 1e-12
    else:
        assert name not in e.layers


def test_the_contract_reaches_every_registered_method(explainers):
    """Each method applies to at least one of the three models, so each is checked above."""
    applicable = set().union(*(set(e.applicable_methods()) for e in explainers.values()))
    assert applicable == set(METHODS)
