"""The fused CPU kernel, the torch chunked path and the fallback agree."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from alti import Explainer
from alti.capture import LayerView, capture
from alti.core import contributions
from tests.conftest import tiny_model

TEXT = "the plot is thin but the acting is great"


def _decompositions(dtype):
    ex = Explainer(*tiny_model("bert", dtype))
    ids = torch.tensor([ex.encode(TEXT)])
    trace = capture(ex.model, ex.adapter, ids)
    return [
        LayerView(layer, modules, 0, ids.shape[1], dtype).decomposition
        for layer, modules in zip(trace.layers, ex.adapter.layers)
    ]


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_kernel_equals_torch_chunks(dtype, tol):
    kernels = pytest.importorskip("alti.core.kernels")
    for dec in _decompositions(dtype):
        fused = kernels.l1_distances(
            dec.attentions.contiguous().numpy(),
            dec.head_vectors.numpy(),
            dec.residual.numpy(),
            dec.scaled_output.numpy(),
            2,
        )
        n, _, d = dec.vectors.shape
        # a 3-target chunk: several chunks and a partial last one
        chunked = contributions.l1_distances_torch(dec, chunk_bytes=3 * n * d * dec.vectors.element_size())
        scale = np.abs(fused).max()
        np.testing.assert_allclose(fused / scale, chunked.numpy() / scale, atol=tol)


def test_alti_without_the_kernel_is_the_same(monkeypatch):
    decs = _decompositions(torch.float64)
    fused = [contributions.alti_l1(dec) for dec in decs]
    monkeypatch.setattr(contributions, "_cpu_kernel", lambda: None)
    for dec, expected in zip(decs, fused):
        torch.testing.assert_close(contributions.alti_l1(dec), expected, atol=1e-12, rtol=0)


def test_alti_falls_back_to_torch_where_the_kernel_cannot_be_built(monkeypatch):
    kernels = pytest.importorskip("alti.core.kernels")
    decs = _decompositions(torch.float64)
    fused = [contributions.alti_l1(dec) for dec in decs]

    def no_llvm(dtype=np.float32):
        raise RuntimeError("no LLVM target for this host")

    monkeypatch.setattr(kernels, "compile_kernel", no_llvm)
    contributions._cpu_kernel.cache_clear()
    try:
        assert contributions._cpu_kernel() is None
        for dec, expected in zip(decs, fused):
            torch.testing.assert_close(contributions.alti_l1(dec), expected, atol=1e-12, rtol=0)
    finally:
        contributions._cpu_kernel.cache_clear()


def test_concurrent_explanations_agree():
    ex = Explainer(*tiny_model("distilbert", torch.float64))
    expected = ex.explain(TEXT, methods=["alti"]).scores["alti"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ex.explain(TEXT, methods=["alti"]), range(8)))
    for e in results:
        np.testing.assert_allclose(e.scores["alti"], expected, atol=1e-12)


@pytest.mark.parametrize("vector_bytes", [32, 64])
@pytest.mark.parametrize("heads, n", [(1, 1), (3, 2), (4, 5), (5, 7), (12, 9), (13, 6)])
def test_kernel_equals_a_direct_sum_for_ragged_shapes(heads, n, vector_bytes):
    """Target groups of 4, head groups of 4 and source blocks with remainders."""
    kernels = pytest.importorskip("alti.core.kernels")
    rng = np.random.default_rng(heads * 100 + n)
    d = 11
    attentions = rng.random((heads, n, n))
    vectors = rng.standard_normal((heads, n, d))
    residuals = rng.standard_normal((n, d))
    out = rng.standard_normal((n, d))
    expected = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            mixed = sum(attentions[h, i, j] * vectors[h, j] for h in range(heads))
            expected[i, j] = np.abs(out[i] - mixed - (i == j) * residuals[j]).sum()
    distances = kernels.l1_distances(attentions, vectors, residuals, out, 2, vector_bytes)
    np.testing.assert_allclose(distances, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("heads, n, d", [(1, 1, 1), (3, 17, 5), (12, 33, 13), (2, 16, 7), (12, 7, 768)])
@pytest.mark.parametrize("vector_bytes", [32, 64])
@pytest.mark.parametrize("threading", ["openmp team", "own pool"])
def test_kernel_equals_torch_on_strided_inputs(dtype, rtol, heads, n, d, vector_bytes, threading, monkeypatch):
    """Tiles with a partial last one, n = 1, d not a multiple of the register block or
    vector width, inputs cut out of padded buffers (as from a padded batch), threads > n;
    AVX-2 and AVX-512 widths (LLVM splits the wider vectors where the CPU lacks them);
    threads from torch's OpenMP team and from the kernel's own pool."""
    kernels = pytest.importorskip("alti.core.kernels")
    if threading == "own pool":
        monkeypatch.setattr(kernels, "_team_runner", lambda: None)
    elif kernels._team_runner() is None:
        pytest.skip("torch runs without libgomp here")
    rng = np.random.default_rng(heads * 1000 + n * 10 + d)
    pad = 3
    attentions = rng.random((heads, n + pad, n + pad)).astype(dtype)[:, :n, :n]
    vectors = rng.standard_normal((heads, n + pad, d + pad)).astype(dtype)[:, :n, :d]
    residuals = rng.standard_normal((n, d + pad)).astype(dtype)[:, :d]
    out = rng.standard_normal((n, d)).astype(dtype)
    a, v, r, y = (torch.from_numpy(np.asarray(t, np.float64)) for t in (attentions, vectors, residuals, out))
    mixed = torch.einsum("hij,hjd->ijd", a, v) + torch.eye(n, dtype=torch.float64)[:, :, None] * r
    expected = (y[:, None, :] - mixed).abs().sum(-1).numpy()
    for threads in (1, 2, 5):
        distances = kernels.l1_distances(attentions, vectors, residuals, out, threads, vector_bytes)
        assert distances.shape == (n, n) and distances.dtype == np.float64
        np.testing.assert_allclose(distances, expected, rtol=rtol, atol=rtol * d)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_kernel_in_a_forked_child_does_not_wait_for_the_parents_threads():
    """A forked child has the parent's thread pool object but none of its threads."""
    kernels = pytest.importorskip("alti.core.kernels")
    rng = np.random.default_rng(7)
    n, d = 40, 24
    args = (
        rng.random((3, n, n)),
        rng.standard_normal((3, n, d)),
        rng.standard_normal((n, d)),
        rng.standard_normal((n, d)),
    )
    expected = kernels.l1_distances(*args, 2)  # the parent's pool is running
    with multiprocessing.get_context("fork").Pool(1) as pool:
        distances = pool.apply_async(kernels.l1_distances, (*args, 2)).get(timeout=120)
    np.testing.assert_allclose(distances, expected, rtol=1e-12)


