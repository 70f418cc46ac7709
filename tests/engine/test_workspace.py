"""The per-thread workspace: buffers reused across layers and calls, never handed to the user."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

from alti import Explainer
from alti.capture import LayerView, capture
from alti.core import workspace
from alti.core.workspace import Workspace
from alti.methods import get_method
from tests.conftest import tiny_model

TEXT = "the plot is thin but the acting is great"
OTHER = "a dull film with no story and bad actors"  # as many tokens as TEXT


def test_a_role_reuses_its_buffer_and_grows_only_when_asked_for_more():
    ws = Workspace()
    a = ws.array("a", (4, 8), np.float32)
    assert a.flags.c_contiguous and a.ctypes.data % 64 == 0
    assert ws.array("a", (4, 8), np.float32).ctypes.data == a.ctypes.data
    assert ws.array("a", (2, 3), np.float64).ctypes.data == a.ctypes.data  # smaller: the same memory
    b = ws.array("b", (4, 8), np.float32)
    assert not np.shares_memory(a, b)
    grown = ws.array("a", (4, 9), np.float32)
    assert grown.shape == (4, 9) and ws.buffers["a"].nbytes == int(4 * 8 * 4 * workspace.GROWTH)
    t = ws.tensor("c", (3, 5), torch.float64)
    assert t.dtype == torch.float64 and t.shape == (3, 5)
    assert t.data_ptr() == ws.tensor("c", (5, 3), torch.float64).data_ptr()


def _pointers() -> dict[str, int]:
    return {role: buffer.ctypes.data for role, buffer in workspace.local().buffers.items()}


def _inside_workspace(array: np.ndarray) -> bool:
    return any(np.shares_memory(array, buffer) for buffer in workspace.local().buffers.values())


def test_repeated_explanations_reuse_the_workspace_and_never_alias_results():
    ex = Explainer(*tiny_model("bert"))
    assert len(ex.encode(TEXT)) == len(ex.encode(OTHER))
    first = ex.explain(TEXT, methods=["alti", "rollout", "norm_rollout"])
    pointers = _pointers()
    assert {"decomposition.head_vectors", "decomposition.scaled_output", "decomposition.weights"} <= set(pointers)
    scores = {m: v.copy() for m, v in first.scores.items()}
    layers = {m: v.copy() for m, v in first.layers.items()}

    second = ex.explain(OTHER, methods=["alti", "rollout", "norm_rollout"])
    assert _pointers() == pointers  # the same buffers, none reallocated
    for method in scores:  # the first call's results are untouched by the second
        np.testing.assert_array_equal(first.scores[method], scores[method])
        np.testing.assert_array_equal(first.layers[method], layers[method])
        assert not np.array_equal(second.layers[method], layers[method])
        for result in (first, second):
            assert not _inside_workspace(result.scores[method]) and not _inside_workspace(result.layers[method])


def test_results_equal_those_computed_without_a_workspace():
    ex = Explainer(*tiny_model("bert", torch.float64))
    ids = torch.tensor([ex.encode(TEXT)])
    trace = capture(ex.model, ex.adapter, ids)
    fresh = [LayerView(layer, m, 0, ids.shape[1], torch.float64) for layer, m in zip(trace.layers, ex.adapter.layers)]
    got = ex.layer_matrices(ex.encode(TEXT), ["alti", "norm_rollout", "alti_l2", "globenc"])
    for name, matrices in got.items():
        expected = np.stack([get_method(name).compute(view).numpy() for view in fresh])
        np.testing.assert_array_equal(matrices, expected)


def test_views_share_buffers_only_through_a_workspace():
    ex = Explainer(*tiny_model("bert"))
    ids = torch.tensor([ex.encode(TEXT)])
    layers = list(zip(capture(ex.model, ex.adapter, ids).layers, ex.adapter.layers))
    apart = [LayerView(t, m, 0, ids.shape[1], torch.float32).decomposition for t, m in layers]
    assert apart[0].head_vectors.data_ptr() != apart[1].head_vectors.data_ptr()
    ws = Workspace()
    shared = [LayerView(t, m, 0, ids.shape[1], torch.float32, workspace=ws).decomposition for t, m in layers]
    assert shared[0].head_vectors.data_ptr() == shared[1].head_vectors.data_ptr()
    torch.testing.assert_close(shared[1].head_vectors, apart[1].head_vectors, rtol=0, atol=0)


def test_threads_explaining_at_once_have_their_own_workspaces():
    ex = Explainer(*tiny_model("distilbert", torch.float64))
    expected = {text: ex.explain(text, methods=["alti", "rollout"]).scores for text in (TEXT, OTHER)}
    barrier = threading.Barrier(2)
    found: dict[str, tuple] = {}

    def run(text: str) -> None:
        barrier.wait()
        for _ in range(3):
            scores = ex.explain(text, methods=["alti", "rollout"]).scores
            for method, values in scores.items():
                np.testing.assert_array_equal(values, expected[text][method])
        found[text] = (id(workspace.local()), _pointers())

    threads = [threading.Thread(target=run, args=(text,)) for text in (TEXT, OTHER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (one, one_pointers), (two, two_pointers) = found.values()
    assert one != two and not set(one_pointers.values()) & set(two_pointers.values())


@pytest.mark.subprocess
@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"), reason="glibc only")
def test_freed_memory_is_kept_for_the_next_allocation_unless_turned_off():
    script = textwrap.dedent(
        """
        import ctypes, resource
        from alti.process import keep_freed_memory
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        print(keep_freed_memory())
        size, faults = 20 * 2**20, []
        for _ in range(6):  # two 20 MiB blocks written and freed, as a layer's attention scores are
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            blocks = [libc.malloc(size) for _ in range(2)]
            for block in blocks:
                ctypes.memset(block, 1, size)
            for block in blocks:
                libc.free(block)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(sum(faults[1:]))
        """
    )

    def run(**env):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, **env}
        )
        tuned, faults = out.stdout.split()
        return tuned == "True", int(faults)

    tuned, faults = run()
    assert tuned and faults < 100  # the 10,240 pages are reused, not faulted in again
    tuned, faults = run(ALTI_KEEP_FREED_MEMORY="0")
    assert not tuned and faults > 5 * 10_000  # malloc's defaults trim them off the heap every time


@pytest.mark.subprocess
def test_the_library_leaves_malloc_alone_and_the_entry_points_set_it():
    script = textwrap.dedent(
        """
        import io, contextlib
        from alti import Explainer, process
        Explainer.from_pretrained("demo", device="cpu").explain("A warm, funny film.", methods=["alti"])
        print(process.keep_freed_memory.cache_info().currsize)
        from alti.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            main(["explain", "A warm film.", "--format", "json", "--device", "cpu"])
        print(process.keep_freed_memory.cache_info().currsize)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1"]
