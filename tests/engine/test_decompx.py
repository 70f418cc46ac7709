"""DecompX (GUIDE §1.7): completeness, every stage against the model's own vectors, the
linear network run token by token, padding, float32, chunking, refusals and the demo model."""

from __future__ import annotations

import copy
import dataclasses
import threading

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM

from alti import Explainer
from alti.adapters import get_adapter
from alti.errors import UnsupportedModelError
from alti.methods.decompx import decompose
from tests.conftest import MODEL_TYPES, tiny_config, tiny_model, tiny_pre_ln, tiny_tokenizer

TEXT = "a warm , funny and beautifully acted film"
TEXTS = [
    "a dull , lifeless film",
    "a warm , funny and beautifully acted film that i would see again",
    "bad",
    "the plot is thin but the acting is great",
]


def perturb(model: torch.nn.Module, zero_biases: bool = False, seed: int = 5) -> torch.nn.Module:
    """Weights large enough for peaked attention and logits of order one; every bias
    (linear and LayerNorm) random, or zero.  tiny_model has moved the LayerNorm scales off 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and "embeddings" not in name:
                noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
                parameter.copy_(noise * 1.2 / parameter.shape[1] ** 0.5)
            elif parameter.dim() == 1 and name.endswith("bias"):
                noise = (torch.rand(parameter.shape, generator=generator, dtype=torch.float64) - 0.5) * 0.6
                parameter.copy_(noise * (0 if zero_biases else 1))
    return model


@pytest.fixture(scope="module")
def explainers():
    cache = {}

    def get(model_type: str, zero_biases: bool = False, num_labels: int = 3) -> Explainer:
        key = (model_type, zero_biases, num_labels)
        if key not in cache:
            model, tokenizer = tiny_model(model_type, torch.float64, num_labels=num_labels)
            cache[key] = Explainer(perturb(model, zero_biases), tokenizer)
        return cache[key]

    return get


def _ids(ex: Explainer, text: str = TEXT) -> torch.Tensor:
    return torch.tensor([ex.encode(text)])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_scores_sum_to_the_logit(model_type, explainers):
    """sum_k score_k = logit[class]; with a foil, logit[class] - logit[foil] (float64, 1e-10)."""
    ex = explainers(model_type)
    e = ex.explain(TEXT, methods=["decompx"])
    logits = ex._forward([e.input_ids], [[0]])[0, 0].double().numpy()
    target = e.prediction.index
    scores = e.scores["decompx"]
    assert abs(logits[target]) > 0.05  # a logit worth splitting
    assert abs(scores.sum() - logits[target]) < 1e-10
    assert e.settings["decompx"]["quantity"] == "logit"
    foil = (target + 1) % 3
    contrast = ex.explain(TEXT, methods=["decompx"], foil=foil).scores["decompx"]
    assert abs(contrast.sum() - (logits[target] - logits[foil])) < 1e-10
    # the difference of the two classes' parts, token by token
    own = decompose(ex, _ids(ex)).logit_parts.numpy()
    np.testing.assert_allclose(contrast, own[:, target] - own[:, foil], atol=1e-12, rtol=0)
    np.testing.assert_allclose(own.sum(0), logits, atol=1e-10, rtol=0)


def _model_vectors(ex: Explainer, ids: torch.Tensor) -> dict:
    """The model's own vectors at every stage, read with hooks (independent of DecompX's)."""
    adapter = ex.adapter
    seen: dict[str, list] = {}
    roles = {
        "attention": ([m.output for m in adapter.layers], "out"),
        "attention_norm_input": ([m.attention_norm for m in adapter.layers], "in"),
        "attention_norm": ([m.attention_norm for m in adapter.layers], "out"),
        "ffn_pre": ([m.ffn_in for m in adapter.layers], "out"),
        "ffn_act": ([m.ffn_out for m in adapter.layers], "in"),
        "ffn": ([m.ffn_out for m in adapter.layers], "out"),
        "output_norm_input": ([m.output_norm for m in adapter.layers], "in"),
        "output_norm": ([m.output_norm for m in adapter.layers], "out"),
        "x": ([adapter.layers[0].value], "in"),
        "attentions": ([m.attention for m in adapter.layers], "probs"),
    }
    for j, linear in enumerate(adapter.classifier_layers):
        roles[f"head_{j}"] = ([linear], "out")
        if j:
            roles[f"head_{j - 1}_activation"] = ([linear], "in")
    handles = []

    def hook_for(name, side):
        def hook(module, args, output):
            value = {"in": lambda: args[0], "out": lambda: output, "probs": lambda: output[1]}[side]()
            seen.setdefault(name, []).append(value.detach()[0])

        return hook

    try:
        for name, (modules, side) in roles.items():
            for module in {id(m): m for m in modules}.values():
                handles.append(module.register_forward_hook(hook_for(name, side)))
        with torch.inference_mode():
            kwargs = {"output_attentions": True} if adapter.output_attentions else {}
            seen["logits"] = [ex.model(input_ids=ids, **kwargs).logits[0]]
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("full_last_layer", [False, True])
def test_every_stage_sums_to_the_model_vectors(model_type, full_last_layer, explainers):
    """Each stage's parts add up to the model's own vector at that stage (1e-10): the attention
    block's output, both LayerNorms' inputs and outputs, the FFN's output, every head map and
    activation, the logits.  By default the last layer carries only the [CLS] row."""
    ex = explainers(model_type)
    ids = _ids(ex)
    n = ids.shape[1]
    model = _model_vectors(ex, ids)
    got = []

    def on_stage(layer, stage, parts):
        got.append((layer, stage, parts.clone()))

    result = decompose(ex, ids, full_last_layer=full_last_layer, on_stage=on_stage)
    layers = ex.adapter.num_layers
    per_layer = ["attention", "attention_norm_input", "attention_norm", "ffn", "output_norm_input", "output_norm"]
    heads = len(ex.adapter.classifier_layers)
    head_stages = [f"head_{j}{suffix}" for j in range(heads) for suffix in ("", "_activation")][:-1]
    assert [stage for _, stage, _ in got] == per_layer * layers + head_stages
    for layer, stage, parts in got:
        own = model["logits" if stage == f"head_{heads - 1}" else stage][0 if layer is None else layer]
        rows = 1 if layer is None else (1 if layer == layers - 1 and not full_last_layer else n)
        assert parts.shape[:2] == (rows, n)
        expected = own[None] if layer is None else own[:rows]
        err = (parts.sum(1) - expected).abs().max().item()
        assert err < 1e-10, (layer, stage, err)
    norms = result.norms
    assert norms.shape == (layers, n, n) and bool((norms >= 0).all())
    if not full_last_layer:
        assert bool((norms[-1, 1:] == 0).all()) and bool((norms[-1, 0] > 0).any())


def _frozen_network(ex: Explainer, ids: torch.Tensor, keep: torch.Tensor):
    """The network with its nonlinear per-token scalars frozen at the real forward pass's
    values, run on the input in which only the rows ``keep`` (bool, n) of the embedding
    output are kept: per layer its output (n, d); and the logits."""
    model = _model_vectors(ex, ids)
    adapter = ex.adapter
    heads = adapter.num_heads
    hidden = model["x"][0] * keep[:, None]
    outputs = []
    for index, modules in enumerate(adapter.layers):
        attentions = model["attentions"][index]  # (H, n, n), frozen
        values = modules.value(hidden)  # the model's own W_V (bias zero)
        n, width = values.shape
        mixed = torch.bmm(attentions, values.view(n, heads, -1).transpose(0, 1)).transpose(0, 1).reshape(n, width)
        summed = modules.output(mixed) + hidden
        real = model["attention_norm_input"][index]
        sigma = (real.var(-1, unbiased=False) + modules.attention_norm.eps).sqrt()
        normed = modules.attention_norm.weight * (summed - summed.mean(-1, keepdim=True)) / sigma[:, None]
        zeta = model["ffn_pre"][index]
        theta = torch.where(zeta != 0, model["ffn_act"][index] / zeta, torch.zeros_like(zeta))
        summed = normed + modules.ffn_out(theta * modules.ffn_in(normed))
        real = model["output_norm_input"][index]
        sigma = (real.var(-1, unbiased=False) + modules.output_norm.eps).sqrt()
        hidden = modules.output_norm.weight * (summed - summed.mean(-1, keepdim=True)) / sigma[:, None]
        outputs.append(hidden)
    vector = hidden[0]
    linears = adapter.classifier_layers
    for j, linear in enumerate(linears):
        vector = linear(vector)
        if j + 1 < len(linears):
            zeta = model[f"head_{j}"][0]
            vector = vector * torch.where(zeta != 0, model[f"head_{j}_activation"][0] / zeta, torch.zeros_like(zeta))
    return outputs, vector, model


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_part_is_the_linear_network_run_on_its_token_alone(model_type, explainers):
    """With every bias zeroed (linear maps and LayerNorm betas), DecompX has nothing to split,
    and every stage is linear in the parts once the per-token scalars that make the network
    nonlinear are frozen at the real forward pass's values: the attention probabilities A^h,
    each LayerNorm's scale sigma_i (the std of its real input) and the activations' zero-origin
    slopes act(zeta)/zeta (FFN and head).  Token k's part of every vector must then be what
    that frozen network gives when every embedding but token k's is zero.

    The frozen network is written here independently, per token, with the model's own modules
    (value, output, FFN and head linears called as modules, the LayerNorms' gamma), and it is
    first checked to reproduce the real forward pass with all tokens present (so it is the
    model itself, not a second copy of DecompX).  Then, for each token k, its per-layer
    vectors' norms must equal DecompX's ||X^l[i, k]||_2 for every target i, and its logits
    DecompX's parts of the logits (1e-10)."""
    ex = explainers(model_type, zero_biases=True)
    ids = _ids(ex, "a warm , funny film")
    n = ids.shape[1]
    with torch.inference_mode():
        outputs, logits, model = _frozen_network(ex, ids, torch.ones(n, dtype=torch.bool))
        for layer, output in enumerate(outputs):
            assert (output - model["output_norm"][layer]).abs().max().item() < 1e-10
        assert (logits - model["logits"][0]).abs().max().item() < 1e-10
        result = decompose(ex, ids, full_last_layer=True)
        default = decompose(ex, ids)
        assert abs(model["logits"][0]).max() > 0.05
        for k in range(n):
            keep = torch.zeros(n, dtype=torch.bool)
            keep[k] = True
            outputs, logits, _ = _frozen_network(ex, ids, keep)
            for layer, output in enumerate(outputs):
                norms = torch.linalg.vector_norm(output, dim=-1)
                assert (norms - result.norms[layer, :, k]).abs().max().item() < 1e-10, (k, layer)
            assert (logits - result.logit_parts[k]).abs().max().item() < 1e-10, k
            assert (logits - default.logit_parts[k]).abs().max().item() < 1e-10, k


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "deberta-v2"])
def test_padding_changes_no_score(model_type, explainers):
    ex = explainers(model_type)
    batch = ex.explain_batch(TEXTS, methods=["decompx", "alti"], batch_size=4)
    for text, got in zip(TEXTS, batch):
        one = ex.explain(text, methods=["decompx"])
        assert got.tokens == one.tokens
        np.testing.assert_allclose(got.scores["decompx"], one.scores["decompx"], atol=1e-12, rtol=0)
        np.testing.assert_allclose(got.layers["decompx"], one.layers["decompx"], atol=1e-12, rtol=0)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "electra", "distilbert", "albert", "deberta-v2"])
