"""ALTI's L1 contributions on CUDA as one Triton kernel (the GPU's counterpart of :mod:`alti.core.kernels`).

``max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1)`` for every pair, with
``T_i(x_j) = sum_h A^h[i, j] v^h_j + [i == j] r_j``, without the (n, chunk, d)
buffer that :func:`alti.core.contributions.l1_distances_torch` writes and
reads back.  Each program owns a block of targets i x sources j and keeps
their sums in registers.  For a block of output dimensions e at a time it
starts from ``y_i[e]`` (minus ``r_j[e]`` on the diagonal), subtracts
``A^h[i, j] v^h_j[e]`` one head after another for the whole (e, i, j)
block, and adds ``|y_i[e]| - |difference|`` over e to the sums; the
transformed vectors exist only in registers.  With e first in that block
Triton gives each thread all the e of its (i, j) pairs, so the sum over e is
each thread's own additions (no shuffles).  Blocks above the diagonal of a
causal input are skipped.  A padded batch is one launch: the grid's third
axis is the row, and each program masks the positions outside its row's tokens
(whole blocks of padding return at once).  Float32 inputs are accumulated in float32,
float64 ones in float64.

Importing this module imports triton; :mod:`alti.core.contributions` does so
on first use on a CUDA device and falls back to torch where triton is missing.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import triton
import triton.language as tl


class Blocks(NamedTuple):
    """Targets, sources and output dimensions per program, and warps per program."""

    targets: int
    sources: int
    dims: int
    warps: int


#: 16 x 16 pairs x 32 dimensions with 4 warps: 64 accumulators per thread,
#: 156 registers and no spills on sm_90 (triton 3.9); chosen by reading the
#: generated code, before any timing on a GPU (``benchmarks/bench_gpu.py --blocks`` compares others).
BLOCKS = Blocks(16, 16, 32, 4)


@triton.jit
def _l1_kernel(
    att,
    att_b,
    att_h,
    att_i,
    att_j,  # attentions (B, H, N, N) and their strides
    heads_ptr,
    heads_b,
    heads_h,
    heads_j,
    heads_e,  # head vectors (B, H, N, d)
    res,
    res_b,
    res_j,
    res_e,  # residual vectors (B, N, d)
    y,
    y_b,
    y_i,
    y_e,  # outputs (B, N, d)
    out,
    out_b,
    out_i,
    out_j,  # contributions (B, N, N)
    starts,
    stops,  # int32 (B,): row b's tokens are positions starts[b] .. stops[b] - 1
    d,
    heads,
    LOWER: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b = tl.program_id(2)
    start = tl.load(starts + b)
    stop = tl.load(stops + b)
    i0 = tl.program_id(0) * BLOCK_I
    j0 = tl.program_id(1) * BLOCK_J
    if i0 >= stop or j0 >= stop or i0 + BLOCK_I <= start or j0 + BLOCK_J <= start:  # padding only
        return
    if LOWER and j0 >= i0 + BLOCK_I:  # every source after every target: nobody reads these
        return
    row = b.to(tl.int64)  # a row's offset can pass int32 (8 x 32 x 4096 x 4096 attentions)
    att += row * att_b
    heads_ptr += row * heads_b
    res += row * res_b
    y += row * y_b
    out += row * out_b
    rows = i0 + tl.arange(0, BLOCK_I)
    cols = j0 + tl.arange(0, BLOCK_J)
    dims = tl.arange(0, BLOCK_D)
    row_ok = (rows >= start) & (rows < stop)
    col_ok = (cols >= start) & (cols < stop)
    pairs = row_ok[:, None] & col_ok[None, :]
    diagonal = (i0 < j0 + BLOCK_J) and (j0 < i0 + BLOCK_I)
    same = rows[:, None] == cols[None, :]
    attention_block = att + rows[:, None] * att_i + cols[None, :] * att_j
    gains = tl.zeros([BLOCK_I, BLOCK_J], dtype=y.dtype.element_ty)
    for e0 in range(0, d, BLOCK_D):
        e = e0 + dims
        e_ok = e < d
        source_dims = col_ok[None, :] & e_ok[:, None]  # (e, j)
        y_block = y + rows[None, :] * y_i + e[:, None] * y_e
        target_ok = row_ok[None, :] & e_ok[:, None]
        target = tl.load(y_block, mask=target_ok, other=0.0)
        diff = tl.broadcast_to(target[:, :, None], [BLOCK_D, BLOCK_I, BLOCK_J])  # (e, i, j)
        if diagonal:
            residual = tl.load(res + cols[None, :] * res_j + e[:, None] * res_e, mask=source_dims, other=0.0)
            diff = tl.where(same[None, :, :], diff - residual[:, None, :], diff)
        weights = attention_block
        vectors = heads_ptr + cols[None, :] * heads_j + e[:, None] * heads_e
        for _ in range(heads):  # pointers step head by head: no offset h * stride overflows int32
            a = tl.load(weights, mask=pairs, other=0.0)  # (i, j)
            v = tl.load(vectors, mask=source_dims, other=0.0)  # (e, j)
            diff -= a[None, :, :] * v[:, None, :]
            weights += att_h
            vectors += heads_h
        # |y_i[e]| - |y_i[e] - T_i(x_j)[e]| is at most |T_i(x_j)[e]|: the sums stay on the
        # scale of the contribution, unlike ||y_i||_1 and the distance, whose difference
        # would cancel most of float32's digits.  y is read again (from cache) rather than
        # held through the loop over heads (64 more registers a thread); the other
        # eviction hint keeps the compiler from merging the two loads.
        target = tl.load(y_block, mask=target_ok, other=0.0, eviction_policy="evict_last")
        gains += tl.sum(tl.abs(target)[:, :, None] - tl.abs(diff), axis=0)
    tl.store(out + rows[:, None] * out_i + cols[None, :] * out_j, tl.maximum(gains, 0.0), mask=pairs)


def l1_contributions(
    attentions: torch.Tensor,
    head_vectors: torch.Tensor,
    residual: torch.Tensor,
    y: torch.Tensor,
    lower: bool = False,
    blocks: Blocks = BLOCKS,
) -> torch.Tensor:
    """``max(0, ||y_i||_1 - ||y_i - sum_h attentions[h, i, j] head_vectors[h, j] - [i == j] residual[j]||_1)``.

    Returns (n_i, n_j) in the inputs' dtype.  ``attentions`` (H, n, n),
    ``head_vectors`` (H, n, d), ``residual`` (n, d) and ``y`` (n, d): one
    float dtype (float32 or float64), one device, any strides.  ``lower``
    (causal attention): pairs with i < j are needed by no one; whole blocks of
    them are skipped and their values are 0, not computed (the caller zeroes
    those pairs).  ``blocks``: see :class:`Blocks`.
    """
    n = y.shape[0]
    batch = (attentions[None], head_vectors[None], residual[None], y[None])
    return l1_contributions_batch(*batch, [(0, n)], lower, blocks)[0]


def l1_contributions_batch(
    attentions: torch.Tensor,
    head_vectors: torch.Tensor,
    residual: torch.Tensor,
    y: torch.Tensor,
    spans: list[tuple[int, int]],
    lower: bool = False,
    blocks: Blocks = BLOCKS,
) -> torch.Tensor:
    """:func:`l1_contributions` of every row of a padded batch, in one launch.

    ``attentions`` (B, H, N, N), ``head_vectors`` (B, H, N, d), ``residual``
    and ``y`` (B, N, d); row b's tokens are positions ``spans[b] = (start, stop)``.
    Returns (B, N, N): row b's pairs at ``[b, start:stop, start:stop]``, zeros
    around them (padding) and in skipped blocks.  ``lower``: every row is causal.
    """
    rows, _, width, d = head_vectors.shape
    if y.dtype not in (torch.float32, torch.float64) or any(
        t.dtype != y.dtype for t in (attentions, head_vectors, residual)
    ):
        raise ValueError("l1_contributions: float32 or float64 tensors of one dtype expected")
    if len(spans) != rows:
        raise ValueError(f"l1_contributions_batch: {len(spans)} spans for {rows} rows")
    heads = attentions.shape[1]
    out = torch.zeros((rows, width, width), dtype=y.dtype, device=y.device)
    starts, stops = torch.tensor(spans, dtype=torch.int32).T.contiguous().to(y.device)
    grid = (triton.cdiv(width, blocks.targets), triton.cdiv(width, blocks.sources), rows)
    # triton launches on the current CUDA device, which need not be the tensors' one
    with torch.cuda.device(y.device) if y.is_cuda else contextlib.nullcontext():
        _l1_kernel[grid](
            attentions,
            *attentions.stride(),
            head_vectors,
            *head_vectors.stride(),
            residual,
            *residual.stride(),
            y,
            *y.stride(),
            out,
            *out.stride(),
            starts,
            stops,
            d,
            heads,
            LOWER=lower,
            BLOCK_I=blocks.targets,
            BLOCK_J=blocks.sources,
            BLOCK_D=blocks.dims,
            num_warps=blocks.warps,
            num_stages=1,
            enable_fp_fusion=True,
        )
    return out