@pytest.mark.parametrize("vector_bytes", [32, 64])
@pytest.mark.parametrize("n", [1, 5, 16, 33, 70])
def test_lower_kernel_skips_only_pairs_above_the_diagonal(n, vector_bytes):
    """With causal attention, ``lower`` computes every pair with i >= j exactly as the full kernel."""
    kernels = pytest.importorskip("alti.core.kernels")
    rng = np.random.default_rng(n)
    heads, d = 3, 13
    attentions = np.tril(rng.random((heads, n, n)))
    vectors, residuals, out = (
        rng.standard_normal((heads, n, d)),
        rng.standard_normal((n, d)),
        rng.standard_normal((n, d)),
    )
    full = kernels.l1_distances(attentions, vectors, residuals, out, 2, vector_bytes)
    lower = kernels.l1_distances(attentions, vectors, residuals, out, 2, vector_bytes, lower=True)
    below = np.tril(np.ones((n, n), dtype=bool))
    np.testing.assert_array_equal(lower[below], full[below])


@pytest.mark.skipif(sys.platform != "linux", reason="torch's Linux wheels run on libgomp")
def test_the_kernel_runs_on_torchs_openmp_team(monkeypatch):
    """Its threads are torch's own (libgomp's GOMP_parallel), not a second set competing
    with torch's for the cores: one team call per kernel call, the kernel's pool untouched."""
    kernels = pytest.importorskip("alti.core.kernels")
    runner = kernels._team_runner()
    if "OpenMP" in torch.__config__.parallel_info():
        assert runner is not None
    if runner is None:
        pytest.skip("torch runs without libgomp here")
    calls = []

    def counting(entry, block, team, flags):
        calls.append(team)
        runner(entry, block, team, flags)

    monkeypatch.setattr(kernels, "_team_runner", lambda: counting)
    monkeypatch.setattr(kernels, "_pool", lambda: pytest.fail("the kernel's own pool was used"))
    rng = np.random.default_rng(3)
    n, d = 40, 24
    args = (
        rng.random((3, n, n)),
        rng.standard_normal((3, n, d)),
        rng.standard_normal((n, d)),
        rng.standard_normal((n, d)),
    )
    np.testing.assert_allclose(kernels.l1_distances(*args, 2), kernels.l1_distances(*args, 1), rtol=1e-12)
    assert calls == [2]