def test_float32_matches_float64(model_type, explainers):
    ex64 = explainers(model_type)
    ex32 = Explainer(copy.deepcopy(ex64.model).float(), ex64.tokenizer)
    for text in (TEXT, TEXTS[1]):
        e64 = ex64.explain(text, methods=["decompx"])
        e32 = ex32.explain(text, methods=["decompx"], target=e64.prediction.index)
        s64 = e64.scores["decompx"]
        assert np.abs(e32.scores["decompx"] - s64).max() <= 1e-4 * np.abs(s64).max()
        l64 = e64.layers["decompx"]
        assert np.abs(e32.layers["decompx"] - l64).max() <= 1e-4 * np.abs(l64).max()


def test_chunks_change_nothing(explainers):
    """Chunks of one part (attention) and one target (FFN) give the unchunked result."""
    ex = explainers("bert")
    ids = _ids(ex, TEXTS[1])
    whole = decompose(ex, ids, full_last_layer=True)
    tiny = decompose(ex, ids, full_last_layer=True, chunk_mb=1e-6)
    assert torch.allclose(whole.logit_parts, tiny.logit_parts, atol=1e-12, rtol=0)
    assert torch.allclose(whole.norms, tiny.norms, atol=1e-12, rtol=0)


def test_method_output_and_settings(explainers):
    ex = explainers("bert")
    e = ex.explain(TEXT, methods=["decompx"], options={"decompx": {"full_last_layer": True}})
    settings = e.settings["decompx"]
    assert settings["kind"] == "model" and settings["full_last_layer"] is True
    assert settings["completeness_error"] < 1e-10 and "not row-normalised" in settings["layers"]
    assert e.layers["decompx"].shape == (2, len(e.tokens), len(e.tokens))
    assert (e.layers["decompx"][-1] > 0).all()
    data = e.to_dict(layers=True)
    assert len(data["layers"]["decompx"]) == 2
    from alti.methods import get_method

    info = get_method("decompx").info
    assert info.signed and info.explains == "logit" and info.matrix
    assert "not row-normalised" in info.description and "unsigned" in info.description


