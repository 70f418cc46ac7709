"""Attention-based comparison methods (GUIDE §1.3)."""

from __future__ import annotations

from alti import core
from alti.methods import register
from alti.catalog import INFOS


def _attention(layer):
    return layer.attentions.mean(0)


def _attention_batched(layer):
    return layer.rows_of(layer.attentions.mean(1))


def _rollout(layer):
    matrix = layer.attentions.mean(0)
    matrix.diagonal().add_(1)
    return matrix.mul_(0.5)


def _rollout_batched(layer):
    matrices = layer.attentions.mean(1)
    matrices.diagonal(dim1=1, dim2=2).add_(1)
    return layer.rows_of(matrices.mul_(0.5))


def _norm(layer):
    mixed = layer.head_outputs()  # (n_j, H, d)
    return core.norms_of_mixtures(layer.attentions.permute(2, 1, 0), mixed)


register(
    INFOS["attention"],
    _attention,
    "trace",
    batched=_attention_batched,
)
register(
    INFOS["rollout"],
    _rollout,
    "trace",
    rolled=True,
    batched=_rollout_batched,
)
register(
    INFOS["norm"],
    _norm,
    "trace",
)
