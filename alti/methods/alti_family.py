"""ALTI and the other methods built on the layer decomposition (GUIDE §1.1, §1.3)."""

from __future__ import annotations

from alti import core
from alti.methods import register
from alti.methods.base import MethodInfo


def _alti(layer):
    return core.alti_l1(layer.decomposition)


def _alti_l2(layer):
    return core.alti_l2(layer.decomposition)


def _norm_rollout(layer):
    dec = layer.decomposition
    return core.norms_of_mixtures(dec.weights, dec.vectors)


def _globenc(layer):
    return core.globenc(layer.decomposition, layer.parameter(layer.modules.output_norm.weight))


def post_ln_only(explainer) -> str | None:
    if explainer.adapter.pre_ln:
        return f"it needs post-LN blocks; {explainer.adapter.model_type} blocks are pre-LN"
    return None


register(
    MethodInfo(
        name="alti",
        family="alti",
        signed=False,
        explains="representation",
        matrix=True,
        description="ALTI (Ferrando et al. 2022): L1 proximity of each token's transformed "
        "vector to the attention block's output (residual and, in post-LN models, LayerNorm "
        "included), rolled out",
    ),
    _alti,
    "trace",
    rolled=True,
)
register(
    MethodInfo(
        name="alti_l2",
        family="alti",
        signed=False,
        explains="representation",
        matrix=True,
        description="ALTI with the L2 distance instead of L1, rolled out",
    ),
    _alti_l2,
    "trace",
    rolled=True,
)
register(
    MethodInfo(
        name="norm_rollout",
        family="alti",
        signed=False,
        explains="representation",
        matrix=True,
        description="Kobayashi et al. 2021: L2 norms of the transformed vectors (residual and, "
        "in post-LN models, LayerNorm included), rows normalised, rolled out",
    ),
    _norm_rollout,
    "trace",
    rolled=True,
)
register(
    MethodInfo(
        name="globenc",
        family="alti",
        signed=False,
        explains="representation",
        matrix=True,
        description="GlobEnc (Modarressi et al. 2022): transformed vectors through both "
        "LayerNorms (FFN ignored), L2 norms, rows normalised, rolled out",
    ),
    _globenc,
    "trace",
    rolled=True,
    requires=post_ln_only,
)
