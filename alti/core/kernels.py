"""A register-tiled CPU kernel for ALTI's L1 distances (LLVM IR via llvmlite).

:func:`l1_distances` gives ``||y_i - sum_h A^h[i, j] f^h(x_j) - [i == j] r_j||_1`` for every
target i and source j without building the n x n x d tensor of transformed vectors.  For one
source, a register tile of targets (the SIMD lanes, two vectors of them) and six output
dimensions are accumulated across the loop over heads; sums are kept in float64.  The loop
nest is written as LLVM IR with vector types and compiled once per process for the host CPU
(:func:`compile_kernel`).  Threads take blocks of sources from a shared atomic counter; they
are torch's own OpenMP threads where torch runs on libgomp, else a thread pool of the kernel's
own.  Each block's head vectors are first copied into a block-major scratch, and the targets
are laid out by tiles.

Why it is built this way (numba, thread pools, the memory layout) and what was measured: the
developer documentation, *The CPU kernel* (``docs/developer/cpu-kernel.md``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np

from alti.core.workspace import Workspace, local

DIMS = 6  # output dimensions per register tile
VECTORS = 2  # SIMD vectors of targets per register tile
SOURCES = 4  # sources per block taken by a thread (their head vectors are copied together)
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_ARGS = (
    "sources",  # head vectors: element (h, j, e) at h * head_stride + j * source_stride + e
    "head_stride",
    "source_stride",
    "residuals",  # element (j, e) at j * residual_stride + e
    "residual_stride",
    "attentions",  # element (h, i, j) at h * attention_h + i * attention_i + j
    "attention_h",
    "attention_i",
    "targets",  # y by tiles of targets, zero-padded: element (e, i) at (i // tile * d + e) * tile + i % tile
    "width",  # targets rounded up to a whole tile
    "n_targets",
    "heads",
    "d",
    "out",  # float64 distances: element (j, i) at j * width + i
    "next_source",  # address of an int64 counter shared by the threads of one call, from 0
    "n_sources",
    "weights",  # scratch, heads * tile elements
    "rows",  # scratch, SOURCES * heads * d elements
    "lower",  # 1: only targets from the tile holding the block's first source on (causal inputs)
)


@functools.cache
def host_vector_bytes() -> int:
    """The SIMD width the kernel uses here: 64 bytes with AVX-512 (16 float32 targets), else 32."""
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:
        return 32
    return 64 if features.get("avx512f") else 32


class _Builder:
    """Emits the kernel for one scalar type; helpers keep the loop nest readable."""

    def __init__(self, module: ir.Module, name: str, scalar: ir.Type, lanes: int):
        self.scalar, self.lanes = scalar, lanes
        self.size = 4 if isinstance(scalar, ir.FloatType) else 8
        self.vec = ir.VectorType(scalar, lanes)
        self.sum_vec = ir.VectorType(ir.DoubleType(), lanes)  # running sums in float64
        suffix = f"v{lanes}f{self.size * 8}"
        self.fmuladd = ir.Function(module, ir.FunctionType(self.vec, [self.vec] * 3), f"llvm.fmuladd.{suffix}")
        self.fabs = ir.Function(module, ir.FunctionType(self.vec, [self.vec]), f"llvm.fabs.{suffix}")
        i8p = ir.IntType(8).as_pointer()
        self.memcpy = module.declare_intrinsic("llvm.memcpy", [i8p, i8p, _I64])
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [_I64] * len(_ARGS)), name)
        self.a = dict(zip(_ARGS, self.fn.args))
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))

    def const(self, value: int) -> ir.Constant:
        return ir.Constant(_I64, value)

    def address(self, base, index, kind=None):
        """Pointer to element ``index`` of the array at integer address ``base``."""
        b = self.b
        return b.inttoptr(b.add(base, b.mul(index, self.const(self.size))), (kind or self.scalar).as_pointer())

    def load_vector(self, base, index):
        return self.b.load(self.address(base, index, self.vec), align=self.size)

    def splat(self, value):
        b = self.b
        first = b.insert_element(ir.Constant(self.vec, ir.Undefined), value, ir.Constant(_I32, 0))
        zeros = ir.Constant(ir.VectorType(_I32, self.lanes), [0] * self.lanes)
        return b.shuffle_vector(first, ir.Constant(self.vec, ir.Undefined), zeros)

    def loop(self, start, stop, step, body, carried=()):
        """``for i in range(start, stop - step + 1, step)`` with loop-carried values.

        ``body(i, values)`` returns the new values (or None without any);
        returns (the first i not run, the final values).
        """
        b = self.b
        before = b.block
        head, inner, after = (self.fn.append_basic_block() for _ in range(3))
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(_I64)
        i.add_incoming(start, before)
        phis = []
        for value in carried:
            phi = b.phi(value.type)
            phi.add_incoming(value, before)
            phis.append(phi)
        b.cbranch(b.icmp_signed("<=", b.add(i, self.const(step)), stop), inner, after)
        b.position_at_end(inner)
        new = body(i, phis) or []
        i.add_incoming(b.add(i, self.const(step)), b.block)
        for phi, value in zip(phis, new):
            phi.add_incoming(value, b.block)
        b.branch(head)
        b.position_at_end(after)
        return i, phis

    def build(self):
        """Take blocks of SOURCES sources from the shared counter until none is left."""
        a, b = self.a, self.b
        counter = b.inttoptr(a["next_source"], _I64.as_pointer())
        take, work, done = (self.fn.append_basic_block() for _ in range(3))
        b.branch(take)
        b.position_at_end(take)
        jb = b.atomic_rmw("add", counter, self.const(SOURCES), "monotonic")
        b.cbranch(b.icmp_signed("<", jb, a["n_sources"]), work, done)
        b.position_at_end(work)
        self.sources(jb)
        b.branch(take)
        b.position_at_end(done)
        b.ret_void()

    def sources(self, jb):
        """All targets against sources jb .. jb + SOURCES (fewer at the end).

        Their head vectors are first copied into the ``rows`` scratch (see
        :meth:`rows_index`), then each tile of targets meets all of them
        while its part of ``targets`` is in cache.
        """
        a, b = self.a, self.b
        end = b.add(jb, self.const(SOURCES))
        stop = b.select(b.icmp_signed("<", end, a["n_sources"]), end, a["n_sources"])

        def rows_of(j):
            return b.mul(b.mul(b.sub(j, jb), a["heads"]), a["d"])

        def copy_rows(j, _):
            def copy(count):
                def body(e0, _):
                    def per_head(h, _):
                        source = b.add(b.mul(h, a["head_stride"]), b.mul(j, a["source_stride"]))
                        src = self.address(a["sources"], b.add(source, e0), ir.IntType(8))
                        dst = self.address(a["rows"], self.rows_index(rows_of(j), e0, h, count), ir.IntType(8))
                        length = self.const(count * self.size)
                        b.call(self.memcpy, [dst, src, length, ir.Constant(ir.IntType(1), 0)])

                    self.loop(self.const(0), a["heads"], 1, per_head)

                return body

            end, _ = self.loop(self.const(0), a["d"], DIMS, copy(DIMS))
            self.loop(end, a["d"], 1, copy(1))

        self.loop(jb, stop, 1, copy_rows)

        def per_tile(i0, _):
            self.loop(jb, stop, 1, lambda j, _: self.tile(j, i0, rows_of(j)))

        tile = self.const(self.lanes * VECTORS)
        first = b.select(b.icmp_signed("!=", a["lower"], self.const(0)), b.mul(b.sdiv(jb, tile), tile), self.const(0))
        self.loop(first, a["width"], self.lanes * VECTORS, per_tile)

    def rows_index(self, rows, e0, h, count):
        """Where ``rows`` keeps head h's dimensions e0 .. e0 + count of a source.

        Block-major (for each register block of ``count`` dimensions, all
        heads), so the loop over heads reads the scratch front to back.
        """
        b = self.b
        return b.add(rows, b.add(b.mul(e0, self.a["heads"]), b.mul(h, self.const(count))))

    def tile(self, j, i0, rows):
        """One tile of targets i0 .. i0 + tile against source j, whose head vectors start at ``rows``."""
        a, b = self.a, self.b
        tile = self.lanes * VECTORS

        def gather(h, _):  # weights[h, r] = -A^h[i0 + r, j], 0 past the last target
            last = b.sub(a["n_targets"], self.const(1))
            for r in range(tile):
                i = b.add(i0, self.const(r))
                inside = b.icmp_signed("<", i, a["n_targets"])
                row = b.select(inside, i, last)  # a valid address either way
                index = b.add(b.add(b.mul(h, a["attention_h"]), b.mul(row, a["attention_i"])), j)
                value = b.fneg(b.load(self.address(a["attentions"], index)))
                weight = b.select(inside, value, ir.Constant(self.scalar, 0.0))
                b.store(weight, self.address(a["weights"], b.add(b.mul(h, self.const(tile)), self.const(r))))

        self.loop(self.const(0), a["heads"], 1, gather)
        lanes = [b.add(i0, self.const(v * self.lanes)) for v in range(VECTORS)]
        zero = ir.Constant(self.sum_vec, [0.0] * self.lanes)
        on_diagonal = b.and_(b.icmp_signed("<=", i0, j), b.icmp_signed("<", j, b.add(i0, self.const(tile))))
        with b.if_else(on_diagonal) as (then, otherwise):
            for residual, branch in ((True, then), (False, otherwise)):
                with branch:
                    blocks = self.dims(j, i0, rows, lanes, DIMS, residual)
                    end, sums = self.loop(self.const(0), a["d"], DIMS, blocks, [zero] * VECTORS)
                    _, sums = self.loop(end, a["d"], 1, self.dims(j, i0, rows, lanes, 1, residual), sums)
                    for v in range(VECTORS):
                        index = b.mul(b.add(b.mul(j, a["width"]), lanes[v]), self.const(8))
                        target = b.inttoptr(b.add(a["out"], index), self.sum_vec.as_pointer())
                        b.store(sums[v], target, align=8)

    def dims(self, j, i0, rows, lanes, count, residual):
        """Loop body over ``count`` output dimensions from e0: adds their |differences| to the sums."""
        a, b = self.a, self.b
        tile = self.lanes * VECTORS

        def body(e0, sums):
            dims = [b.add(e0, self.const(k)) for k in range(count)]
            block = b.add(b.mul(i0, a["d"]), b.mul(e0, self.const(tile)))  # targets[i0 // tile, e0]
            start = [
                self.load_vector(a["targets"], b.add(block, self.const(k * tile + v * self.lanes)))
                for k in range(count)
                for v in range(VECTORS)
            ]

            def head(h, acc):
                first = b.mul(h, self.const(tile))
                w = [self.load_vector(a["weights"], b.add(first, self.const(v * self.lanes))) for v in range(VECTORS)]
                row = self.rows_index(rows, e0, h, count)
                new = []
                for k in range(count):
                    x = self.splat(b.load(self.address(a["rows"], b.add(row, self.const(k)))))
                    new += [b.call(self.fmuladd, [w[v], x, acc[k * VECTORS + v]]) for v in range(VECTORS)]
                return new

            _, acc = self.loop(self.const(0), a["heads"], 1, head, start)
            if residual:  # -r_j[e] in the lane of target j only
                masks = [self._lane_mask(b.sub(j, lane)) for lane in lanes]
                for k, e in enumerate(dims):
                    r = self.splat(b.load(self.address(a["residuals"], b.add(b.mul(j, a["residual_stride"]), e))))
                    for v in range(VECTORS):
                        acc[k * VECTORS + v] = b.call(self.fmuladd, [masks[v], r, acc[k * VECTORS + v]])
            new_sums = []
            for v in range(VECTORS):  # a tree over the block, then one add to the running sum
                terms = [b.call(self.fabs, [acc[k * VECTORS + v]]) for k in range(count)]
                while len(terms) > 1:
                    pairs = [terms[t : t + 2] for t in range(0, len(terms), 2)]
                    terms = [b.fadd(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
                block_sum = terms[0] if self.sum_vec == self.vec else b.fpext(terms[0], self.sum_vec)
                new_sums.append(b.fadd(sums[v], block_sum))
            return new_sums

        return body

    def _lane_mask(self, lane):
        """A vector with -1 in element ``lane`` (if 0 <= lane < lanes) and 0 elsewhere."""
        b = self.b
        mask = ir.Constant(self.vec, [0.0] * self.lanes)
        for k in range(self.lanes):
            hit = b.icmp_signed("==", lane, self.const(k))
            value = b.select(hit, ir.Constant(self.scalar, -1.0), ir.Constant(self.scalar, 0.0))
            mask = b.insert_element(mask, value, ir.Constant(_I32, k))
        return mask


#: what :func:`_build_team_entry`'s block holds after the kernel's own arguments
_TEAM = ("slots", "weights_stride", "rows_stride")  # an int64 counter's address, bytes between slots


def _build_team_entry(module: ir.Module, kernel: ir.Function) -> None:
    """``alti_l1_team(block)``: the kernel called with the int64 arguments stored at ``block``.

    A team of OpenMP threads (:func:`_team_runner`) each call it on the same
    block; each takes a slot from the shared counter and uses that slot's
    part of the ``weights`` and ``rows`` scratch, so no two threads write the same scratch.
    """
    i8p = ir.IntType(8).as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i8p]), "alti_l1_team")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    block = b.bitcast(fn.args[0], _I64.as_pointer())
    names = _ARGS + _TEAM

    def slot_pointer(name):
        return b.gep(block, [ir.Constant(_I64, names.index(name))])

    values = {name: b.load(slot_pointer(name)) for name in names}
    counter = b.inttoptr(values["slots"], _I64.as_pointer())
    slot = b.atomic_rmw("add", counter, ir.Constant(_I64, 1), "monotonic")
    for scratch, stride in (("weights", "weights_stride"), ("rows", "rows_stride")):
        values[scratch] = b.add(values[scratch], b.mul(slot, values[stride]))
    b.call(kernel, [values[name] for name in _ARGS])
    b.ret_void()


class _Kernel:
    """The kernel for one dtype, compiled for this machine."""

    def __init__(self, dtype: np.dtype, vector_bytes: int):
        lanes = vector_bytes // dtype.itemsize
        self.tile = lanes * VECTORS  # targets per register tile
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        module = ir.Module(name=f"alti_l1_{dtype.name}")
        module.triple = llvm.get_process_triple()
        scalar = ir.FloatType() if dtype == np.float32 else ir.DoubleType()
        emitter = _Builder(module, "alti_l1", scalar, lanes)
        emitter.build()
        _build_team_entry(module, emitter.fn)
        parsed = llvm.parse_assembly(str(module))
        parsed.verify()
        try:
            features = llvm.get_host_cpu_features().flatten()
        except RuntimeError:  # not reported on some hosts: the CPU name alone then
            features = ""
        machine = llvm.Target.from_triple(module.triple).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=features, opt=3
        )
        if hasattr(llvm, "create_pass_builder"):  # llvmlite >= 0.44; older ones run codegen only
            builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
            builder.getModulePassManager().run(parsed, builder)
        self.engine = llvm.create_mcjit_compiler(parsed, machine)
        self.engine.finalize_object()
        signature = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * len(_ARGS))
        self.function = signature(self.engine.get_function_address("alti_l1"))
        self.team_entry = self.engine.get_function_address("alti_l1_team")


_compiled: dict[tuple[np.dtype, int], _Kernel] = {}
_LOCK = threading.Lock()


def compile_kernel(dtype=np.float32, vector_bytes: int | None = None) -> _Kernel:
    """The kernel for ``dtype`` (float32 or float64), compiled once per process on first use.

    ``vector_bytes`` (32 or 64) defaults to the host's width; LLVM splits wider vectors into
    the ones the CPU has, so either width gives the same results anywhere.

    Raises RuntimeError where LLVM cannot build it.  Kept for the life of the
    process: its function points into the engine.
    """
    key = (np.dtype(dtype), vector_bytes or host_vector_bytes())
    with _LOCK:
        if key not in _compiled:
            _compiled[key] = _Kernel(*key)
        return _compiled[key]


_forked = threading.Event()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked.set)


def _team_runner():
    """:func:`_openmp_runner`, except in a forked child: libgomp's threads are not forked
    with the process, and a child's parallel region waits for them forever (torch's own
    ones too); the kernel's thread pool then."""
    return None if _forked.is_set() else _openmp_runner()