def test_other_threads_are_not_recorded(explainers):
    """A forward pass of the same model in another thread during DecompX changes nothing."""
    ex = explainers("bert")
    ids = _ids(ex)
    expected = decompose(ex, ids).logit_parts
    other = torch.tensor([ex.encode(TEXTS[1])])
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            with torch.inference_mode():
                ex.model(input_ids=other)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        for _ in range(3):
            assert torch.allclose(decompose(ex, ids).logit_parts, expected, atol=1e-12, rtol=0)
    finally:
        stop.set()
        worker.join()


def _refusal(ex: Explainer) -> str:
    with pytest.raises(UnsupportedModelError) as info:
        ex.explain_ids(ex.encode("a [MASK] film"), methods=["decompx"])
    message = str(info.value)
    assert "\n" not in message and message.startswith("decompx does not apply")
    assert "decompx" not in ex.applicable_methods()
    return message


def test_refusals_are_one_line(explainers):
    model, tokenizer = tiny_pre_ln("llama", task="classifier")
    assert "pre-LN" in _refusal(Explainer(model, tokenizer))
    torch.manual_seed(0)
    masked = AutoModelForMaskedLM.from_config(tiny_config("bert"), attn_implementation="eager").double()
    assert "sequence classifier" in _refusal(Explainer(masked, tiny_tokenizer()))
    ex = explainers("bert")
    adapter = get_adapter(ex.model)
    no_ffn = dataclasses.replace(adapter, layers=tuple(dataclasses.replace(m, ffn_in=None) for m in adapter.layers))
    assert "FFN" in _refusal(Explainer(ex.model, ex.tokenizer, adapter=no_ffn))
    no_head = dataclasses.replace(adapter, classifier_layers=())
    assert "head" in _refusal(Explainer(ex.model, ex.tokenizer, adapter=no_head))
    assert "decompx" in ex.applicable_methods()


