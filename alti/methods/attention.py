"""Attention-based comparison methods (GUIDE §1.3)."""

from __future__ import annotations

import torch

from alti import core
from alti.methods import register
from alti.methods.base import MethodInfo


def _attention(layer):
    return layer.attentions.mean(0)


def _rollout(layer):
    mean = layer.attentions.mean(0)
    return 0.5 * (mean + torch.eye(mean.shape[0], dtype=mean.dtype, device=mean.device))


def _norm(layer):
    dec = layer.decomposition
    return core.norms_of_mixtures(dec.weights[:-1], dec.mixed)


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
