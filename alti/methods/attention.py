"""Attention-based comparison methods (GUIDE §1.3)."""

from __future__ import annotations

from alti import core
from alti.catalog import INFOS
from alti.methods import Source, register


def _attention(layer):
    return layer.attentions.mean(-3)  # over heads, of one row or of a batch's


def _rollout(layer):
    matrix = layer.attentions.mean(-3)
    matrix.diagonal(dim1=-2, dim2=-1).add_(1)
    return matrix.mul_(0.5)


def _norm(layer):
    mixed = layer.head_outputs()  # (n_j, H, d)
    return core.norms_of_mixtures(layer.attentions.permute(2, 1, 0), mixed)


register(
    INFOS["attention"],
    _attention,
    Source.TRACE,
    batched=True,
)
register(
    INFOS["rollout"],
    _rollout,
    Source.TRACE,
    rolled=True,
    batched=True,
)
register(
    INFOS["norm"],
    _norm,
    Source.TRACE,
)
