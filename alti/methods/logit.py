"""ALTI-Logit (Ferrando et al., ACL 2023) and its baseline ``logit``: which tokens raised the logit.

For the row N the head reads, with readout row ``u = u_t`` (or ``u_t - u_f``
against a foil) applied after the final norm (GUIDE §1.6):

- the final norm's scale is frozen at the real residual of N, so that
  ``u . Nf(c)`` is linear: ``u~ . c`` plus ``u . beta_f``;
- each block adds ``dlogit^l_k = u~ . sum_h A^h[N, k] W_O^h v^h_k`` per source k
  (the attention part of ``T_N(x_k)``, without the residual);
- ALTI-Logit carries those through the mixing of the earlier blocks:
  ``e_j = sum_l sum_k dlogit^l_k M^(l-1)[k, j]`` with ALTI's rolled-out
  matrices (``M^0 = I``); ``logit`` takes ``M = I``.  The embedding of N
  itself adds ``u~ . x^0_N`` to ``e_N``.

Completeness (exact up to rounding): the token scores plus the terms that
belong to no token (each block's ``b_O`` and MLP at N, the final norm's bias,
the readout's bias) add up to the model's logit (difference).  Scores are
signed, in logit units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from alti.adapters.base import linear_weight, norm_form
from alti.catalog import INFOS
from alti.methods import Source, register

IDENTITY = "logit = sum(token scores) + sum(attention_bias) + sum(mlp) + final_norm_bias + head_bias"


@dataclass(frozen=True)
class LayerRow:
    """What ALTI-Logit needs of one block at the row N read (kept while the forward pass runs on)."""

    mixed: torch.Tensor  # (n, d): sum_h A^h[N, k] W_O^h v^h_k per source k
    x: torch.Tensor  # (d,): the residual entering the block at N
    output: torch.Tensor  # (d,): m_N = x_N + Attn(N1(x))_N
    next_x: torch.Tensor  # (d,): the residual after the block at N
    bias: torch.Tensor  # (d,): b_O (zeros without one)

    @classmethod
    def of(cls, view, position: int) -> LayerRow:
        """The block's row, copied: a view would keep the block's whole n x d arrays alive."""
        return cls(
            mixed=view.mixed_at(position),
            x=view.x[position].clone(),
            output=view.output[position].clone(),
            next_x=view.next_x[position].clone(),
            bias=view.output_bias(),
        )


@dataclass
class Readout:
    """The explained logit at row ``position`` of one example, and what belongs to no token."""

    direction: torch.Tensor  # (d,) u~: u . Nf_lin(c) == direction . c
    contributions: torch.Tensor  # (L, n): dlogit^l_k, each block's attention part by source
    position: int
    embedding: float  # u~ . x^0_N, part of e_N
    attention_bias: list[float]  # u~ . b_O per block
    mlp: list[float]  # u~ . MLP^l_N per block (the residual's change outside attention)
    final_norm_bias: float
    head_bias: float
    logit: float  # the model's own logit (difference) at the row
    settings: dict[str, Any] = field(default_factory=dict)

    def mixed(self, alti: Mixing) -> torch.Tensor:
        """``sum_l dlogit^l M^(l-1)`` over sources (n,): from ALTI's kept layers, or from the
        block rows ``mixed^T`` folded into its running product as they came."""
        if alti.folded is not None:
            return self.direction.double() @ alti.folded
        return horner(self.contributions, alti.tensor)

    def add_embedding(self, scores: np.ndarray) -> None:
        """The explained row's own input embedding is part of that token's score."""
        scores[self.position] += self.embedding

    def terms(self, token_scores: np.ndarray) -> dict[str, Any]:
        """The JSON ``logit_terms``: with the token scores they give the logit back."""
        return {
            "logit": self.logit,
            "tokens": float(np.sum(token_scores)),
            "embedding": self.embedding,
            "attention_bias": list(self.attention_bias),
            "mlp": list(self.mlp),
            "final_norm_bias": self.final_norm_bias,
            "head_bias": self.head_bias,
            "identity": IDENTITY,
            "note": "embedding (the explained row's own input embedding) is part of that token's score",
        }


def linear_readout(explainer) -> str | None:
    head = explainer.head
    if head.readout is None or head.final_norm is None:
        return "its head is not a linear readout of the final norm's output"
    if head.reads == "mean":
        return "the head reads the mean of the rows"
    return None


def readout(explainer, rows: list[LayerRow], target, logits_row: torch.Tensor) -> Readout:
    """The readout direction, each block's contributions and the non-token terms of one example."""
    dtype = explainer.dtype
    position = target.position
    weight = linear_weight(explainer.head.readout).detach()
    bias = getattr(explainer.head.readout, "bias", None)
    u = weight[target.index].to(dtype)
    bias = None if bias is None else bias.detach()
    head_bias = 0.0 if bias is None else float(bias[target.index])
    logit = float(logits_row[target.index])
    if target.foil is not None:
        u = u - weight[target.foil].to(dtype)
        head_bias -= 0.0 if bias is None else float(bias[target.foil])
        logit -= float(logits_row[target.foil])
    form = norm_form(explainer.head.final_norm)
    final = rows[-1].next_x
    gamma = form.gamma.to(dtype=dtype, device=u.device)
    scaled = u * gamma
    if form.centred:
        scaled = scaled - scaled.mean()
    direction = scaled / form.scale(final)
    final_norm_bias = 0.0 if form.beta is None else float(u @ form.beta.to(dtype=dtype, device=u.device))
    attention_bias = [float(direction @ row.bias) for row in rows]
    mlp = [float(direction @ (row.next_x - row.output)) for row in rows]
    embedding = float(direction @ rows[0].x)
    contributions = torch.stack([row.mixed @ direction for row in rows])
    settings = {
        "units": "logit" if target.foil is None else "logit difference",
        "final_norm": "LayerNorm" if form.centred else "RMSNorm",
    }
    return Readout(
        direction, contributions, position, embedding, attention_bias, mlp, final_norm_bias, head_bias, logit, settings
    )


