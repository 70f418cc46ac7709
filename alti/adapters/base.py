"""The typed view of one encoder that every method works on.

An adapter names, once per model, the modules the decomposition needs in each
layer.  Methods never look at model classes; they only read an :class:`Adapter`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LayerModules:
    """The modules of one post-LN encoder layer that ALTI decomposes."""

    attention: nn.Module  # returns (mixed values, attention probabilities (B, H, n, n))
    value: nn.Linear  # x -> x W_V + b_V, all heads side by side
    output: nn.Linear  # the attention output projection W_O, b_O
    attention_norm: nn.LayerNorm  # LayerNorm(attention output + x)
    output_norm: nn.LayerNorm  # LayerNorm(FFN output + its input)


@dataclass(frozen=True)
class Adapter:
    """Resolved modules of one encoder.

    ``layers`` has one entry per applied layer, so a model that shares one
    layer (ALBERT) lists the same modules several times.  ``embeddings`` is the
    embedding module (for Captum's Layer* attribution methods).
    """

    model_type: str
    encoder: nn.Module
    embeddings: nn.Module
    layers: tuple[LayerModules, ...]
    num_heads: int
    max_positions: int
    # the attention module returns its probabilities only when the model is
    # called with output_attentions=True (other models return them always;
    # asking would make transformers install permanent recording hooks)
    output_attentions: bool = False

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def head_dim(self) -> int:
        return self.layers[0].value.out_features // self.num_heads
