"""DeBERTa v2 and v3: disentangled attention scores, but the mixing is still
``A @ V`` through ``attention.output.dense`` and a post-LN LayerNorm.

The optional convolution after the first layer (``conv_kernel_size > 0``, e.g.
DeBERTa-v2-xlarge) mixes tokens outside attention, which ALTI cannot decompose.
A sequence classifier's head is ``pooler.dense`` (its ``pooler_hidden_act``)
then ``classifier``.
"""

from __future__ import annotations

from torch import nn

from alti.adapters.base import Adapter, LayerModules
from alti.errors import UnsupportedModelError


def resolve(model: nn.Module, config) -> Adapter:
    encoder = model.base_model
    if getattr(config, "conv_kernel_size", 0) > 0:
        raise UnsupportedModelError(
            "DeBERTa checkpoints with a convolution layer (conv_kernel_size > 0) mix tokens "
            "outside attention and cannot be decomposed; use a DeBERTa-v3 or another supported model"
        )
    layers = tuple(
        LayerModules(
            attention=layer.attention.self,
            value=layer.attention.self.value_proj,
            output=layer.attention.output.dense,
            attention_norm=layer.attention.output.LayerNorm,
            output_norm=layer.output.LayerNorm,
            block=layer,
            ffn_in=layer.intermediate.dense,
            ffn_out=layer.output.dense,
        )
        for layer in encoder.encoder.layer
    )
    max_positions = config.max_position_embeddings
    if not getattr(config, "position_biased_input", True):
        max_positions = 1 << 30
    head = (getattr(getattr(model, "pooler", None), "dense", None), getattr(model, "classifier", None))
    return Adapter(
        model_type=config.model_type,
        encoder=encoder,
        embeddings=encoder.embeddings,
        layers=layers,
        num_heads=config.num_attention_heads,
        max_positions=max_positions,
        output_attentions=True,
        classifier_layers=head if all(isinstance(m, nn.Linear) for m in head) else (),
    )
