"""Token-to-token contribution matrices of one layer, (n, n), rows summing to 1.

``alti_l1`` needs the distance of every transformed vector to the output, so
it builds ``sigma_i T_i(x_j)`` for a chunk of targets at a time (bounded
memory).  The L2 methods need only norms and dot products of weighted sums of
per-source vectors, which Gram matrices give without any n x n x d tensor.
"""

from __future__ import annotations

import torch

from alti.core.decomposition import Decomposition

CHUNK_BYTES = 16 * 2**20


def normalize_rows(m: torch.Tensor) -> torch.Tensor:
    total = m.sum(-1, keepdim=True)
    return m / torch.where(total > 0, total, torch.ones_like(total))


def weighted_norms(weights: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Squared norms ``||sum_k weights[k,i,j] vectors[k,j]||^2`` as (n_i, n_j).

    Uses the per-source Gram matrices ``G_j = V_j V_j^T`` (K x K), so the cost
    is O(n d K^2 + n^2 K^2) and memory O(n^2 K).
    """
    per_source = vectors.transpose(0, 1)  # (n_j, K, d)
    gram = per_source @ per_source.transpose(1, 2)  # (n_j, K, K)
    w = weights.permute(2, 1, 0)  # (n_j, n_i, K)
    return ((w @ gram) * w).sum(-1).transpose(0, 1).clamp_min(0)


def norms_of_mixtures(weights: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Row-normalised L2 norms of the weighted sums (Kobayashi-style matrices)."""
    return normalize_rows(weighted_norms(weights, vectors).sqrt())


def alti_l1(dec: Decomposition, chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """ALTI (L1): ``max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1)``, rows normalised.

    Distances are computed on ``sigma_i``-scaled vectors; the common factor
    ``1/sigma_i`` of row i cancels in the normalisation.
    """
    k, n, d = dec.vectors.shape
    sources = dec.vectors.transpose(0, 1)  # (n_j, K, d)
    out = dec.scaled_output
    chunk = max(1, chunk_bytes // (n * d * out.element_size()))
    rows = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        w = dec.weights[:, start:stop, :].permute(2, 1, 0)  # (n_j, c, K)
        residual = torch.baddbmm(out[start:stop].expand(n, -1, -1), w, sources, alpha=-1)
        rows.append(torch.linalg.vector_norm(residual, ord=1, dim=-1).transpose(0, 1))
    distances = torch.cat(rows)
    contributions = out.abs().sum(-1, keepdim=True) - distances
    return normalize_rows(contributions.clamp_min(0))


def alti_l2(dec: Decomposition) -> torch.Tensor:
    """ALTI with the L2 distance, from Gram matrices and one batched matmul."""
    out = dec.scaled_output
    # Y'_i . sum_k w_kij v_kj = sum_k w_kij (Y' V_k^T)_ij
    dots = (dec.weights * (out.unsqueeze(0) @ dec.vectors.transpose(1, 2))).sum(0)
    out_sq = (out * out).sum(-1, keepdim=True)
    dist_sq = (out_sq - 2 * dots + weighted_norms(dec.weights, dec.vectors)).clamp_min(0)
    contributions = out_sq.sqrt() - dist_sq.sqrt()
    return normalize_rows(contributions.clamp_min(0))


def globenc(dec: Decomposition, gamma2: torch.Tensor) -> torch.Tensor:
    """GlobEnc: transformed vectors through the second LayerNorm (FFN ignored).

    ``T2_i(x_j) = gamma2 * centre(T_i(x_j)) / sigma2_i``; the scales of row i
    cancel in the normalisation, so only ``gamma2 * centre(.)`` matters.
    """
    vectors = dec.vectors - dec.vectors.mean(-1, keepdim=True)
    return norms_of_mixtures(dec.weights, vectors * gamma2)
