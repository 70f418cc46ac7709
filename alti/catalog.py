"""What each explanation method is, without the code that computes it.

The explorer and the HTML report show scores read from a run file before (or without)
loading torch: they colour a method's row by :attr:`MethodInfo.signed` and know from
:attr:`MethodInfo.matrix` whether it has per-layer matrices.  The engine's registry
(:mod:`alti.methods`) pairs each of these with its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alti.errors import UnknownMethodError


@dataclass(frozen=True)
class Option:
    """A keyword option of a model method's ``compute``, declared on the method.

    ``flag``: the command-line flag that sets it in ``alti attribute`` / ``alti evaluate``
    (methods declaring the same flag share it), or None for options only the API sets.
    """

    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    minimum: float | None = None

    def check(self, value: Any) -> None:
        """Refuse a value below ``minimum`` in one line naming the flag (or option)."""
        from alti.errors import InputError

        if self.minimum is not None and value < self.minimum:
            where = self.flag or self.name
            raise InputError(f"{where} must be at least {self.minimum:g}, not {value}")


#: integrated gradients' options; ``--ig-steps`` sets ``steps`` of both
IG_OPTIONS = (
    Option("steps", int, 50, "integration steps of ig_l2/ig_dot", flag="--ig-steps", minimum=1),
    Option("internal_batch_size", int, None, "interpolated inputs per forward pass (default: all)", minimum=1),
)


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str  # "alti", "attention", "logit", "decompx", "value_zeroing", "gradient" or "perturbation"
    signed: bool  # scores can be negative: diverging colour scale
    explains: str  # "representation", "probability" or "logit"
    matrix: bool  # has per-layer token-to-token matrices
    description: str
    #: the per-layer matrices already relate every token to the input tokens (DecompX's parts):
    #: shown as they are, never multiplied together like the mixing matrices of ALTI
    cumulative: bool = False
    #: keyword options of a model method's ``compute`` (the CLI makes flags of those with one)
    options: tuple[Option, ...] = ()
    #: the option bounding how many inputs go through the model at once: the explorer keeps it
    #: small, so that slow work yields the CPU often
    chunk_option: str | None = None
    #: each per-layer matrix's rows sum to 1 (mixing shares), so the scores do too
    normalised: bool = False

    def option(self, name: str) -> Option:
        """The declared option called ``name``."""
        return next(o for o in self.options if o.name == name)


INFOS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        MethodInfo(
            name="alti",
            family="alti",
            signed=False,
            explains="representation",
            matrix=True,
            description="ALTI (Ferrando et al. 2022): L1 proximity of each token's transformed vector to the attention "
            "block's output (residual and, in post-LN models, LayerNorm included), rolled out",
            normalised=True,
        ),
        MethodInfo(
            name="alti_l2",
            family="alti",
            signed=False,
            explains="representation",
            matrix=True,
            description="ALTI with the L2 distance instead of L1, rolled out",
            normalised=True,
        ),
        MethodInfo(
            name="norm_rollout",
            family="alti",
            signed=False,
            explains="representation",
            matrix=True,
            description="Kobayashi et al. 2021: L2 norms of the transformed vectors (residual and, in post-LN models, "
            "LayerNorm included), rows normalised, rolled out",
            normalised=True,
        ),
        MethodInfo(
            name="globenc",
            family="alti",
            signed=False,
            explains="representation",
            matrix=True,
            description="GlobEnc (Modarressi et al. 2022): transformed vectors through both LayerNorms (FFN ignored), L2 "
            "norms, rows normalised, rolled out",
            normalised=True,
        ),
        MethodInfo(
            name="attention",
            family="attention",
            signed=False,
            explains="representation",
            matrix=True,
            description="Raw attention weights, mean over heads; the score is the last layer's row",
            normalised=True,
        ),
        MethodInfo(
            name="rollout",
            family="attention",
            signed=False,
            explains="representation",
            matrix=True,
            description="Attention rollout (Abnar & Zuidema 2020): 0.5 * (mean-head attention + I) per layer, rolled out",
            normalised=True,
        ),
        MethodInfo(
            name="norm",
            family="attention",
            signed=False,
            explains="representation",
            matrix=True,
            description="Kobayashi et al. 2020: ||sum_h A^h_ij f^h(x_j)||, attention block only, rows normalised; the score"
            " is the last layer's row",
            normalised=True,
        ),
        MethodInfo(
            name="decompx",
            family="decompx",
            signed=True,
            explains="logit",
            matrix=True,
            description="DecompX (Modarressi et al. 2023): each token's part of the class logit, its decomposition carried "
            "through every layer, FFN and the classification head (the scores sum to the logit); per-layer "
            "matrices are the unsigned norms ||X^l[i, k]||_2 of the parts, not row-normalised (last layer: the "
            "[CLS] row only)",
            cumulative=True,
            options=(
                Option("full_last_layer", bool, False, "decompose every row of the last layer, not just the one read"),
                Option("chunk_mb", float, 128, "memory of one chunk of the decomposition (MB)", minimum=1),
            ),
        ),
        MethodInfo(
            name="grad_l2",
            family="gradient",
            signed=False,
            explains="probability",
            matrix=False,
            description="L2 norm of the gradient of p(target) at each token's embedding",
        ),
        MethodInfo(
            name="gxi_l2",
            family="gradient",
            signed=False,
            explains="probability",
            matrix=False,
            description="L2 norm of input x gradient of p(target) at the embedding layer",
        ),
        MethodInfo(
            name="gxi_dot",
            family="gradient",
            signed=True,
            explains="probability",
            matrix=False,
            description="input x gradient of p(target), summed over the embedding dimension",
        ),
        MethodInfo(
            name="ig_l2",
            family="gradient",
            signed=False,
            explains="probability",
            matrix=False,
            description="L2 norm of integrated gradients of p(target) from [CLS] [MASK]... [SEP]",
            options=IG_OPTIONS,
            chunk_option="internal_batch_size",
        ),
        MethodInfo(
            name="ig_dot",
            family="gradient",
            signed=True,
            explains="probability",
            matrix=False,
            description="integrated gradients of p(target) from [CLS] [MASK]... [SEP], summed",
            options=IG_OPTIONS,
            chunk_option="internal_batch_size",
        ),
        MethodInfo(
            name="alti_logit",
            family="logit",
            signed=True,
            explains="logit",
            matrix=False,
            description="ALTI-Logit (Ferrando et al. 2023): each block's attention contribution to the logit (difference), "
            "traced back to the input tokens through ALTI's mixing",
        ),
        MethodInfo(
            name="logit",
            family="logit",
            signed=True,
            explains="logit",
            matrix=False,
            description="Logit attribution without mixing: each block's attention contribution to the logit (difference), "
            "credited to the source token it reads",
        ),
        MethodInfo(
            name="occlusion",
            family="perturbation",
            signed=True,
            explains="probability",
            matrix=False,
            description="drop in p(target) when the token is replaced by [MASK]",
            options=(Option("batch_size", int, 32, "occluded inputs per forward pass", minimum=1),),
            chunk_option="batch_size",
        ),
        MethodInfo(
            name="value_zeroing",
            family="value_zeroing",
            signed=False,
            explains="representation",
            matrix=True,
            description="Value Zeroing (Mohebbi et al. 2023): cosine distance of each layer's output from the one with the "
            "token's value vectors zeroed (whole layer rerun: attention, residual, norms, FFN), rows "
            "normalised, rolled out",
            normalised=True,
            options=(
                Option(
                    "batch_size", int, None, "copies of a layer's input per pass (default: by max_bytes)", minimum=1
                ),
                Option("max_bytes", int, None, "the most activation memory one pass of copies may take", minimum=1),
            ),
            chunk_option="batch_size",
        ),
    )
}


# ------------------------------------------------------------------ defaults
# The methods used when the user names none: the one place they are set.
#: ``Explainer.explain`` and ``alti explain``
EXPLAIN_METHODS: tuple[str, ...] = ("alti",)
#: ``alti attribute`` and ``alti evaluate`` (a dataset run)
DATASET_METHODS: tuple[str, ...] = (
    "alti",
    "attention",
    "rollout",
    "norm_rollout",
    "globenc",
    "grad_l2",
    "gxi_l2",
    "ig_l2",
)
#: ``alti-tui`` for a classifier, and for a language model (those that apply to the model)
EXPLORER_METHODS: tuple[str, ...] = ("alti", "rollout", "norm_rollout", "ig_l2")
EXPLORER_TOKEN_METHODS: tuple[str, ...] = ("alti", "alti_logit", "logit", "gxi_dot")


def explorer_methods(tokens: bool) -> tuple[str, ...]:
    """What the explorer shows first: ``tokens`` for a model whose targets are tokens (an LM)."""
    return EXPLORER_TOKEN_METHODS if tokens else EXPLORER_METHODS


def info(name: str) -> MethodInfo:
    """The method called ``name``; a one-line error naming the valid ones otherwise."""
    try:
        return INFOS[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; valid methods: {', '.join(INFOS)}") from None
