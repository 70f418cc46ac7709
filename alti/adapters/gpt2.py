"""GPT-2: ``h[i].ln_1``, ``attn`` (``c_attn`` holds q|k|v, ``c_proj`` the output,
both ``Conv1D``), ``ln_f``; learned absolute positions in ``wpe``."""

from __future__ import annotations

from alti.adapters.spec import PreLNSpec

SPEC = PreLNSpec(
    layers="h",
    input_norm="ln_1",
    attention="attn",
    value="attn.c_attn",
    value_layout="qkv",
    output="attn.c_proj",
    final_norm="ln_f",
    embeddings="wte",
)


def resolve(model, config):
    return SPEC.resolve(model, config)
