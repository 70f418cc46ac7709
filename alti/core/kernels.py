"""A fused CPU kernel for ALTI's L1 distances (numba).

``||sigma_i (y_i - T_i(x_j))||_1`` for every pair needs ``n^2 d K``
multiply-adds; done with torch ops it also streams an n x n x d tensor through
memory several times.  This kernel keeps one d-vector in L1 cache per pair and
one block of sources in L2, and never materialises more.  Calls are
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

SOURCE_BLOCK = 8  # sources whose vectors (K x d each) stay in L2 while targets stream by

_LOCK = threading.Lock()


@njit(parallel=True, fastmath=True, cache=True)
def _l1_distances(attentions, sources, out, block):  # pragma: no cover - compiled
    heads, n_i, n_j = attentions.shape
    d = sources.shape[2]
    dist = np.empty((n_i, n_j), dtype=out.dtype)
    blocks = (n_j + block - 1) // block
    for b in prange(blocks):
        t = np.empty(d, dtype=out.dtype)
        for i in range(n_i):
            y = out[i]
            for j in range(b * block, min(n_j, (b + 1) * block)):
                src = sources[j]
                for e in range(d):
                    t[e] = y[e]
                h = 0
                while h + 4 <= heads:
                    w0, w1 = attentions[h, i, j], attentions[h + 1, i, j]
                    w2, w3 = attentions[h + 2, i, j], attentions[h + 3, i, j]
                    s0, s1, s2, s3 = src[h], src[h + 1], src[h + 2], src[h + 3]
                    for e in range(d):
                        t[e] -= w0 * s0[e] + w1 * s1[e] + w2 * s2[e] + w3 * s3[e]
                    h += 4
                while h < heads:
                    wh = attentions[h, i, j]
                    sh = src[h]
                    for e in range(d):
                        t[e] -= wh * sh[e]
                    h += 1
                if i == j:  # the residual
                    residual = src[heads]
                    for e in range(d):
                        t[e] -= residual[e]
                total = 0.0
                for e in range(d):
                    total += abs(t[e])
                dist[i, j] = total
    return dist


def l1_distances(
    attentions: np.ndarray, sources: np.ndarray, out: np.ndarray, threads: int
) -> np.ndarray:
    """``||out_i - sum_h attentions[h, i, j] sources[j, h] - [i == j] sources[j, H]||_1``.

    Returns (n_i, n_j).  ``attentions`` (H, n_i, n_j), ``sources`` (n_j, K, d), ``out`` (n_i, d), all
    C-contiguous and of one float dtype.
    """
    with _LOCK:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        return _l1_distances(attentions, sources, out, SOURCE_BLOCK)
