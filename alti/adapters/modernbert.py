"""ModernBERT: a bidirectional pre-LN encoder.

``layers[i].attn_norm`` (an identity in the first layer), ``attn.Wqkv``
(q|k|v side by side), ``attn.Wo``, ``final_norm``; alternating global and
sliding-window attention, RoPE.  A sequence classifier pools the ``[CLS]``
row or the mean of the rows (``config.classifier_pooling``) and then runs a
non-linear prediction head, so ALTI-Logit does not apply.
"""

from __future__ import annotations

import dataclasses

from alti.adapters.spec import PreLNSpec

SPEC = PreLNSpec(
    layers="layers",
    input_norm="attn_norm",
    attention="attn",
    value="attn.Wqkv",
    value_layout="qkv",
    output="attn.Wo",
    final_norm="final_norm",
    embeddings="embeddings",
    causal=False,
)


def resolve(model, config):
    reads = "mean" if getattr(config, "classifier_pooling", "cls") == "mean" else "first"
    return dataclasses.replace(SPEC, classifier_reads=reads).resolve(model, config)
