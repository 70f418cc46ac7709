"""Value Zeroing (GUIDE §1.7): against a naive loop that zeroes one value row at a time in a
full forward pass, on every post-LN and pre-LN family and the demo model; rows, padding,
float32, hooks and threads."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from alti import Explainer
from alti.adapters.base import split_values
from alti.errors import InputError, UnsupportedModelError
from alti.methods import get_method
from alti.methods import value_zeroing as vz
from tests.conftest import DECODER_TYPES, MODEL_TYPES, PRE_LN_TYPES, tiny_model, tiny_pre_ln

TEXT = "a warm , funny and beautifully acted film"
SHORT = "a dull film"


def _task(kind):
    return "classifier" if kind == "modernbert" else "causal_lm"


@pytest.fixture(scope="module")
def explainers():
    cache = {}

    def get(kind, dtype=torch.float64, **extra):
        key = (kind, dtype, tuple(sorted(extra.items())))
        if key not in cache:
            if kind == "demo":
                ex = Explainer.from_pretrained("demo", device="cpu")
                if dtype == torch.float64:
                    ex = Explainer(ex.model.double(), ex.tokenizer, name="demo")
            elif kind in MODEL_TYPES:
                ex = Explainer(*tiny_model(kind, dtype))
            else:
                ex = Explainer(*tiny_pre_ln(kind, _task(kind), dtype=dtype, **extra))
            cache[key] = ex
        return cache[key]

    return get


def _hidden(output):
    return output if isinstance(output, torch.Tensor) else output[0]


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ------------------------------------------------------------------ the naive reference
def _one_minus_cos(a, b):
    """1 - cos per row in float64, via ||a - b||^2 (no cancellation for nearby vectors)."""
    a, b = a.double(), b.double()
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    return (((a - b).square().sum(-1) - (na - nb).square()) / (2 * na * nb)).clamp(0, 2)


def _forward(ex, ids, layer=None, source=None):
    """Every layer's output in one full forward pass; with ``layer``/``source``, value row
    ``source`` is zeroed (all heads) in that layer only, so its input is the real one."""
    adapter, outputs, handles = ex.adapter, [], []
    seen = {"value": 0}

    def zero(module, args, output):
        call = seen["value"]
        seen["value"] += 1
        if call != layer:
            return None
        output = output.clone()
        split_values(output, adapter.value_layout, adapter.kv_heads, adapter.head_dim)[0, source] = 0
        return output

    blocks = {id(layer.block): layer.block for layer in adapter.layers}
    values = {id(layer.value): layer.value for layer in adapter.layers}
    try:
        for block in blocks.values():
            handles.append(block.register_forward_hook(lambda m, a, o: outputs.append(_hidden(o)[0].clone())))
        if layer is not None:
            for value in values.values():
                handles.append(value.register_forward_hook(zero))
        with torch.no_grad():
            ex.model(input_ids=ids)
    finally:
        for handle in handles:
            handle.remove()
    assert len(outputs) == adapter.num_layers
    return outputs


def naive_value_zeroing(ex, ids):
    """(L, n, n) maps and the rolled-out matrix, one full forward pass per (layer, source)."""
    real = _forward(ex, ids)
    n = ids.shape[1]
    maps = []
    for layer in range(ex.adapter.num_layers):
        d = torch.zeros(n, n, dtype=torch.float64)
        for j in range(n):
            d[:, j] = _one_minus_cos(_forward(ex, ids, layer, j)[layer], real[layer])
        maps.append(d / d.sum(-1, keepdim=True))
    rolled = maps[0]
    for m in maps[1:]:
        rolled = m @ rolled
    return torch.stack(maps).numpy(), rolled.numpy()


ALL_KINDS = MODEL_TYPES + PRE_LN_TYPES + ["demo"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_equals_a_naive_loop_over_sources(kind, explainers):
    """Batched copies (chunks of 3: the last chunk is short) equal one source at a time;
    rows sum to 1; the score is the rolled-out row the head reads."""
    ex = explainers(kind)
    text = SHORT + " , and long" if kind == "demo" else TEXT  # the demo model is 6 layers of 384
    e = ex.explain(text, methods=["value_zeroing"], options={"value_zeroing": {"batch_size": 3}})
    layers, scores = e.layers["value_zeroing"], e.scores["value_zeroing"]
    n = len(e.tokens)
    assert layers.shape == (ex.adapter.num_layers, n, n) and layers.dtype == np.float64
    assert (layers >= 0).all()
    np.testing.assert_allclose(layers.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(scores.sum(), 1.0, atol=1e-12)
    expected, rolled = naive_value_zeroing(ex, torch.tensor([e.input_ids]))
    np.testing.assert_allclose(layers, expected, atol=1e-10, rtol=0)
    row = rolled.mean(0) if e.target_position is None else rolled[e.target_position]
    np.testing.assert_allclose(scores, row, atol=1e-10, rtol=0)
    assert e.settings["value_zeroing"]["copies_per_pass"] == 3
    assert e.target_position == (n - 1 if kind in DECODER_TYPES else 0)


def test_mean_pooling_reads_the_mean_of_the_rows():
    ex = Explainer(*tiny_pre_ln("modernbert", "classifier", pooling="mean"))
    e = ex.explain(TEXT, methods=["value_zeroing"])
    assert e.target_position is None
    _, rolled = naive_value_zeroing(ex, torch.tensor([e.input_ids]))
    np.testing.assert_allclose(e.scores["value_zeroing"], rolled.mean(0), atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", DECODER_TYPES)
def test_causal_maps_are_exactly_zero_above_the_diagonal(kind, explainers):
    e = explainers(kind).explain(TEXT, methods=["value_zeroing"])
    assert (np.triu(e.layers["value_zeroing"], k=1) == 0).all()


def test_a_sliding_window_gives_exact_zeros_outside_it(explainers):
    ex = explainers("mistral")
    layers = ex.explain(TEXT, methods=["value_zeroing"]).layers["value_zeroing"]
    n = layers.shape[-1]
    outside = np.tril(np.ones((n, n), dtype=bool), k=-ex.model.config.sliding_window)
    assert outside.any() and (layers[:, outside] == 0).all()


@pytest.mark.parametrize("kind", ["bert", "deberta-v2", "llama"])
def test_padding_changes_no_scores(kind, explainers):
    ex = explainers(kind)
    texts = [SHORT, TEXT, "great cast , awful script"]
    batch = ex.explain_batch(texts, methods=["value_zeroing"], batch_size=3)
    for text, explained in zip(texts, batch):
        alone = ex.explain(text, methods=["value_zeroing"])
        np.testing.assert_allclose(explained.scores["value_zeroing"], alone.scores["value_zeroing"], atol=1e-12)
        np.testing.assert_allclose(explained.layers["value_zeroing"], alone.layers["value_zeroing"], atol=1e-12)


def _float32_error(explainers, kind):
    e64 = explainers(kind).explain(TEXT, methods=["value_zeroing"])
    e32 = explainers(kind, torch.float32).explain(TEXT, methods=["value_zeroing"])
    s64, s32 = e64.scores["value_zeroing"], e32.scores["value_zeroing"]
    return np.abs(s32 - s64).max() / np.abs(s64).max()


@pytest.mark.parametrize("kind", MODEL_TYPES + ["gpt2", "llama", "gpt_neox", "modernbert", "demo"])
def test_float32_within_1e_4_of_float64(kind, explainers):
    """The tiny post-LN models (initializer range 0.02) have distances of about 1e-6: the
    small-distance case (see the next test)."""
    assert _float32_error(explainers, kind) < 1e-4


def test_naive_float32_cosine_would_fail_on_small_distances(explainers, monkeypatch):
    """The same check with 1 - cos computed in the model's dtype misses by far more than 1e-4."""
    raw = vz.layer_distances
    largest = []

    def spy(*args):
        distances = raw(*args)
        largest.append(float(distances.max()))
        return distances

    monkeypatch.setattr(vz, "layer_distances", spy)
    explainers("bert").explain(TEXT, methods=["value_zeroing"])
    assert max(largest) < 1e-4  # this model's distances are small

    def naive(zeroed, real):
        return (1 - torch.nn.functional.cosine_similarity(zeroed, real[None], dim=-1)).clamp(0, 2)

    monkeypatch.setattr(vz, "cosine_distances", naive)
    assert _float32_error(explainers, "bert") > 1e-3


