"""``explain_batch`` on the GPU path: each layer of a batch decomposed at once, ALTI's L1 one launch.

There is no GPU here: as in ``test_triton_l1``, a child process (this module
run with ``-m``, TRITON_INTERPRET=1) routes CPU tensors through the Triton
kernel, as CUDA ones would go, and explains a batch of texts of different
lengths; this process asserts that every method's scores and per-layer
matrices equal those of the same batch explained row by row here (the CPU
kernel, on the same forward pass: a decoder's rotary tables differ in the
last float32 digits between batch shapes), and that the batch really ran as
batches: one launch per layer and group, none per row.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engine.test_triton_l1 import HAS_TRITON

pytestmark = [pytest.mark.gpu, pytest.mark.subprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "a warm , funny and beautifully acted film about two brothers",
    "dull",
    "the plot is thin but the acting is great and the music is lovely",
    "not bad at all",
    "an overlong , self - indulgent mess",
]
ENCODER_METHODS = ["alti", "alti_l2", "norm_rollout", "globenc", "rollout", "attention"]
DECODER_METHODS = ["alti", "alti_logit", "alti_l2", "norm_rollout", "rollout"]
#: (name, maths dtype, batch size, group budget in bytes or None for the default)
CASES = [
    ("demo", torch.float64, 5, None),
    ("demo", torch.float32, 4, None),
    ("demo", torch.float64, 5, 1_000_000),  # groups of a row or two
    ("llama right", torch.float64, 5, None),
    ("llama left", torch.float32, 5, None),  # padding on the left (float64's eager mask gives NaN there)
]


def explainer(name: str, dtype: torch.dtype):
    from alti import Explainer
    from tests.conftest import tiny_pre_ln

    if name == "demo":
        demo = Explainer.from_pretrained("demo", device="cpu")
        return Explainer(demo.model.to(dtype), demo.tokenizer), ENCODER_METHODS
    model, tokenizer = tiny_pre_ln("llama", dtype=dtype)
    tokenizer = copy.deepcopy(tokenizer)  # the tests' tokenizer is shared: the copy pads on its own side
    tokenizer.padding_side = "left" if name.endswith("left") else "right"
    ex = Explainer(model, tokenizer)
    assert ex.left_padding == name.endswith("left")
    return ex, DECODER_METHODS


def results(explanations) -> list[dict]:
    return [{"scores": e.scores, "layers": e.layers} for e in explanations]


def child(outputs: str) -> None:
    """In the child (TRITON_INTERPRET=1): explain_batch with the kernel's launches counted."""
    import alti.explainer
    from alti.capture import BatchLayer
    from alti.core import contributions, triton_l1
    from alti.methods import METHODS

    launches = []
    single, batched = triton_l1.l1_contributions, triton_l1.l1_contributions_batch

    class Counted:
        @staticmethod
        def l1_contributions(*args, **kwargs):
            launches.append(1)
            return single(*args, **kwargs)

        @staticmethod
        def l1_contributions_batch(attentions, *args, **kwargs):
            launches.append(attentions.shape[0])
            return batched(attentions, *args, **kwargs)

    contributions._cpu_kernel = lambda: None  # CPU tensors stand in for CUDA ones here
    contributions.triton_kernel = lambda device: Counted
    row_calls = []  # methods with a batched form, computed for one row alone

    def counted(compute, name):
        def compute_counted(layer):
            if not isinstance(layer, BatchLayer):
                row_calls.append(name)
            return compute(layer)

        return compute_counted

    for name, method in list(METHODS.items()):
        if method.batched:
            METHODS[name] = dataclasses.replace(method, compute=counted(method.compute, name))
    out = []
    for name, dtype, batch_size, budget in CASES:
        if budget is not None:
            alti.explainer.BATCH_BYTES = budget
        ex, methods = explainer(name, dtype)
        launches.clear()
        row_calls.clear()
        explained = ex.explain_batch(TEXTS, methods=methods, batch_size=batch_size)
        out.append(
            {
                "results": results(explained),
                "launches": list(launches),
                "layers": ex.adapter.num_layers,
                "row calls": sorted(set(row_calls)),
                "row call count": len(row_calls),
            }
        )
        alti.explainer.BATCH_BYTES = 2 * 2**30
    decomposed = []
    import alti.core.decomposition as D

    whole = D.decompose_batch_post_ln  # the demo model's layers are post-LN
    D.decompose_batch_post_ln = lambda *args, **kwargs: decomposed.append(1) or whole(*args, **kwargs)
    ex, _ = explainer("demo", torch.float32)
    ex.explain_batch(TEXTS, methods=["rollout", "attention"], batch_size=5)
    counts = {"attention only": len(decomposed)}
    ex.explain_batch(TEXTS, methods=["alti", "alti_l2"], batch_size=5)
    counts["alti and alti_l2, per layer"] = (len(decomposed) - counts["attention only"]) / ex.adapter.num_layers
    torch.save({"cases": out, "decompositions": counts}, outputs)


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("batched") / "results.pt"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env.pop("ALTI_NO_TRITON", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.engine.test_batched_gpu_path", str(outputs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(outputs, weights_only=False)


needs_triton = pytest.mark.skipif(
    not HAS_TRITON, reason="triton is not installed: its interpreter runs the kernel here"
)


@needs_triton
@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]} {c[1]} batch {c[2]} budget {c[3]}" for c in CASES])
def test_a_batch_equals_its_texts_one_by_one(batched, case):
    name, dtype, batch_size, _ = CASES[case]
    ex, methods = explainer(name, dtype)
    tolerance = 1e-12 if dtype == torch.float64 else 2e-6
    row_by_row = ex.explain_batch(TEXTS, methods=methods, batch_size=batch_size)
    for text, got, alone in zip(TEXTS, batched["cases"][case]["results"], row_by_row):
        assert set(got["scores"]) == set(methods)
        for method in methods:
            np.testing.assert_allclose(
                got["scores"][method],
                alone.scores[method],
                atol=tolerance,
                rtol=0,
                err_msg=f"{name} {method}: {text!r}",
            )
            if method in alone.layers:
                np.testing.assert_allclose(
                    got["layers"][method],
                    alone.layers[method],
                    atol=tolerance,
                    rtol=0,
                    err_msg=f"{name} {method} layers: {text!r}",
                )


