"""ALTI and the other methods built on the layer decomposition (GUIDE §1.1, §1.3)."""

from __future__ import annotations

from alti import core
from alti.catalog import INFOS
from alti.methods import Source, register


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
    INFOS["alti"],
    _alti,
    Source.TRACE,
    rolled=True,
    batched=True,
)
register(
    INFOS["alti_l2"],
    _alti_l2,
    Source.TRACE,
    rolled=True,
)
register(
    INFOS["norm_rollout"],
    _norm_rollout,
    Source.TRACE,
    rolled=True,
    batched=True,
)
register(
    INFOS["globenc"],
    _globenc,
    Source.TRACE,
    rolled=True,
    requires=post_ln_only,
    batched=True,
)