class StepRows:
    """What ALTI-Logit keeps of each block for the k steps of a whole answer (GUIDE §1.8).

    Each step's readout row is known before the forward pass (the answer is), so each block's
    attention part is projected on it as soon as the block is decomposed: k × n numbers per
    block, never the k × n × d vectors.  ``base`` (k, d) is each step's ``gamma * u``
    (centred for a LayerNorm), the readout direction before the final norm's scale, which is
    read at each step's row once the pass is over.
    """

    def __init__(self, rows: list[int], base: torch.Tensor) -> None:
        self.rows = rows
        self.base = base
        self.contributions: list[torch.Tensor] = []  # per block (k, n)
        self.bias: list[torch.Tensor] = []  # per block (k,): base . b_O
        self.mlp: list[torch.Tensor] = []  # per block (k,): base . (x' - m) at each row
        self.embedding: torch.Tensor | None = None  # (k,): base . x^0 at each row
        self.final: torch.Tensor | None = None  # (k, d): the residual after the last block

    def add(self, view) -> None:
        """One block of the forward pass (a :class:`alti.capture.PreLNView`)."""
        rows, base = self.rows, self.base.to(device=view.x.device, dtype=view.dtype)
        dec = view.decomposition
        projected = torch.einsum("hnd,kd->hkn", dec.head_vectors, base)
        self.contributions.append((dec.attentions[:, rows, :] * projected).sum(0))
        if self.embedding is None:
            self.embedding = (view.x[rows] * base).sum(-1)
        self.bias.append(view.output_bias() @ base.T)
        self.mlp.append(((view.next_x[rows] - view.output[rows]) * base).sum(-1))
        self.final = view.next_x[rows]


def step_base(explainer, ids: list[int], foils: list[int] | None) -> torch.Tensor:
    """Each step's ``gamma * (u_target - u_foil)``, centred for a LayerNorm: (k, d)."""
    weight = linear_weight(explainer.head.readout).detach()
    u = weight[ids].to(explainer.dtype)
    if foils is not None:
        u = u - weight[foils].to(explainer.dtype)
    form = norm_form(explainer.head.final_norm)
    scaled = u * form.gamma.to(dtype=u.dtype, device=u.device)
    return scaled - scaled.mean(-1, keepdim=True) if form.centred else scaled


