"""DistilBERT: ``transformer.layer[i].attention.v_lin/out_lin``, ``sa_layer_norm``,
``ffn.lin1/lin2``, ``output_layer_norm``; a sequence classifier's head is
``pre_classifier`` (ReLU) then ``classifier``."""

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
            ffn_in=layer.ffn.lin1,
            ffn_out=layer.ffn.lin2,
        )
        for layer in encoder.transformer.layer
    )
    head = (getattr(model, "pre_classifier", None), getattr(model, "classifier", None))
    return Adapter(
        model_type=config.model_type,
        encoder=encoder,
        embeddings=encoder.embeddings,
        layers=layers,
        num_heads=config.n_heads,
        max_positions=config.max_position_embeddings,
        classifier_layers=head if all(isinstance(m, nn.Linear) for m in head) else (),
    )
