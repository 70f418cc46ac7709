"""The attention block of one post-LN layer, decomposed per source token.

Notation of GUIDE §1.1.  The residual is treated as one more "head" whose
attention matrix is the identity, so that every transformed vector is

    sigma_i * T_i(x_j) = sum_k weights[k, i, j] * vectors[k, j]

with ``vectors[h] = gamma * centre(f^h(x_j))`` for the heads and
``vectors[H] = gamma * centre(x_j)`` for the residual.  Gamma and the centring
are folded into the per-head vectors once per layer; ``sigma_i`` is kept apart
(it cancels in every row-normalised matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Decomposition:
    weights: torch.Tensor  # (H+1, n, n): attention heads, then the identity
    vectors: torch.Tensor  # (H+1, n, d): gamma * centre(.) of f^h(x_j), then of x_j
    mixed: torch.Tensor  # (H, n, d): f^h(x_j) as is (Kobayashi's norm)
    scaled_output: torch.Tensor  # (n, d): sigma_i * y_i
    sigma: torch.Tensor  # (n,)
    bias: torch.Tensor  # (d,): gamma * centre(b_O)
    beta: torch.Tensor  # (d,)


def _centre(t: torch.Tensor) -> torch.Tensor:
    return t - t.mean(-1, keepdim=True)


def decompose(
    values: torch.Tensor,
    x: torch.Tensor,
    attentions: torch.Tensor,
    out_weight: torch.Tensor,
    out_bias: torch.Tensor,
    norm_input: torch.Tensor,
    norm_output: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
) -> Decomposition:
    """Decompose one layer of one example.

    ``values`` (n, H*dh) is ``x W_V + b_V``; ``attentions`` (H, n, n);
    ``out_weight`` (d, H*dh) is ``W_O`` as stored by ``nn.Linear``;
    ``norm_input``/``norm_output`` (n, d) are the LayerNorm's input and output.
    """
    heads, n, _ = attentions.shape
    d = out_weight.shape[0]
    mixed = torch.einsum(
        "jhe,dhe->hjd", values.reshape(n, heads, -1), out_weight.reshape(d, heads, -1)
    )
    vectors = torch.cat([_centre(mixed), _centre(x).unsqueeze(0)]) * gamma
    eye = torch.eye(n, dtype=attentions.dtype, device=attentions.device)
    weights = torch.cat([attentions, eye.unsqueeze(0)])
    sigma = torch.sqrt(norm_input.var(-1, unbiased=False) + eps)
    return Decomposition(
        weights=weights,
        vectors=vectors,
        mixed=mixed,
        scaled_output=norm_output * sigma[:, None],
        sigma=sigma,
        bias=gamma * _centre(out_bias),
        beta=beta,
    )


def transformed_vectors(dec: Decomposition, targets: slice | torch.Tensor) -> torch.Tensor:
    """``sigma_i * T_i(x_j)`` for the given targets: (len(targets), n, d).

    Built as a batched matrix product over sources j; never call this for all
    targets of a long input at once (it is n x n x d).
    """
    w = dec.weights[:, targets, :].permute(2, 1, 0)  # (n_j, c, K)
    return torch.bmm(w, dec.vectors.transpose(0, 1)).transpose(0, 1)
