"""Llama and the decoders that share its module layout: Mistral, Qwen2, Qwen3, Gemma (v1).

``layers[i].input_layernorm`` (RMSNorm), ``self_attn.v_proj`` / ``o_proj``
(with or without biases, grouped-query attention: ``num_key_value_heads``),
``norm`` after the last block.  RoPE, sliding windows, Qwen3's q/k norms and
the causal mask act only through the attention probabilities.
"""

from __future__ import annotations

from alti.adapters.spec import PreLNSpec

SPEC = PreLNSpec(
    layers="layers",
    input_norm="input_layernorm",
    attention="self_attn",
    value="self_attn.v_proj",
    output="self_attn.o_proj",
    final_norm="norm",
    embeddings="embed_tokens",
)


def resolve(model, config):
    return SPEC.resolve(model, config)
