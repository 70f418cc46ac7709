"""Pre-LN blocks (GUIDE §1.5, §1.6): exact decomposition, naive agreement, ALTI-Logit completeness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from naive_pre_ln import naive_block, naive_logit, trace

from alti import Explainer
from alti.errors import InputError, UnsupportedModelError
from alti.targets import ClassTarget
from tests.conftest import DECODER_TYPES, PRE_LN_TYPES, tiny_pre_ln

TEXT = "a warm , funny and beautifully acted film"
TRACE = ["alti", "alti_l2", "norm_rollout", "attention", "rollout", "norm"]


def task_of(kind):
    return "classifier" if kind == "modernbert" else "causal_lm"


@pytest.fixture(scope="module")
def explained():
    cache = {}

    def get(kind):
        if kind not in cache:
            model, tokenizer = tiny_pre_ln(kind, task_of(kind))
            ex = Explainer(model, tokenizer)
            methods = TRACE + (["alti_logit", "logit"] if kind != "modernbert" else [])
            cache[kind] = ex, ex.explain(TEXT, methods=methods)
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", PRE_LN_TYPES)
def test_identity_and_naive_agreement(kind, explained):
    """m_i = sum_j T_i(x_j) + b_O to 1e-10, and every matrix equals the loop version."""
    ex, e = explained(kind)
    blocks, seen, attentions, _, _ = trace(ex.model, kind, torch.tensor([e.input_ids]))
    config = ex.model.config
    heads, kv_heads = ex.adapter.num_heads, ex.adapter.kv_heads
    assert kv_heads == (getattr(config, "num_key_value_heads", None) or heads)
    for layer, block in enumerate(blocks):
        naive, _, error = naive_block(
            kind, block, seen["x"][layer], seen["normed"][layer], attentions[layer], seen["m"][layer], heads, kv_heads
        )
        assert error < 1e-10
        for name, matrix in naive.items():
            np.testing.assert_allclose(e.layers[name][layer], matrix.numpy(), atol=1e-10, rtol=0, err_msg=name)
        np.testing.assert_allclose(e.layers["attention"][layer], attentions[layer].mean(0).numpy(), atol=1e-12)


@pytest.mark.parametrize("kind", DECODER_TYPES)
def test_causal_matrices_are_exactly_zero_above_the_diagonal(kind, explained):
    _, e = explained(kind)
    for name in TRACE:
        upper = np.triu(e.layers[name], k=1)
        assert (upper == 0).all(), name
        np.testing.assert_allclose(e.layers[name].sum(-1), 1.0, atol=1e-12)
    assert e.target_position == len(e.tokens) - 1
    assert e.special[-1] and e.special[0]  # the BOS and the row read are never deleted


def test_a_sliding_window_gives_exact_zeros_outside_it(explained):
    ex, e = explained("mistral")
    window = ex.model.config.sliding_window
    n = len(e.tokens)
    outside = np.tril(np.ones((n, n), dtype=bool), k=-window)
    assert outside.any() and (e.layers["alti"][:, outside] == 0).all()


def final_norm_of(norm, x, gemma_offset):
    """The final norm in float64 (the Llama family's own RMSNorm rounds through float32)."""
    if isinstance(norm, torch.nn.LayerNorm):
        return torch.nn.functional.layer_norm(x, x.shape, norm.weight, norm.bias, norm.eps)
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    return (norm.weight + gemma_offset) * x / (x.pow(2).mean() + eps).sqrt()


@pytest.mark.parametrize("kind", DECODER_TYPES)
def test_alti_logit_is_complete_and_equals_its_definition(kind, explained):
    ex, e = explained(kind)
    blocks, seen, attentions, logits, final_norm = trace(ex.model, kind, torch.tensor([e.input_ids]))
    position = e.target_position
    target = e.target.index
    terms = e.logit_terms
    rebuilt = (
        e.scores["alti_logit"].sum()
        + sum(terms["attention_bias"])
        + sum(terms["mlp"])
        + terms["final_norm_bias"]
        + terms["head_bias"]
    )
    # the logit from the final residual in float64 (the Llama family's RMSNorm rounds through float32)
    readout = ex.model.get_output_embeddings()
    offset = 1.0 if kind == "gemma" else 0.0
    x = seen["final"][-1][position]
    with torch.no_grad():
        exact = float(
            readout.weight[target] @ final_norm_of(final_norm, x, offset)
            + (0 if readout.bias is None else readout.bias[target])
        )
    assert rebuilt == pytest.approx(exact, abs=1e-10)
    assert terms["logit"] == pytest.approx(float(logits[position, target]), abs=1e-12)
    assert exact == pytest.approx(terms["logit"], abs=1e-5)
    assert e.scores["logit"].sum() == pytest.approx(e.scores["alti_logit"].sum(), abs=1e-10)

    heads, kv_heads = ex.adapter.num_heads, ex.adapter.kv_heads
    f_all = [
        naive_block(kind, block, seen["x"][i], seen["normed"][i], attentions[i], seen["m"][i], heads, kv_heads)[1]
        for i, block in enumerate(blocks)
    ]
    alti_layers = torch.as_tensor(e.layers["alti"])
    alti_logit, logit = naive_logit(
        kind, ex.model, seen, attentions, f_all, alti_layers, readout.weight[target], final_norm, position, offset
    )
    np.testing.assert_allclose(e.scores["alti_logit"], alti_logit.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(e.scores["logit"], logit.detach().numpy(), atol=1e-10)


def test_a_foil_explains_the_logit_difference():
    model, tokenizer = tiny_pre_ln("llama")
    ex = Explainer(model, tokenizer)
    alone = ex.explain(TEXT, ["alti_logit", "gxi_dot", "occlusion"], target="film")
    against = ex.explain(TEXT, ["alti_logit", "gxi_dot", "occlusion"], target="film", foil="acted")
    other = ex.explain(TEXT, ["alti_logit"], target="acted")
    np.testing.assert_allclose(
        against.scores["alti_logit"], alone.scores["alti_logit"] - other.scores["alti_logit"], atol=1e-10
    )
    assert (against.target.foil_label, against.target.foil) == ("acted", tokenizer.convert_tokens_to_ids("acted"))
    assert against.settings["gxi_dot"]["quantity"] == "logit difference"
    assert alone.settings["gxi_dot"]["quantity"] == "probability"
    # occlusion of a logit difference: the drop of logit(film) - logit(acted)
    ids = torch.tensor([against.input_ids])
    with torch.no_grad():
        full = model(input_ids=ids).logits[0, -1]
        blanked = ids.clone()
        blanked[0, 2] = tokenizer.unk_token_id
        hidden = model(input_ids=blanked).logits[0, -1]
    film, acted = against.target.index, against.target.foil
    expected = float((full[film] - full[acted]) - (hidden[film] - hidden[acted]))
    assert against.scores["occlusion"][2] == pytest.approx(expected, abs=1e-10)


def attention_drift(ex: Explainer, texts: list[str]) -> float:
    """The largest difference between the model's own attention probabilities in a padded batch
    and in one-by-one runs (no alti code involved)."""
    id_lists = [ex.encode(text) for text in texts]
    input_ids, mask, positions, starts = ex._pad(id_lists)
    with torch.no_grad():
        batch = ex.model(input_ids=input_ids, attention_mask=mask, output_attentions=True).attentions
        drift = 0.0
        for row, ids in enumerate(id_lists):
            alone = ex.model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
            span = slice(starts[row], starts[row] + len(ids))
            for padded, single in zip(batch, alone):
                drift = max(drift, float((padded[row, :, span, span] - single[0]).abs().max()))
    return drift


@pytest.mark.parametrize(
    "kind, side",
    [(kind, side) for kind in ("gpt2", "llama", "qwen2") for side in ("right", "left")] + [("modernbert", "right")],
)
def test_padding_changes_nothing(kind, side):
    """Padded batches equal one-by-one runs, padded on the right or (as a tokenizer may ask) the left.

    Left padding runs in float32: transformers' eager mask of a float64 model is float64's
    minimum, which its float32 softmax turns into -inf, so fully masked padding rows become NaN.

    ModernBERT's eager attention takes its softmax in float32 even in a float64 model, and a
    padded row's float32 sum rounds differently from the same row alone: the model's own
    attention (and logits) differ by about one float32 ulp, before alti reads them.  The
    tolerance follows that measured drift of the model's own attention; a padding leak in
    alti's path would be orders of magnitude larger.
    """
    task = "classifier" if kind in ("qwen2", "modernbert") else "causal_lm"
    left = side == "left"
    model, tokenizer = tiny_pre_ln(kind, task, dtype=torch.float32 if left else torch.float64)
    ex = Explainer(model, tokenizer)
    ex.left_padding = left
    texts = [TEXT, "bad", "the plot is thin but the acting is great and the music is lovely"]
    tolerance = 2e-5 if left else max(1e-9, 2 * attention_drift(ex, texts))
    methods = ["alti", "rollout", "norm_rollout"] + (
        ["alti_logit", "logit"] if kind in ("gpt2", "llama", "qwen2") else []
    )
    batch = ex.explain_batch(texts, methods, batch_size=3)
    for text, got in zip(texts, batch):
        one = ex.explain(text, methods)
        assert got.target == one.target
        np.testing.assert_allclose(got.prediction.probabilities, one.prediction.probabilities, atol=tolerance)
        for name in methods:
            scale = max(1.0, np.abs(one.scores[name]).max())
            np.testing.assert_allclose(got.scores[name], one.scores[name], atol=tolerance * scale, err_msg=name)


def test_only_decoders_pad_on_the_left():
    model, tokenizer = tiny_pre_ln("llama")
    tokenizer = tokenizer.__class__(
        tokenizer_object=tokenizer.backend_tokenizer,
        padding_side="left",
        bos_token="[CLS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
    )
    assert Explainer(model, tokenizer).left_padding
    encoder, encoder_tokenizer = tiny_pre_ln("modernbert", "classifier")
    encoder_tokenizer.padding_side = "left"
    try:
        assert not Explainer(encoder, encoder_tokenizer).left_padding  # its head reads position 0
    finally:
        encoder_tokenizer.padding_side = "right"


def test_a_decoder_classifier_reads_its_last_token():
    model, tokenizer = tiny_pre_ln("llama", "classifier", num_labels=3)
    ex = Explainer(model, tokenizer)
    e = ex.explain(TEXT, ["alti", "alti_logit"])
    assert e.target_position == len(e.tokens) - 1 and isinstance(e.target, ClassTarget)
    with torch.no_grad():
        probabilities = torch.softmax(model(input_ids=torch.tensor([e.input_ids])).logits[0].double(), -1)
    np.testing.assert_allclose(e.prediction.probabilities, probabilities.numpy(), atol=1e-12)
    assert not e.special[-1]  # a classifier's last word may be deleted: the head reads whatever is last
    terms = e.logit_terms
    rebuilt = e.scores["alti_logit"].sum() + sum(terms["attention_bias"]) + sum(terms["mlp"]) + terms["head_bias"]
    assert rebuilt == pytest.approx(terms["logit"], abs=1e-5)


def test_modernbert_mean_pooling_reads_the_mean_row():
    model, tokenizer = tiny_pre_ln("modernbert", "classifier", pooling="mean")
    ex = Explainer(model, tokenizer)
    e = ex.explain(TEXT, ["alti", "attention"])
    assert e.target_position is None and e.settings["alti"]["rows"].startswith("mean")
    product = e.rolled_out("alti")
    np.testing.assert_allclose(e.scores["alti"], product.mean(0), atol=1e-12)
    np.testing.assert_allclose(e.scores["attention"], e.layers["attention"][-1].mean(0), atol=1e-12)


def test_methods_that_do_not_apply_are_refused_in_one_line():
    ex = Explainer(*tiny_pre_ln("llama"))
    with pytest.raises(UnsupportedModelError, match="globenc does not apply .*pre-LN.*methods that do: alti,") as error:
        ex.explain(TEXT, ["globenc"])
    assert "\n" not in str(error.value) and "alti_logit" in str(error.value)
    bert = Explainer(*tiny_pre_ln("modernbert", "classifier"))
    with pytest.raises(UnsupportedModelError, match="alti_logit does not apply .*not a linear readout"):
        bert.explain(TEXT, ["alti_logit"])


def test_targets_and_foils_of_a_language_model():
    model, tokenizer = tiny_pre_ln("gpt2")
    ex = Explainer(model, tokenizer)
    film = tokenizer.convert_tokens_to_ids("film")
    by_id = ex.explain(TEXT, ["alti"], target=f"id:{film}").target
    assert (by_id.label, by_id.index) == ("film", film)
    assert ex.explain(TEXT, ["alti"], target=film).target.index == film
    several = ex.explain(TEXT, ["alti"], target="beautifully acted")
    assert several.target.label == "beautifully"
    assert len(several.notes) == 1 and "using the first" in several.notes[0]
    predicted = ex.explain(TEXT, ["alti"])
    assert predicted.target.index == predicted.prediction.index
    assert len(predicted.prediction.labels) == 10 and predicted.prediction.ids[0] == predicted.prediction.index
    for bad, message in [("id:99999999", "outside the vocabulary"), ("id:x", "id:NUMBER")]:
        with pytest.raises(InputError, match=message):
            ex.explain(TEXT, ["alti"], target=bad)
    with pytest.raises(InputError, match="same token"):
        ex.explain(TEXT, ["alti"], target="film", foil="film")


def test_a_long_prompt_keeps_its_end():
    model, tokenizer = tiny_pre_ln("llama")
    ex = Explainer(model, tokenizer)
    ex.max_length = 6
    e = ex.explain("one two three four five six seven eight nine", ["alti"])
    assert e.truncated and e.tokens == ["[CLS]", "five", "six", "seven", "eight", "nine"]


def test_hooks_are_removed_after_an_error(monkeypatch):
    ex = Explainer(*tiny_pre_ln("qwen3"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ex.adapter.final_norm, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        ex.explain(TEXT, ["alti", "alti_logit"])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in ex.model.modules())


def test_float32_follows_float64():
    e64 = Explainer(*tiny_pre_ln("llama", dtype=torch.float64)).explain(TEXT, ["alti", "alti_logit"])
    e32 = Explainer(*tiny_pre_ln("llama", dtype=torch.float32)).explain(TEXT, ["alti", "alti_logit"])
    np.testing.assert_allclose(e32.scores["alti"], e64.scores["alti"], atol=1e-4)
    scale = np.abs(e64.scores["alti_logit"]).max()
    np.testing.assert_allclose(e32.scores["alti_logit"], e64.scores["alti_logit"], atol=1e-4 * scale)


def test_predictions_in_batches_equal_the_explanations():
    ex = Explainer(*tiny_pre_ln("qwen3", dtype=torch.float64))
    texts = [TEXT, "bad", "the plot is thin"]
    predictions = ex.predictions(texts, batch_size=2)
    for text, prediction in zip(texts, predictions):
        explained = ex.explain(text, ["attention"]).prediction
        assert prediction.ids == explained.ids and prediction.label == explained.label
        np.testing.assert_allclose(prediction.probabilities, explained.probabilities, atol=1e-12)
    masked = Explainer(*tiny_pre_ln("modernbert", "masked_lm"))
    assert masked.predictions(["no mask here", "a [MASK] film"], skip_errors=True)[0] is None
    with pytest.raises(InputError, match="mask tokens"):
        masked.predictions(["no mask here"])