@pytest.mark.parametrize("kind", MODEL_TYPES + PRE_LN_TYPES)
def test_the_rerun_keeps_the_attention_probabilities(kind, explainers):
    """Zeroing values changes no attention probability: every copy's equal the real pass's."""
    ex = explainers(kind)
    adapter = ex.adapter
    seen = []

    def record(module, args, output):
        seen.append(output[1].clone())

    attentions = {id(layer.attention): layer.attention for layer in adapter.layers}
    handles = [module.register_forward_hook(record) for module in attentions.values()]
    try:
        vz.value_zeroing_layers(ex, torch.tensor([ex.encode(TEXT)]), batch_size=4)
    finally:
        for handle in handles:
            handle.remove()
    L = adapter.num_layers
    real, reruns = seen[:L], seen[L:]
    n = real[0].shape[-1]
    chunks = -(-n // 4)
    assert len(reruns) == L * chunks
    for index, probabilities in enumerate(reruns):
        expected = real[index // chunks]
        assert probabilities.shape[0] == min(4, n - 4 * (index % chunks))
        torch.testing.assert_close(probabilities, expected.expand_as(probabilities), atol=1e-14, rtol=0)


@pytest.mark.parametrize("phase", ["real pass", "rerun"])
def test_hooks_are_removed_after_an_error(phase, explainers):
    ex = explainers("bert")

    def fail(module, args, output):
        if phase == "real pass" or output.shape[0] > 1:
            raise RuntimeError("boom")

    handle = ex.adapter.layers[1].value.register_forward_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            ex.explain(TEXT, methods=["value_zeroing"])
    finally:
        handle.remove()
    assert _no_hooks(ex.model)
    ex.explain(TEXT, methods=["value_zeroing"])
    assert _no_hooks(ex.model)


def test_forward_passes_of_other_threads_are_untouched(explainers):
    """While the copies run, a forward pass in another thread sees real values and is not recorded."""
    ex = explainers("bert")
    ids = torch.tensor([ex.encode(TEXT)])
    with torch.no_grad():
        expected = ex.model(input_ids=ids).logits
    results = []

    def other_thread():
        with torch.no_grad():
            results.append(ex.model(input_ids=ids).logits)

    def during_rerun(module, args, output):
        if output.shape[0] > 1 and not results:
            worker = threading.Thread(target=other_thread)
            worker.start()
            worker.join()

    handle = ex.adapter.layers[0].block.register_forward_hook(during_rerun)
    try:
        layers, _ = vz.value_zeroing_layers(ex, ids, batch_size=4)
    finally:
        handle.remove()
    assert len(results) == 1
    torch.testing.assert_close(results[0], expected, atol=0, rtol=0)
    reference = ex.explain(TEXT, methods=["value_zeroing"]).layers["value_zeroing"]
    np.testing.assert_allclose(layers.numpy(), reference, atol=1e-12)


def test_registration_options_and_refusal(explainers):
    info = get_method("value_zeroing").info
    assert (info.family, info.signed, info.explains, info.matrix) == ("value_zeroing", False, "representation", True)
    ex = explainers("bert")
    e = ex.explain(TEXT, methods=["value_zeroing"], options={"value_zeroing": {"max_bytes": 1}})
    assert e.settings["value_zeroing"]["copies_per_pass"] == 1  # at least one copy per pass
    with pytest.raises(InputError, match="batch_size must be at least 1, not 0"):
        ex.explain(TEXT, methods=["value_zeroing"], options={"value_zeroing": {"batch_size": 0}})
    with pytest.raises(InputError, match="value_zeroing has no option steps; it takes batch_size, max_bytes"):
        ex.explain(TEXT, methods=["value_zeroing"], options={"value_zeroing": {"steps": 3}})
    blockless = dataclasses.replace(
        ex.adapter, layers=tuple(dataclasses.replace(layer, block=None) for layer in ex.adapter.layers)
    )
    other = Explainer(ex.model, ex.tokenizer, adapter=blockless)
    assert "value_zeroing" not in other.applicable_methods()
    with pytest.raises(UnsupportedModelError, match="value_zeroing does not apply"):
        other.explain(TEXT, methods=["value_zeroing"])
