"""The attention block of one post-LN layer, decomposed per source token.

Notation of GUIDE §1.1.  The residual is treated as one more "head" whose
attention matrix is the identity, so that every transformed vector is

    sigma_i * T_i(x_j) = sum_k weights[j, i, k] * vectors[j, k]

with ``vectors[j, h] = gamma * centre(f^h(x_j))`` for the heads and
``vectors[j, H] = gamma * centre(x_j)`` for the residual.  Gamma and the
centring are folded into W_O once per layer, so one batched matmul gives the
folded per-head vectors; ``sigma_i`` is kept apart (it cancels in every
row-normalised matrix).  Both tensors are source-major (j first), the layout
the Gram matrices and the L1 kernel read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Decomposition:
    attentions: torch.Tensor  # (H, n_i, n_j) as the model computed them
    vectors: torch.Tensor  # (n_j, H+1, d): gamma * centre(.) of f^h(x_j), then of x_j
    scaled_output: torch.Tensor  # (n_i, d): sigma_i * y_i
    sigma: torch.Tensor  # (n_i,)
    bias: torch.Tensor  # (d,): gamma * centre(b_O)
    beta: torch.Tensor  # (d,)

    @functools.cached_property
    def weights(self) -> torch.Tensor:
        """(n_j, n_i, H+1): attention ``A^h[i, j]``, then ``[i == j]`` (built on first use)."""
        heads, n, _ = self.attentions.shape
        weights = self.attentions.new_zeros(n, n, heads + 1)
        weights[:, :, :heads] = self.attentions.permute(2, 1, 0)
        weights[:, :, heads].fill_diagonal_(1)
        return weights


def _centre(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return t - t.mean(dim, keepdim=True)


def head_outputs(values: torch.Tensor, out_weight: torch.Tensor, heads: int) -> torch.Tensor:
    """``f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h`` for every source and head: (n, H, d).

    ``values`` (n, H*dh) is ``x W_V + b_V``; ``out_weight`` (d, H*dh) is W_O as
    stored by ``nn.Linear``.
    """
    n, d = values.shape[0], out_weight.shape[0]
    per_head = values.reshape(n, heads, -1).transpose(0, 1)  # (H, n, dh)
    projection = out_weight.reshape(d, heads, -1).permute(1, 2, 0)  # (H, dh, d)
    return torch.bmm(per_head, projection).transpose(0, 1)


def fold_output_weight(out_weight: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``gamma * centre(W_O)`` over the output dimension: then ``v W^T`` is
    ``gamma * centre(v W_O^T)`` for any v (centring is linear)."""
    return gamma[:, None] * _centre(out_weight, dim=0)


def decompose(
    values: torch.Tensor,
    x: torch.Tensor,
    attentions: torch.Tensor,
    folded_weight: torch.Tensor,
    out_bias: torch.Tensor,
    norm_input: torch.Tensor,
    norm_output: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
) -> Decomposition:
    """Decompose one layer of one example.

    ``attentions`` (H, n, n); ``folded_weight`` (d, H*dh) is
    :func:`fold_output_weight` of W_O; ``norm_input``/``norm_output`` (n, d)
    are the LayerNorm's input and output.
    """
    heads, n, _ = attentions.shape
    folded = folded_weight
    d = folded.shape[0]
    vectors = x.new_empty(n, heads + 1, d)
    dh = folded.shape[1] // heads
    for h in range(heads):  # each head's product lands in its strided slot
        cols = slice(h * dh, (h + 1) * dh)
        torch.mm(values[:, cols], folded[:, cols].T, out=vectors[:, h])
    vectors[:, heads] = gamma * _centre(x)
    sigma = torch.sqrt(norm_input.var(-1, unbiased=False) + eps)
    return Decomposition(
        attentions=attentions,
        vectors=vectors,
        scaled_output=norm_output * sigma[:, None],
        sigma=sigma,
        bias=gamma * _centre(out_bias),
        beta=beta,
    )


def transformed_vectors(dec: Decomposition, targets: slice) -> torch.Tensor:
    """``sigma_i * T_i(x_j)`` for a slice of targets: (len(targets), n, d).

    Never call this for all targets of a long input at once (it is n x n x d).
    """
    return torch.bmm(dec.weights[:, targets], dec.vectors).transpose(0, 1)
