"""A fused CPU kernel for ALTI's L1 distances (numba).

``||sigma_i (y_i - T_i(x_j))||_1`` for every pair needs ``n^2 d K``
multiply-adds; done with torch ops it also streams an n x n x d tensor through
memory several times.  This kernel updates the residuals of four targets
together in L1 cache, reading each source vector once per four targets, and
never materialises more.  Calls are
serialised by a lock: numba's workqueue threading layer must not be entered
from two Python threads at once (the TUI runs explanations in workers).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange

if "NUMBA_THREADING_LAYER" not in os.environ:
    # OpenMP workers spin after each parallel region and would steal the cores
    # from the torch operations that follow; workqueue workers sleep.
    numba.config.THREADING_LAYER = "workqueue"

SOURCE_BLOCK = 4  # sources a task runs on each group of targets (rows of out reused from L1)

_LOCK = threading.Lock()


@njit(parallel=True, fastmath=True, cache=True)
def _l1_distances(attentions, sources, residuals, out, block):  # pragma: no cover - compiled
    """Register blocking: four targets at a time, four heads per pass.

    Each pass over ``e`` loads four source vectors once and updates the
    residuals of four targets (16 multiply-adds per 4 source loads; the
    residuals stay in L1).  A task takes ``block`` sources, and runs them one
    after the other on each group of targets, so those targets' rows of
    ``out`` are read once per block.
    """
    heads, n_i, n_j = attentions.shape
    d = out.shape[1]
    dist = np.empty((n_i, n_j), dtype=out.dtype)
    for b in prange((n_j + block - 1) // block):
        t = np.empty((4, d), dtype=out.dtype)
        w = np.zeros((4, heads), dtype=out.dtype)  # rows past the last target stay 0
        ta, tb, tc, td = t[0], t[1], t[2], t[3]
        wa, wb, wc, wd = w[0], w[1], w[2], w[3]
        for i0 in range(0, n_i, 4):
            rows = min(4, n_i - i0)
            for j in range(b * block, min(n_j, (b + 1) * block)):
                for r in range(rows):
                    t[r, :] = out[i0 + r]
                    for h in range(heads):
                        w[r, h] = attentions[h, i0 + r, j]
                h = 0
                while h + 4 <= heads:
                    s0, s1, s2, s3 = sources[h, j], sources[h + 1, j], sources[h + 2, j], sources[h + 3, j]
                    wa0, wa1, wa2, wa3 = wa[h], wa[h + 1], wa[h + 2], wa[h + 3]
                    wb0, wb1, wb2, wb3 = wb[h], wb[h + 1], wb[h + 2], wb[h + 3]
                    wc0, wc1, wc2, wc3 = wc[h], wc[h + 1], wc[h + 2], wc[h + 3]
                    wd0, wd1, wd2, wd3 = wd[h], wd[h + 1], wd[h + 2], wd[h + 3]
                    for e in range(d):
                        x0, x1, x2, x3 = s0[e], s1[e], s2[e], s3[e]
                        ta[e] -= wa0 * x0 + wa1 * x1 + wa2 * x2 + wa3 * x3
                        tb[e] -= wb0 * x0 + wb1 * x1 + wb2 * x2 + wb3 * x3
                        tc[e] -= wc0 * x0 + wc1 * x1 + wc2 * x2 + wc3 * x3
                        td[e] -= wd0 * x0 + wd1 * x1 + wd2 * x2 + wd3 * x3
                    h += 4
                while h < heads:
                    sh = sources[h, j]
                    w0, w1, w2, w3 = wa[h], wb[h], wc[h], wd[h]
                    for e in range(d):
                        x0 = sh[e]
                        ta[e] -= w0 * x0
                        tb[e] -= w1 * x0
                        tc[e] -= w2 * x0
                        td[e] -= w3 * x0
                    h += 1
                if i0 <= j < i0 + rows:  # the residual, weight [i == j]
                    tr = t[j - i0]
                    residual = residuals[j]
                    for e in range(d):
                        tr[e] -= residual[e]
                for r in range(rows):
                    tr = t[r]
                    total = 0.0
                    for e in range(d):
                        total += abs(tr[e])
                    dist[i0 + r, j] = total
    return dist


def l1_distances(
    attentions: np.ndarray, heads: np.ndarray, residuals: np.ndarray, out: np.ndarray, threads: int
) -> np.ndarray:
    """``||out_i - sum_h attentions[h, i, j] heads[h, j] - [i == j] residuals[j]||_1``.

    Returns (n_i, n_j).  ``attentions`` (H, n_i, n_j), ``heads`` (H, n_j, d),
    ``residuals`` (n_j, d), ``out`` (n_i, d), all C-contiguous and of one float dtype.
    """
    with _LOCK:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        return _l1_distances(attentions, heads, residuals, out, SOURCE_BLOCK)