@needs_triton
def test_each_layer_of_a_batch_is_one_launch(batched):
    """Batches of 5 and of 4 (+1 left over): one launch per layer holding every row; with a
    small budget, groups (several rows where they fit) but still no row left over to itself
    more than the budget forces."""
    cases = batched["cases"]
    full = cases[0]
    assert full["launches"] == [5] * full["layers"]
    assert cases[1]["launches"] == ([4] * cases[1]["layers"] + [1] * cases[1]["layers"])
    small = cases[2]["launches"]
    assert sum(small) == 5 * cases[2]["layers"] and max(small) > 1 and len(small) > cases[2]["layers"]
    for decoder in cases[3:]:
        assert decoder["launches"] == [5] * decoder["layers"]


@needs_triton
def test_methods_with_a_batched_form_never_run_row_by_row_in_a_batch(batched):
    """ALTI, attention, rollout, norm rollout and GlobEnc run once per layer and group; only a
    batch's single left-over row (the batch of 4 + 1) computes them alone."""
    cases = batched["cases"]
    assert cases[0]["row call count"] == 0 and cases[3]["row call count"] == 0
    with_batched_forms = {"alti", "attention", "rollout", "norm_rollout", "globenc"}
    assert set(cases[1]["row calls"]) == with_batched_forms & set(ENCODER_METHODS)
    assert cases[1]["row call count"] == len(cases[1]["row calls"]) * cases[1]["layers"]


@needs_triton
def test_a_layer_is_decomposed_once_and_only_when_a_method_needs_it(batched):
    """Attention and its rollout read no decomposition: none is made; ALTI and ALTI-L2 share one per layer."""
    assert batched["decompositions"] == {"attention only": 0, "alti and alti_l2, per layer": 1}


