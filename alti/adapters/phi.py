"""Phi (1, 1.5, 2): parallel blocks ``x' = x + Attn(N(x)) + MLP(N(x))`` with one
LayerNorm ``input_layernorm``; ``self_attn.v_proj`` / ``self_attn.dense``,
``final_layernorm``."""

from __future__ import annotations

from alti.adapters.spec import PreLNSpec

SPEC = PreLNSpec(
    layers="layers",
    input_norm="input_layernorm",
    attention="self_attn",
    value="self_attn.v_proj",
    output="self_attn.dense",
    final_norm="final_layernorm",
    embeddings="embed_tokens",
)


def resolve(model, config):
    return SPEC.resolve(model, config)
