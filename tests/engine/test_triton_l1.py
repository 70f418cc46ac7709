"""The Triton ALTI L1 kernel (CUDA) against the float64 torch path, and when alti uses it.

There is no GPU here: triton's interpreter runs the kernel on CPU tensors.
It must be switched on (TRITON_INTERPRET=1) before triton is first imported,
so the kernel runs in a child process (this module run with ``-m``) and the
variable never reaches this one; the child computes, this process asserts.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import alti.core
from alti.core import contributions
from alti.core.decomposition import PreLNDecomposition

pytestmark = [pytest.mark.gpu, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[2]
HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(
    not HAS_TRITON, reason="triton is not installed (pip install triton): its interpreter runs the CUDA kernel here"
)
FIELDS = ("attentions", "head_vectors", "residual", "scaled_output")
TEXT = "a warm , funny and beautifully acted film about two brothers who open a bakery in a small town by the sea"


def random_case(n: int, heads: int, d: int, mask: str, seed: int) -> dict:
    """A decomposition with row-stochastic attention; ``mask``: none, causal or band
    (sources more than 3 away unreached, a pattern that is not causal)."""
    g = torch.Generator().manual_seed(seed)
    attentions = torch.rand(heads, n, n, generator=g, dtype=torch.float64)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    if mask == "causal":
        attentions[:, j > i] = 0
    elif mask == "band":
        attentions[:, (i - j).abs() > 3] = 0
    attentions /= attentions.sum(-1, keepdim=True)
    return {
        "name": f"random n={n} H={heads} d={d} {mask}",
        "attentions": attentions,
        "head_vectors": torch.randn(heads, n, d, generator=g, dtype=torch.float64),
        "residual": torch.randn(n, d, generator=g, dtype=torch.float64),
        "scaled_output": torch.randn(n, d, generator=g, dtype=torch.float64) * 3,
    }


def model_cases(name: str, ex) -> list[dict]:
    """The first and the last layer's decompositions of TEXT (float64), by the explainer's own views."""
    from alti.capture import capture

    ids = ex.encode(TEXT)
    input_ids, mask, positions, starts = ex._pad([ids])
    with torch.inference_mode():
        trace = capture(ex.model, ex.adapter, input_ids, mask, positions)
    cases = []
    for index in (0, len(trace.layers) - 1):
        dec = ex._view(trace.layers[index], ex.adapter.layers[index], 0, starts[0], len(ids)).decomposition
        cases.append({"name": f"{name} layer {index}", **{f: getattr(dec, f).clone() for f in FIELDS}})
    return cases


def all_cases() -> list[dict]:
    from alti import Explainer
    from tests.conftest import tiny_pre_ln

    demo = Explainer.from_pretrained("demo", device="cpu")
    demo = Explainer(demo.model.double(), demo.tokenizer)
    llama = Explainer(*tiny_pre_ln("llama"))
    cases = [
        random_case(37, 3, 20, "none", 0),  # n and d not multiples of the blocks (16 x 16 x 32)
        random_case(50, 4, 70, "causal", 1),
        random_case(33, 12, 48, "band", 2),
        random_case(16, 2, 32, "none", 3),  # exactly one block
        random_case(1, 1, 5, "none", 4),
        {**random_case(29, 5, 40, "causal", 5), "strided": True},
    ]
    return cases + model_cases("demo", demo) + model_cases("tiny llama", llama)


def decomposition(case: dict, dtype=torch.float64) -> PreLNDecomposition:
    """The four tensors the L1 distances read, in one container (its ``unreached`` and ``causal``)."""
    tensors = {f: case[f].to(dtype) for f in FIELDS}
    return PreLNDecomposition(**tensors, bias=torch.zeros(tensors["residual"].shape[-1], dtype=dtype))


def strided(case: dict) -> dict:
    """The same values in non-contiguous layouts, as a padded batch's views give them."""
    heads, n, _ = case["attentions"].shape
    padded = case["attentions"].new_zeros(heads, n + 5, n + 7)
    padded[:, 2 : 2 + n, 3 : 3 + n] = case["attentions"]
    return {
        **case,
        "attentions": padded[:, 2 : 2 + n, 3 : 3 + n],
        "head_vectors": case["head_vectors"].transpose(1, 2).contiguous().transpose(1, 2),
        "scaled_output": case["scaled_output"].t().contiguous().t(),
    }


