"""DistilBERT: ``transformer.layer[i].attention.v_lin/out_lin``, ``sa_layer_norm``,
``output_layer_norm``."""

from __future__ import annotations

from torch import nn

from alti.adapters.base import Adapter, LayerModules


def resolve(model: nn.Module, config) -> Adapter:
    encoder = model.base_model
    layers = tuple(
        LayerModules(
            attention=layer.attention,
            value=layer.attention.v_lin,
            output=layer.attention.out_lin,
            attention_norm=layer.sa_layer_norm,
            output_norm=layer.output_layer_norm,
            block=layer,
        )
        for layer in encoder.transformer.layer
    )
    return Adapter(
        model_type=config.model_type,
        encoder=encoder,
        embeddings=encoder.embeddings,
        layers=layers,
        num_heads=config.n_heads,
        max_positions=config.max_position_embeddings,
    )
