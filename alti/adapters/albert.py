"""ALBERT: groups of layers shared across depth.

Layer ``i`` of ``num_hidden_layers`` runs group ``i // (L / G)``, and each group
applies its ``inner_group_num`` layers in turn; the adapter lists the modules
in the order they run, so shared modules appear several times.  A sequence
classifier's head is the pooler (a linear map, tanh) then ``classifier``.
"""

from __future__ import annotations

from torch import nn

from alti.adapters.base import Adapter, LayerModules


def resolve(model: nn.Module, config) -> Adapter:
    encoder = model.base_model
    groups = encoder.encoder.albert_layer_groups
    layers = []
    for i in range(config.num_hidden_layers):
        group = groups[int(i / (config.num_hidden_layers / config.num_hidden_groups))]
        for layer in group.albert_layers:
            layers.append(
                LayerModules(
                    attention=layer.attention,
                    value=layer.attention.value,
                    output=layer.attention.dense,
                    attention_norm=layer.attention.LayerNorm,
                    output_norm=layer.full_layer_layer_norm,
                    block=layer,
                    ffn_in=layer.ffn,
                    ffn_out=layer.ffn_output,
                )
            )
    head = (getattr(encoder, "pooler", None), getattr(model, "classifier", None))
    return Adapter(
        model_type=config.model_type,
        encoder=encoder,
        embeddings=encoder.embeddings,
        layers=tuple(layers),
        num_heads=config.num_attention_heads,
        max_positions=config.max_position_embeddings,
        classifier_layers=head if model is not encoder and all(isinstance(m, nn.Linear) for m in head) else (),
    )
