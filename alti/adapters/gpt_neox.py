"""GPT-NeoX (Pythia): ``layers[i].input_layernorm``, ``attention.query_key_value``
(per head: its query, key and value side by side), ``attention.dense``,
``final_layer_norm``.  Blocks may be parallel (``use_parallel_residual``):
``x' = x + Attn(N1(x)) + MLP(N2(x))``; ALTI decomposes ``x + Attn(N1(x))``
either way."""

from __future__ import annotations

from alti.adapters.spec import PreLNSpec

SPEC = PreLNSpec(
    layers="layers",
    input_norm="input_layernorm",
    attention="attention",
    value="attention.query_key_value",
    value_layout="qkv_per_head",
    output="attention.dense",
    final_norm="final_layer_norm",
    embeddings="embed_in",
)


def resolve(model, config):
    return SPEC.resolve(model, config)
