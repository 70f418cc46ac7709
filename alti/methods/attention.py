"""Attention-based comparison methods (GUIDE §1.3)."""

from __future__ import annotations

from alti import core
from alti.methods import register
from alti.methods.base import MethodInfo


def _attention(layer):
    return layer.attentions.mean(0)


def _rollout(layer):
    matrix = layer.attentions.mean(0)
    matrix.diagonal().add_(1)
    return matrix.mul_(0.5)


def _norm(layer):
    mixed = layer.head_outputs()  # (n_j, H, d)
    return core.norms_of_mixtures(layer.attentions.permute(2, 1, 0), mixed)


register(
    MethodInfo(
        name="attention",
        family="attention",
        signed=False,
        explains="representation",
        matrix=True,
        description="Raw attention weights, mean over heads; the score is the last layer's row",
    ),
    _attention,
    "trace",
)
register(
    MethodInfo(
        name="rollout",
        family="attention",
        signed=False,
        explains="representation",
        matrix=True,
        description="Attention rollout (Abnar & Zuidema 2020): 0.5 * (mean-head attention + I) "
        "per layer, rolled out",
    ),
    _rollout,
    "trace",
    rolled=True,
)
register(
    MethodInfo(
        name="norm",
        family="attention",
        signed=False,
        explains="representation",
        matrix=True,
        description="Kobayashi et al. 2020: ||sum_h A^h_ij f^h(x_j)||, attention block only, "
        "rows normalised; the score is the last layer's row",
    ),
    _norm,
    "trace",
)
