"""Token-to-token contribution matrices of one layer, (n, n), rows summing to 1.

``alti_l1`` needs the distance of every transformed vector to the output: a
fused kernel on the CPU, chunks of targets elsewhere (bounded memory).  The L2
methods need only norms and dot products of weighted sums of per-source
vectors, which Gram matrices give without any n x n x d tensor.

Layouts follow :mod:`alti.core.decomposition`: ``weights`` (n_j, n_i, K),
``vectors`` (n_j, K, d), sources first.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from alti.core import workspace
from alti.core.decomposition import BatchDecomposition, Decomposition

CHUNK_BYTES = 8 * 2**20
#: On a GPU each chunk is a kernel launch: larger chunks (memory is plentiful there).
GPU_CHUNK_BYTES = 256 * 2**20


def normalize_rows(m: torch.Tensor) -> torch.Tensor:
    total = m.sum(-1, keepdim=True)
    return m / torch.where(total > 0, total, torch.ones_like(total))


def weighted_norms(weights: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Squared norms ``||sum_k weights[j,i,k] vectors[j,k]||^2`` as (n_i, n_j).

    Uses the per-source Gram matrices ``G_j = V_j V_j^T`` (K x K): cost
    O(n d K^2 + n^2 K^2), memory O(n^2 K).  Leading batch dimensions
    (a :class:`~alti.core.decomposition.BatchDecomposition`'s) are kept.
    """
    gram = vectors @ vectors.transpose(-1, -2)  # (..., n_j, K, K)
    return ((weights @ gram) * weights).sum(-1).transpose(-1, -2).clamp_min(0)