def test_groups_fit_head_vectors_and_attention_in_the_budget(monkeypatch):
    """Two 100-token rows of the demo model in float32: 3.7 MB of head vectors (12 x 100 x 384
    floats each) and 0.96 MB of attention (12 x 100 x 100): a 4 MB budget takes them one by one."""
    import alti.explainer
    from alti.core import contributions

    ex, _ = explainer("demo", torch.float32)
    monkeypatch.setattr(contributions, "triton_kernel", lambda device: object())
    rows, starts = [[1] * 100] * 3, [0, 0, 0]
    monkeypatch.setattr(alti.explainer, "BATCH_BYTES", 4_000_000)
    assert ex._groups(rows, starts) == [[0], [1], [2]]
    monkeypatch.setattr(alti.explainer, "BATCH_BYTES", 2 * 100 * (384 + 100) * 12 * 4)
    assert ex._groups(rows, starts) == [[0, 1], [2]]
    monkeypatch.setattr(alti.explainer, "BATCH_BYTES", 2 * 2**30)
    assert ex._groups(rows, starts) == [[0, 1, 2]]
    assert ex._groups(rows[:1], starts[:1]) == [[0]]


@pytest.mark.parametrize(
    "name, dtype", [("demo", torch.float64), ("llama right", torch.float64), ("llama left", torch.float32)]
)
def test_a_batch_decomposition_row_equals_the_row_decomposed_alone(name, dtype):
    """Each row of a batch decomposition equals the row decomposed alone: every array and ALTI,
    ALTI-L2 and the norms of its view, and the batch's own ALTI (row by row without triton, as
    here on the CPU) and norms."""
    from alti import core
    from alti.capture import batch_decomposition, capture

    ex, _ = explainer(name, dtype)
    ids = [ex.encode(text) for text in TEXTS]
    input_ids, mask, positions, starts = ex._pad(ids)
    with torch.inference_mode():
        trace = capture(ex.model, ex.adapter, input_ids, mask, positions)
    spans = [(start, start + len(row)) for start, row in zip(starts, ids)]
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for layer, modules in zip(trace.layers, ex.adapter.layers):
        batch = batch_decomposition(layer, modules, list(range(len(ids))), spans, dtype, ex.adapter.num_heads, {})
        batch_alti = batch.rows_of(core.alti_l1(batch))
        batch_norms = batch.rows_of(core.norms_of_mixtures(batch.weights, batch.vectors))
        for k, (start, row) in enumerate(zip(starts, ids)):
            alone = ex._view(layer, modules, k, start, len(row)).decomposition
            together = batch.row(k)
            for field in ("attentions", "head_vectors", "residual", "scaled_output", "bias"):
                torch.testing.assert_close(getattr(together, field), getattr(alone, field), atol=tolerance, rtol=0)
            for method in (core.alti_l1, core.alti_l2):
                torch.testing.assert_close(method(together), method(alone), atol=tolerance, rtol=0)
            torch.testing.assert_close(
                core.norms_of_mixtures(together.weights, together.vectors),
                core.norms_of_mixtures(alone.weights, alone.vectors),
                atol=tolerance,
                rtol=0,
            )
            torch.testing.assert_close(batch_alti[k], core.alti_l1(alone), atol=tolerance, rtol=0)
            torch.testing.assert_close(
                batch_norms[k], core.norms_of_mixtures(alone.weights, alone.vectors), atol=tolerance, rtol=0
            )


def test_the_cpu_explains_row_by_row():
    """Without the Triton kernel (the CPU, ALTI_NO_TRITON=1) no batch is decomposed at once."""
    ex, _ = explainer("demo", torch.float32)
    starts = [0] * len(TEXTS)
    assert ex._groups([ex.encode(t) for t in TEXTS], starts) == [[row] for row in range(len(TEXTS))]


if __name__ == "__main__":
    child(sys.argv[1])
