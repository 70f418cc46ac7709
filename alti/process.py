"""Process-wide settings, made by the entry points, never by the library.

``alti``, ``alti-tui`` and the benchmarks call :func:`prepare` once, before any work; a
program that imports :mod:`alti` as a library gets no setting changed behind its back and
may call the functions here itself.  Nothing here imports torch.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: the largest mmap threshold glibc accepts on 64-bit systems
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30


def prepare() -> None:
    """What every alti entry point sets for its process: library chatter off stderr, and
    freed memory kept by glibc's malloc for the next explanation."""
    quiet_libraries()
    keep_freed_memory()


def quiet_libraries() -> None:
    """Keep library progress bars and advice off stderr: the CLI and the explorer report for
    themselves.

    transformers reads these variables when it is first imported, and it is imported only when
    a model needs it (the demo model does not), so importing it here would only cost time.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse, once per process; True where it did.

    A CPU explanation frees and touches again large blocks (a forward pass's attention
    tensors, 12.6 MB each at 512 tokens for BERT-base), which glibc may hand back to the
    kernel and fault in again on the next call.  Fixed thresholds (32 MiB for mmap, the
    largest glibc accepts; 1 GiB of free heap top before trimming) keep them; the price is
    memory kept by the process up to its peak.  ``ALTI_KEEP_FREED_MEMORY=0`` leaves malloc's
    defaults alone, as do C libraries other than glibc.  The measurements behind this are in
    the developer documentation (memory and page faults).
    """
    if os.environ.get("ALTI_KEEP_FREED_MEMORY") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):  # no glibc
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