def norms_of_mixtures(weights: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Row-normalised L2 norms of the weighted sums (Kobayashi-style matrices)."""
    return normalize_rows(weighted_norms(weights, vectors).sqrt())


def alti_l1(dec: Decomposition | BatchDecomposition, chunk_bytes: int | None = None) -> torch.Tensor:
    """ALTI (L1): ``max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1)``, rows normalised.

    Distances are computed on ``sigma_i``-scaled vectors; the common factor
    ``1/sigma_i`` of row i cancels in the normalisation.  Pairs that no head
    connects (above the diagonal of a causal model) are exactly zero.  On the CPU a
    compiled kernel computes them (:mod:`alti.core.kernels`), on CUDA a Triton
    one (:mod:`alti.core.triton_l1`); elsewhere (or where it cannot be built,
    or triton is missing, or ``ALTI_NO_TRITON=1``) torch does, a chunk of
    targets at a time (``chunk_bytes`` of buffer).  Of a
    :class:`~alti.core.decomposition.BatchDecomposition`, (B, N, N): every
    row's matrix within its span, in one Triton launch (row by row where
    triton is not in use).
    """
    if isinstance(dec, BatchDecomposition):
        return _batch_alti_l1(dec, chunk_bytes)
    return _alti_l1_of_one(dec, chunk_bytes)


def _alti_l1_of_one(dec: Decomposition, chunk_bytes: int | None) -> torch.Tensor:
    out = dec.scaled_output
    kernel = _cpu_kernel() if out.device.type == "cpu" else None
    if kernel is None:
        gpu_kernel = triton_kernel(out.device)
        if gpu_kernel is not None:
            contributions = gpu_kernel.l1_contributions(
                dec.attentions, dec.head_vectors, dec.residual, out, lower=dec.causal
            )
        else:
            if chunk_bytes is None:
                chunk_bytes = GPU_CHUNK_BYTES if out.device.type == "cuda" else CHUNK_BYTES
            distances = l1_distances_torch(dec, chunk_bytes)
            contributions = (out.abs().sum(-1, keepdim=True) - distances).clamp_min(0)
        if dec.unreached is not None:
            contributions[dec.unreached] = 0
        return normalize_rows(contributions)
    # numpy from here: a small torch op right after the kernel waits for
    # torch's thread pool to wake up, longer than the op itself takes
    # and the temporaries live in this thread's workspace, not freshly faulted-in pages per layer
    scratch = workspace.local()
    y = out.numpy()
    distances = kernel.l1_distances(
        dec.attentions.numpy(),
        dec.head_vectors.numpy(),
        dec.residual.numpy(),
        y,
        torch.get_num_threads(),
        lower=dec.causal,
        workspace=scratch,
    )
    # float64 (the kernel's sums are): ||y||_1 - distance cancels most digits
    norms = np.abs(y, out=scratch.array("alti.abs", y.shape, y.dtype)).sum(-1, keepdims=True, dtype=np.float64)
    contributions = scratch.array("alti.contributions", distances.shape, np.float64)
    np.subtract(norms, distances, out=contributions)
    np.maximum(contributions, 0, out=contributions)
    if dec.unreached is not None:  # exact zeros (the two sums round differently)
        contributions[dec.unreached.numpy()] = 0
    total = contributions.sum(-1, keepdims=True)
    contributions /= np.where(total > 0, total, 1)
    return torch.from_numpy(contributions.astype(y.dtype))  # a new array: the caller keeps it


def _batch_alti_l1(batch: BatchDecomposition, chunk_bytes: int | None) -> torch.Tensor:
    gpu_kernel = triton_kernel(batch.scaled_output.device)
    if gpu_kernel is None:
        matrices = batch.attentions.new_zeros(batch.attentions.shape[:1] + batch.attentions.shape[2:])
        for index, within in enumerate(batch.rows_of(matrices)):
            within.copy_(_alti_l1_of_one(batch.row(index), chunk_bytes))
        return matrices
    contributions = gpu_kernel.l1_contributions_batch(
        batch.attentions,
        batch.head_vectors,
        batch.residual,
        batch.scaled_output,
        list(batch.spans),
        lower=batch.causal,
    )
    contributions[batch.unreached] = 0  # exact zeros, as one example's (padding is 0 already)
    return normalize_rows(contributions)


def l1_distances_torch(dec: Decomposition, chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """``||sigma_i (y_i - T_i(x_j))||_1`` (n_i, n_j), an (n, chunk, d) buffer at a time."""
    n, _, d = dec.vectors.shape
    out = dec.scaled_output
    chunk = min(n, max(1, chunk_bytes // (n * d * out.element_size())))
    buffer = out.new_empty(n, chunk, d)
    rows = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        residual = buffer[:, : stop - start]  # (n_j, c, d): sigma_i (y_i - T_i(x_j))
        torch.bmm(dec.weights[:, start:stop], dec.vectors, out=residual)
        residual.sub_(out[start:stop])
        rows.append(torch.linalg.vector_norm(residual, ord=1, dim=-1).transpose(0, 1))
    return torch.cat(rows)


@functools.cache
def _cpu_kernel():
    """:mod:`alti.core.kernels`, or None where llvmlite is missing or cannot build the kernel."""
    try:
        from alti.core import kernels

        kernels.compile_kernel()
    except (ImportError, RuntimeError, OSError):
        return None
    return kernels


def triton_kernel(device: torch.device):
    """:mod:`alti.core.triton_l1` for tensors on ``device``: CUDA only, where triton
    imports and ``ALTI_NO_TRITON`` is not ``1``; else None (torch's chunks then)."""
    if device.type != "cuda" or os.environ.get("ALTI_NO_TRITON") == "1":
        return None
    return _triton()


@functools.cache
def _triton():
    try:
        from alti.core import triton_l1
    except ImportError:
        return None
    return triton_l1


def alti_l2(dec: Decomposition) -> torch.Tensor:
    """ALTI with the L2 distance, from Gram matrices and one matmul."""
    out = dec.scaled_output
    n, k, d = dec.vectors.shape
    # y_i . sum_k w_jik v_jk: every (i, (j, k)) dot product in one matmul
    dots = (out @ dec.vectors.reshape(n * k, d).T).view(n, n, k)  # (n_i, n_j, K)
    dots = (dots * dec.weights.transpose(0, 1)).sum(-1)
    out_sq = (out * out).sum(-1, keepdim=True)
    dist_sq = (out_sq - 2 * dots + weighted_norms(dec.weights, dec.vectors)).clamp_min(0)
    contributions = out_sq.sqrt() - dist_sq.sqrt()
    return normalize_rows(contributions.clamp_min(0))


def globenc(dec: Decomposition | BatchDecomposition, gamma2: torch.Tensor) -> torch.Tensor:
    """GlobEnc: transformed vectors through the second LayerNorm (FFN ignored).

    ``T2_i(x_j) = gamma2 * centre(T_i(x_j)) / sigma2_i``; the scales of row i
    cancel in the normalisation, so only ``gamma2 * centre(.)`` matters.  Of a
    batch, (B, N, N): each row's matrix within its span.
    """
    vectors = dec.vectors - dec.vectors.mean(-1, keepdim=True)
    return norms_of_mixtures(dec.weights, vectors * gamma2)
