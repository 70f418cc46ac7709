"""Rolling per-layer matrices out across layers: ``R = C^L @ ... @ C^1``."""

from __future__ import annotations

import torch


def rollout(layers: torch.Tensor, upto: int | None = None) -> torch.Tensor:
    """Product of the first ``upto`` (default all) layer matrices, (L, n, n) -> (n, n).

    Row i of the result says how much each input token makes up token i's
    representation after layer ``upto``.  No identity is added: the residual
    is already inside each layer's matrix.
    """
    upto = layers.shape[0] if upto is None else upto
    result = layers[0]
    for layer in layers[1:upto]:
        result = layer @ result
    return result