def child(inputs: str, outputs: str) -> None:
    """In the child (TRITON_INTERPRET=1): the kernel's output and ``alti_l1`` routed through it."""
    from alti.core import triton_l1

    contributions._cpu_kernel = lambda: None  # CPU tensors stand in for CUDA ones here
    contributions.triton_kernel = lambda device: triton_l1
    results = []
    for case in torch.load(inputs):
        case = strided(case) if case.get("strided") else case
        dec = decomposition(case)
        kernel = triton_l1.l1_contributions(
            dec.attentions, dec.head_vectors, dec.residual, dec.scaled_output, lower=dec.causal
        )
        alti = {
            str(dtype): contributions.alti_l1(decomposition(case, dtype)) for dtype in (torch.float64, torch.float32)
        }
        results.append({"contributions": kernel, "alti": alti})
    torch.save(results, outputs)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """(case, float64 torch reference, the child's results) for every case."""
    cases = all_cases()
    folder = tmp_path_factory.mktemp("triton")
    inputs, outputs = folder / "cases.pt", folder / "results.pt"
    torch.save(cases, inputs)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env.pop("ALTI_NO_TRITON", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.engine.test_triton_l1", str(inputs), str(outputs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = torch.load(outputs)
    return [(case, decomposition(case), result) for case, result in zip(cases, results)]


def clamped(dec: PreLNDecomposition, chunk_bytes: int = contributions.CHUNK_BYTES) -> torch.Tensor:
    """``max(0, ||y_i||_1 - ||y_i - T_i(x_j)||_1)`` by torch's chunks (float64 here)."""
    distances = contributions.l1_distances_torch(dec, chunk_bytes)
    return (dec.scaled_output.abs().sum(-1, keepdim=True) - distances).clamp_min(0)


@needs_triton
def test_float64_kernel_equals_the_torch_chunks(interpreted):
    for case, dec, result in interpreted:
        n, _, d = dec.vectors.shape
        expected = clamped(dec, chunk_bytes=3 * n * d * 8)  # several chunks and a partial last one
        got = result["contributions"]
        needed = ~torch.ones(n, n, dtype=torch.bool).triu(1) if dec.causal else torch.ones(n, n, dtype=torch.bool)
        scale = dec.scaled_output.abs().sum(-1).max()
        assert got.dtype == torch.float64, case["name"]
        torch.testing.assert_close(got[needed] / scale, expected[needed] / scale, atol=1e-13, rtol=0, msg=case["name"])
        if dec.causal:  # the skipped blocks are zeros, not uninitialised memory
            assert (got[~needed] == 0).all(), case["name"]


@needs_triton
def test_float32_alti_is_within_1e_5_of_float64(interpreted):
    for case, dec, result in interpreted:
        expected = clamped(dec)
        if dec.unreached is not None:
            expected[dec.unreached] = 0
        reference = contributions.normalize_rows(expected)
        got = result["alti"][str(torch.float32)]
        assert got.dtype == torch.float32, case["name"]
        assert (got.double() - reference).abs().max() <= 1e-5, case["name"]
        torch.testing.assert_close(result["alti"][str(torch.float64)], reference, atol=1e-12, rtol=0, msg=case["name"])


@needs_triton
def test_unreached_pairs_are_exactly_zero(interpreted):
    masked = [(case, dec, result) for case, dec, result in interpreted if dec.unreached is not None]
    assert {"causal", "band"} <= {case["name"].split()[-1] for case, _, _ in masked}
    assert any(case["name"].startswith("tiny llama") for case, _, _ in masked)
    for case, dec, result in masked:
        for dtype in (torch.float32, torch.float64):
            alti = result["alti"][str(dtype)]
            assert (alti[dec.unreached] == 0).all(), case["name"]
            assert (alti[~dec.unreached] > 0).any(), case["name"]


@needs_triton
@pytest.mark.parametrize("arch, dtype, lower", [(90, "fp32", True), (90, "fp32", False), (80, "fp64", True)])
def test_the_kernel_compiles_for_the_gpu(arch, dtype, lower, tmp_path, monkeypatch):
    """The interpreter runs Python the compiler may refuse: build the CUDA binary itself
    (triton ships the assembler; no GPU needed), strides of 1 specialised as a launch does."""
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # compiled here, not found in a cache
    from triton import compile as compile_kernel
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from alti.core import triton_l1

    kernel, blocks = triton_l1._l1_kernel, triton_l1.BLOCKS
    constants = dict(
        LOWER=lower,
        BLOCK_I=blocks.targets,
        BLOCK_J=blocks.sources,
        BLOCK_D=blocks.dims,
        att_j=1,
        heads_e=1,
        res_e=1,
        y_e=1,
        out_j=1,
    )
    pointers = {"att", "heads_ptr", "res", "y", "out"}
    signature = {
        name: "constexpr"
        if name in constants
        else f"*{dtype}"
        if name in pointers
        else "*i32"
        if name in {"starts", "stops"}
        else "i32"
        for name in kernel.arg_names
    }
    compiled = compile_kernel(
        ASTSource(kernel, signature, constexprs=constants),
        target=GPUTarget("cuda", arch, 32),
        options=dict(num_warps=blocks.warps, num_stages=1, enable_fp_fusion=True),
    )
    assert compiled.asm["cubin"]


def test_the_kernel_is_used_on_cuda_only_and_can_be_turned_off(monkeypatch):
    kernel = object()
    monkeypatch.setattr(contributions, "_triton", lambda: kernel)
    monkeypatch.delenv("ALTI_NO_TRITON", raising=False)
    assert contributions.triton_kernel(torch.device("cuda")) is kernel
    assert contributions.triton_kernel(torch.device("cuda", 1)) is kernel
    assert contributions.triton_kernel(torch.device("cpu")) is None
    assert contributions.triton_kernel(torch.device("mps")) is None
    monkeypatch.setenv("ALTI_NO_TRITON", "1")
    assert contributions.triton_kernel(torch.device("cuda")) is None


def test_without_triton_cuda_falls_back_to_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` raises ImportError
    monkeypatch.delitem(sys.modules, "alti.core.triton_l1", raising=False)
    monkeypatch.delattr(alti.core, "triton_l1", raising=False)  # an earlier import leaves it there
    monkeypatch.delenv("ALTI_NO_TRITON", raising=False)
    contributions._triton.cache_clear()
    try:
        assert contributions.triton_kernel(torch.device("cuda")) is None
    finally:
        contributions._triton.cache_clear()


@needs_triton
def test_with_triton_cuda_gets_the_kernel(monkeypatch):
    monkeypatch.delenv("ALTI_NO_TRITON", raising=False)
    contributions._triton.cache_clear()
    try:
        kernel = contributions.triton_kernel(torch.device("cuda"))
    finally:
        contributions._triton.cache_clear()
    assert kernel is not None and kernel.__name__ == "alti.core.triton_l1"


if __name__ == "__main__":
    child(*sys.argv[1:])
