"""Scratch arrays kept between calls, one set per thread.

A :class:`Workspace` keeps one buffer per role (head vectors, the kernel's packed targets and
distances, ...), grown to the largest size asked for and reused by every later layer and
call, so a CPU explanation does not fault fresh pages in on every layer.

A buffer is overwritten by the next request for the same role: only code that is done with
the previous array may ask again (the explainer's stream drops each layer's view before it
decomposes the next).  Nothing handed to a user may be a workspace array.  Each thread has
its own workspace (:func:`local`), so threads explaining at once never share a buffer; a
thread's buffers go when the thread ends.  The forward pass's own temporaries are torch's,
out of a workspace's reach: :func:`alti.process.keep_freed_memory` (called by alti's entry
points) tells glibc to keep those too.

The page faults this avoids, and what was measured: the developer documentation, *Memory and
page faults* (``docs/developer/memory.md``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

#: a buffer that must grow grows at least this much, so slowly rising lengths do not reallocate every call
GROWTH = 1.5
ALIGNMENT = 64  # bytes, as torch aligns its own CPU tensors
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.bool: np.bool_}


class Workspace:
    """Buffers by role, reused: :meth:`array` and :meth:`tensor` view one as the shape asked for."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def array(self, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous ``shape`` array of ``dtype`` (uninitialised) in ``role``'s buffer."""
        dtype = np.dtype(dtype)
        size = math.prod(shape) * dtype.itemsize
        buffer = self.buffers.get(role)
        if buffer is None or buffer.nbytes < size:
            capacity = size if buffer is None else max(size, int(buffer.nbytes * GROWTH))
            raw = np.empty(capacity + ALIGNMENT, np.uint8)
            start = -raw.ctypes.data % ALIGNMENT
            buffer = self.buffers[role] = raw[start : start + capacity]
        return buffer[:size].view(dtype).reshape(shape)

    def tensor(self, role: str, shape: tuple[int, ...], dtype: torch.dtype, device=None) -> torch.Tensor:
        """Like :meth:`array`, as a CPU tensor sharing the buffer; elsewhere (or for a dtype numpy
        lacks) a new tensor, left to the device's own caching allocator."""
        device = torch.device("cpu" if device is None else device)
        if device.type != "cpu" or dtype not in _NUMPY:
            return torch.empty(shape, dtype=dtype, device=device)
        return torch.from_numpy(self.array(role, tuple(shape), _NUMPY[dtype]))


_local = threading.local()


def local() -> Workspace:
    """The calling thread's workspace (created on first use)."""
    workspace = getattr(_local, "workspace", None)
    if workspace is None:
        workspace = _local.workspace = Workspace()
    return workspace