@functools.cache
def _openmp_runner():
    """libgomp's ``GOMP_parallel`` (torch's own OpenMP runtime), or None where torch uses another.

    ``GOMP_parallel(fn, data, n, 0)`` runs ``fn(data)`` on a team of ``n``
    threads, the caller one of them: the team torch's own parallel regions
    use from that thread (why: *The CPU kernel*, threads, in the developer
    documentation).  Found among the libraries already loaded (Linux); torch
    built with another OpenMP runtime, or none, leaves the kernel to its own
    thread pool.
    """
    import torch

    if not sys.platform.startswith("linux") or "OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            run = ctypes.CDLL(path).GOMP_parallel
        except (OSError, AttributeError):
            continue
        run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        run.restype = None
        return run
    return None


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="alti-kernel")


def l1_distances(
    attentions: np.ndarray,
    heads: np.ndarray,
    residuals: np.ndarray,
    out: np.ndarray,
    threads: int,
    vector_bytes: int | None = None,
    lower: bool = False,
    workspace: Workspace | None = None,
) -> np.ndarray:
    """``||out_i - sum_h attentions[h, i, j] heads[h, j] - [i == j] residuals[j]||_1``.

    Returns (n_i, n_j), float64.  ``attentions`` (H, n_i, n_j), ``heads`` (H, n_j, d),
    ``residuals`` (n_j, d), ``out`` (n_i, d), all of one float dtype
    (float32 or float64), each with contiguous last dimension (other strides
    are free).  Up to ``threads`` threads share the sources.  ``vector_bytes``:
    see ``compile_kernel``.  ``lower`` (causal attention, n_i == n_j): pairs
    with i < j are needed by no one, so whole tiles of them are skipped; the
    distances there are then 0, not computed (the caller zeroes those pairs).
    ``workspace``: where the targets and the distances are kept between calls
    (the result is then a view into it, valid until the next call with it);
    each thread's own scratch is always kept in that thread's workspace.
    """
    dtype = out.dtype
    kernel = compile_kernel(dtype, vector_bytes)
    function, tile = kernel.function, kernel.tile
    n_heads, n_i, n_j = attentions.shape
    d = out.shape[1]
    width = -(-n_i // tile) * tile
    targets = _scratch(workspace, "l1.targets", (width // tile, d, tile), dtype)
    targets[-1] = 0  # the padding past the last target
    by_tile = targets.transpose(0, 2, 1)  # (tiles, tile, d) view
    full = n_i // tile
    by_tile[:full] = out[: full * tile].reshape(full, tile, d)
    if full * tile < n_i:
        by_tile[full, : n_i - full * tile] = out[full * tile :]
    distances = _scratch(workspace, "l1.distances", (n_j, width), np.float64)
    if lower:
        distances.fill(0)
    for array in (attentions, heads, residuals):
        if array.dtype != dtype or array.strides[-1] != dtype.itemsize:
            raise ValueError("l1_distances: arrays of one dtype with contiguous last dimensions expected")
    size = dtype.itemsize

    next_source = np.zeros(1, np.int64)
    team = min(threads, -(-n_j // SOURCES))
    arguments = (
        heads.ctypes.data,
        heads.strides[0] // size,
        heads.strides[1] // size,
        residuals.ctypes.data,
        residuals.strides[0] // size,
        attentions.ctypes.data,
        attentions.strides[0] // size,
        attentions.strides[1] // size,
        targets.ctypes.data,
        width,
        n_i,
        n_heads,
        d,
        distances.ctypes.data,
        next_source.ctypes.data,
        n_j,
    )
    runner = _team_runner() if team > 1 else None
    if runner is not None:
        scratch = local()  # the caller's: the team's threads are used only during the call
        weights = scratch.array("l1.team_weights", (team, n_heads * tile), dtype)
        rows = scratch.array("l1.team_rows", (team, SOURCES * n_heads * d), dtype)
        slots = np.zeros(1, np.int64)
        block = np.array(
            (
                *arguments,
                weights.ctypes.data,
                rows.ctypes.data,
                int(lower),
                slots.ctypes.data,
                weights.strides[0],
                rows.strides[0],
            ),
            np.int64,
        )
        runner(kernel.team_entry, block.ctypes.data, team, 0)
        return distances[:, :n_i].T

    def run() -> None:
        scratch = local()  # this thread's: a helper of the pool keeps its own between calls
        weights = scratch.array("l1.weights", (n_heads * tile,), dtype)
        rows = scratch.array("l1.rows", (SOURCES * n_heads * d,), dtype)
        function(*arguments, weights.ctypes.data, rows.ctypes.data, int(lower))

    # every thread takes blocks of sources until none is left, so a thread
    # slowed by others on its core (torch's spinning workers) simply takes fewer
    helpers = [_pool().submit(run) for _ in range(team - 1)]
    run()
    for job in helpers:  # all blocks are taken by now: a helper that has not started has nothing to do
        if not job.cancel():
            job.result()
    return distances[:, :n_i].T


def _scratch(workspace: Workspace | None, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.empty(shape, dtype) if workspace is None else workspace.array(role, shape, dtype)