def test_a_wrong_adapter_is_refused_not_explained(explainers):
    """An adapter whose FFN modules are not the model's makes the parts miss the logit."""
    ex = explainers("bert")
    adapter = get_adapter(ex.model)
    first = adapter.layers[0]
    swapped = (dataclasses.replace(first, ffn_in=adapter.layers[1].ffn_in, ffn_out=adapter.layers[1].ffn_out),)
    wrong = dataclasses.replace(adapter, layers=swapped + adapter.layers[1:])
    with pytest.raises(UnsupportedModelError, match="do not"):
        Explainer(ex.model, ex.tokenizer, adapter=wrong).explain(TEXT, methods=["decompx"])


def test_demo_model():
    ex = Explainer.from_pretrained("demo", device="cpu")
    e = ex.explain("Great cast, awful script.", methods=["decompx"])
    settings = e.settings["decompx"]
    scores = e.scores["decompx"]
    assert abs(scores.sum() - settings["logit"]) < 1e-4 * max(1.0, np.abs(scores).sum())
    assert e.layers["decompx"].shape == (ex.adapter.num_layers, len(e.tokens), len(e.tokens))


def test_a_post_ln_spec_names_the_ffn_and_the_head(explainers):
    """The optional PostLNSpec paths (as in an --adapter TOML file) give the built-in result."""
    from alti.adapters.spec import spec_from_dict

    ex = explainers("bert")
    _, spec = spec_from_dict(
        {
            "model_type": "bert",
            "block": "post_ln",
            "layers": "encoder.layer",
            "attention": "attention.self",
            "value": "attention.self.value",
            "output": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "output_norm": "output.LayerNorm",
            "embeddings": "embeddings",
            "ffn_in": "intermediate.dense",
            "ffn_out": "output.dense",
            "head_layers": "bert.pooler.dense, classifier",
        },
        "test.toml",
    )
    adapter = dataclasses.replace(spec.resolve(ex.model, ex.model.config), head=ex.adapter.head)
    got = Explainer(ex.model, ex.tokenizer, adapter=adapter).explain(TEXT, methods=["decompx"])
    expected = ex.explain(TEXT, methods=["decompx"])
    np.testing.assert_array_equal(got.scores["decompx"], expected.scores["decompx"])
    np.testing.assert_array_equal(got.layers["decompx"], expected.layers["decompx"])