@dataclass
class StepReadout:
    """The explained logits of a whole answer's k steps and what belongs to no token, per step:
    ``contributions`` (L, k, n); the rest (k,) or per block (L, k)."""

    contributions: torch.Tensor
    rows: list[int]
    scale: torch.Tensor  # (k,): the final norm's divisor at each step's row
    embedding: np.ndarray
    attention_bias: np.ndarray  # (L, k)
    mlp: np.ndarray  # (L, k)
    final_norm_bias: np.ndarray
    head_bias: np.ndarray
    logit: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def mixed(self, alti: Mixing) -> torch.Tensor:
        """Each step's ``sum_l dlogit^l M^(l-1)`` (k, n): from ALTI's kept layers, or folded
        into its running product as the blocks came (then divided by each step's scale)."""
        if alti.folded is not None:
            return alti.folded / self.scale.double()[:, None].to(alti.folded.device)
        return horner(self.contributions, alti.tensor)

    def add_embedding(self, scores: np.ndarray) -> None:
        scores[np.arange(len(self.rows)), self.rows] += self.embedding

    def terms(self, token_scores: np.ndarray) -> dict[str, Any]:
        """The JSON ``logit_terms`` of the whole answer: every part summed over the steps, so
        that with the token scores they give the sum of the answer's logits back."""
        return {
            "logit": float(self.logit.sum()),
            "tokens": float(np.sum(token_scores)),
            "embedding": float(self.embedding.sum()),
            "attention_bias": [float(v) for v in self.attention_bias.sum(1)],
            "mlp": [float(v) for v in self.mlp.sum(1)],
            "final_norm_bias": float(self.final_norm_bias.sum()),
            "head_bias": float(self.head_bias.sum()),
            "identity": IDENTITY + ", each summed over the answer's steps",
            "note": "embedding (each step's row's own input embedding) is part of that token's score",
        }


def step_readout(explainer, steps: StepRows, target, rows_logits: torch.Tensor) -> StepReadout:
    """The readout of every step of ``target`` (an answer), from its :class:`StepRows` and the
    logits of the steps' rows (k, V)."""
    ids = list(target.ids)
    foils = None if target.foils is None else list(target.foils)
    form = norm_form(explainer.head.final_norm)
    assert steps.final is not None and steps.embedding is not None
    scale = form.scale(steps.final)  # (k,): the final norm's divisor at each step's row
    readout = explainer.head.readout
    bias = getattr(readout, "bias", None)
    picked = torch.arange(len(ids))
    logits = rows_logits.double()[picked, ids]
    head_bias = np.zeros(len(ids)) if bias is None else bias.detach().double()[ids].cpu().numpy()
    u = linear_weight(readout).detach().double()[ids]
    if foils is not None:
        logits = logits - rows_logits.double()[picked, foils]
        if bias is not None:
            head_bias = head_bias - bias.detach().double()[foils].cpu().numpy()
        u = u - linear_weight(readout).detach().double()[foils]
    final_norm_bias = np.zeros(len(ids)) if form.beta is None else (u @ form.beta.double().to(u.device)).cpu().numpy()

    def per_step(values: torch.Tensor) -> np.ndarray:
        return (values / scale.to(values.dtype)).double().cpu().numpy()

    return StepReadout(
        contributions=torch.stack(steps.contributions) / scale[:, None].to(steps.contributions[0].dtype),
        rows=list(steps.rows),
        scale=scale,
        embedding=per_step(steps.embedding),
        attention_bias=np.stack([per_step(b) for b in steps.bias]),
        mlp=np.stack([per_step(m) for m in steps.mlp]),
        final_norm_bias=final_norm_bias,
        head_bias=head_bias,
        logit=logits.cpu().numpy(),
        settings={
            "units": "logit" if foils is None else "logit difference",
            "final_norm": "LayerNorm" if form.centred else "RMSNorm",
            "steps": "one row per answer token; the whole answer sums them",
        },
    )


class Mixing(Protocol):
    """ALTI's matrices of one input as the explainer kept them: all layers (``tensor``, L x n x
    n), or past its layer budget only what was folded into the running product (``folded``)."""

    tensor: torch.Tensor | None
    folded: torch.Tensor | None


def horner(contributions: torch.Tensor, layers: torch.Tensor | None) -> torch.Tensor:
    """``sum_l contributions[l] M^(l-1)`` (``M^0 = I``) by Horner's rule: row vectors (one
    per step of an answer) times the kept matrices, from the last layer down."""
    assert layers is not None
    device = layers.device
    total = contributions[-1].double().to(device)
    for layer in range(len(contributions) - 2, -1, -1):
        total = total @ layers[layer].double() + contributions[layer].double().to(device)
    return total


def alti_logit(readout: Readout | StepReadout, alti: Mixing) -> np.ndarray:
    """``e = sum_l dlogit^l M^(l-1)``: each block's contributions carried through ALTI's
    mixing of the blocks below it."""
    scores = readout.mixed(alti).cpu().numpy().copy()
    readout.add_embedding(scores)
    return scores


def logit(readout: Readout | StepReadout, alti: Mixing) -> np.ndarray:
    """The same contributions without mixing (M = I): each block's attention part by source."""
    scores = readout.contributions.double().sum(0).cpu().numpy().copy()
    readout.add_embedding(scores)
    return scores


register(
    INFOS["alti_logit"],
    alti_logit,
    Source.LOGIT,
    requires=linear_readout,
)
register(
    INFOS["logit"],
    logit,
    Source.LOGIT,
    requires=linear_readout,
)
