"""BERT and its post-LN relatives with the same module layout.

RoBERTa, XLM-R, CamemBERT and ELECTRA name their modules exactly as BERT does:
``encoder.layer[i].attention.self.value``, ``attention.output.dense``,
``attention.output.LayerNorm``, ``intermediate.dense``, ``output.dense`` and
``output.LayerNorm``; ``attention.self`` returns the attention probabilities
next to its output.  RoBERTa-style position ids start after the padding index,
which costs two positions.

Sequence-classification heads (for DecompX): BERT's pooler dense (tanh) and
``classifier``; RoBERTa-style and ELECTRA heads ``classifier.dense`` (tanh,
ELECTRA: GELU) and ``classifier.out_proj``.
"""

from __future__ import annotations

from torch import nn

from alti.adapters.base import Adapter, LayerModules

ROBERTA_STYLE = ("roberta", "xlm-roberta", "camembert")


def classifier_layers(model: nn.Module, encoder: nn.Module) -> tuple:
    """The linear maps of a BERT-style sequence classifier's head, or () for other heads."""
    classifier = getattr(model, "classifier", None)
    pooler = getattr(encoder, "pooler", None)
    if isinstance(classifier, nn.Linear) and isinstance(getattr(pooler, "dense", None), nn.Linear):
        return (pooler.dense, classifier)
    dense, out = getattr(classifier, "dense", None), getattr(classifier, "out_proj", None)
    if isinstance(dense, nn.Linear) and isinstance(out, nn.Linear):
        return (dense, out)
    return ()


def resolve(model: nn.Module, config) -> Adapter:
    encoder = model.base_model
    layers = tuple(
        LayerModules(
            attention=layer.attention.self,
            value=layer.attention.self.value,
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
    if config.model_type in ROBERTA_STYLE:
        max_positions -= config.pad_token_id + 1
    return Adapter(
        model_type=config.model_type,
        encoder=encoder,
        embeddings=encoder.embeddings,
        layers=layers,
        num_heads=config.num_attention_heads,
        max_positions=max_positions,
        classifier_layers=classifier_layers(model, encoder) if model is not encoder else (),
    )
