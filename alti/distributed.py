"""Dataset runs on several processes: ``torchrun``, ``accelerate launch``, ``srun torchrun``.

A launcher starts one process per device and tells each one its place in the
environment: ``WORLD_SIZE`` (processes in all), ``RANK`` (this one's, from 0)
and ``LOCAL_RANK`` (its place on its node).  :func:`world` reads them.  With
``WORLD_SIZE`` > 1 it joins the process group (``env://``, a :data:`TIMEOUT`
on every collective) and leaves it at exit; otherwise it imports nothing of
``torch.distributed`` and the run is a plain one, unchanged.

On GPUs each process runs its model on ``cuda:LOCAL_RANK`` and the group has
NCCL for CUDA tensors and gloo for CPU tensors; on CPUs (``--device cpu`` or
no GPU) gloo only.  What the ranks exchange is JSON text in CPU byte tensors,
through gloo; nothing is pickled.

:meth:`World.results` deals out whole batches of the dataset: the b-th batch
of those to run goes to rank ``b % size``, one round of ``size`` batches at a
time.  After each round rank 0 receives every batch's result, in dataset
order, and hands them to its caller before the next round starts: a caller
that writes them as they come has, at any moment, written a prefix of the
dataset, as a single process would.

Errors end every rank cleanly.  :meth:`World.agree` runs a step (checking the
arguments, loading the data and the model) on every rank, then compares: if
any rank failed, rank 0 raises the error (``rank k: ...`` when only other
ranks failed) for the CLI to print as its one line, and the others leave
quietly with exit status 2.  An :class:`~alti.errors.AltiError` (or an
``OSError``) in a batch stops every rank at the end of its round, once rank 0
has the batches before it, with the message a single process would give.
A process that dies (or a collective that waits longer than :data:`TIMEOUT`)
makes the collective fail on the others, which stop with one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np

from alti.errors import AltiError, InputError

#: How long a collective waits for the other ranks (the slowest batch of a round, or a model loading).
TIMEOUT = timedelta(minutes=30)
#: The exit status of a rank that leaves because another rank reported an error.
QUIET_EXIT = 2

T = TypeVar("T")


def launched(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a launcher started this process as one of several (``WORLD_SIZE`` > 1)."""
    environ = os.environ if environ is None else environ
    return _number(environ, "WORLD_SIZE", "1") > 1


def _number(environ: Mapping[str, str], name: str, default: str | None = None) -> int:
    value = environ.get(name, default)
    if value is None:
        raise InputError(f"WORLD_SIZE is {environ.get('WORLD_SIZE')} but {name} is not set; start with torchrun")
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{name}={value!r} is not a number; start with torchrun") from None


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, AltiError):
        reason = exc.strerror or str(exc)
        return f"{reason}: {exc.filename}" if exc.filename else reason
    return " ".join(str(exc).split("\n"))


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    cuda: bool = False  # launched on GPUs: the model runs on cuda:LOCAL_RANK

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the output and shows progress."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """The ``--device`` this rank loads its model on: ``cuda:LOCAL_RANK`` on GPUs, else ``requested``."""
        if not self.cuda:
            return requested
        import torch

        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise InputError(
                f"LOCAL_RANK {self.local_rank} has no GPU of its own (this node has {count}); "
                f"start at most {count} processes per node, or use --device cpu"
            )
        torch.cuda.set_device(self.local_rank)
        return f"cuda:{self.local_rank}"

    def agree(self, step: Callable[[], T]) -> T:
        """``step()`` on every rank; if it failed anywhere, every rank stops (see the module docstring)."""
        if self.size == 1:
            return step()
        result, problem = None, None
        try:
            result = step()
        except (AltiError, OSError) as exc:
            problem = exc
        texts, failed = self._exchange("" if problem is None else _message(problem), problem is not None)
        if any(failed):
            self._stop(problem, texts, failed, name_rank=True)
        return result

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` (JSON data) on every rank."""
        if self.size == 1:
            return value
        import torch
        import torch.distributed as dist

        encoded = json.dumps(value).encode("utf-8") if self.main else b""
        length = torch.tensor([len(encoded)], dtype=torch.int64)
        with _collective():
            dist.broadcast(length, src=0)
            buffer = _bytes_tensor(encoded, int(length[0]))
            dist.broadcast(buffer, src=0)
        return json.loads(buffer.numpy().tobytes().decode("utf-8"))

    def results(self, batches: Sequence[int], work: Callable[[int], Any]) -> Iterator[tuple[Any, bool]]:
        """Run ``work(b)`` for this rank's share of ``batches``; on rank 0 yield every result in order.

        Rank 0 gets ``(result, local)`` for each batch, ``local`` when it ran
        the batch itself; a result from another rank has made a JSON round
        trip, so ``work`` returns JSON data (lists, dicts, strings, numbers).
        Other ranks yield nothing.
        """
        for start in range(0, len(batches), self.size):
            dealt = batches[start : start + self.size]
            result, problem = None, None
            if self.rank < len(dealt):
                if self.size == 1:
                    yield work(dealt[0]), True
                    continue
                try:
                    result = work(dealt[self.rank])
                except (AltiError, OSError) as exc:
                    problem = exc
            text = _message(problem) if problem is not None else json.dumps(result, ensure_ascii=False)
            texts, failed = self._exchange(text, problem is not None)
            if self.main:
                for k in range(len(dealt)):
                    if failed[k]:
                        break
                    yield (result, True) if k == 0 else (json.loads(texts[k]), False)
            if any(failed):
                self._stop(problem, texts, failed, name_rank=False)

    def _stop(self, own: BaseException | None, texts: list[str] | None, failed: list[bool], name_rank: bool):
        if not self.main:
            raise SystemExit(QUIET_EXIT)
        if own is not None:
            raise own
        k = failed.index(True)
        raise AltiError(f"rank {k}: {texts[k]}" if name_rank else texts[k])

    def _exchange(self, text: str, failed: bool) -> tuple[list[str] | None, list[bool]]:
        """Every rank's failure flag on every rank, and every rank's text on rank 0."""
        import torch
        import torch.distributed as dist

        encoded = text.encode("utf-8")
        headers = [torch.zeros(2, dtype=torch.int64) for _ in range(self.size)]
        with _collective():
            dist.all_gather(headers, torch.tensor([len(encoded), int(failed)], dtype=torch.int64))
        lengths = [int(h[0]) for h in headers]
        width = max(1, *lengths)
        buffer = _bytes_tensor(encoded, width)
        if not self.main:
            with _collective():
                dist.gather(buffer, dst=0)
            return None, [bool(h[1]) for h in headers]
        parts = [torch.empty(width, dtype=torch.uint8) for _ in range(self.size)]
        with _collective():
            dist.gather(buffer, parts, dst=0)
        texts = [part[:n].numpy().tobytes().decode("utf-8") for part, n in zip(parts, lengths)]
        return texts, [bool(h[1]) for h in headers]


@contextmanager
def _collective() -> Iterator[None]:
    """A collective that fails (another process died, or :data:`TIMEOUT` passed) ends in one line."""
    try:
        yield
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AltiError(
            f"another process of this run stopped or timed out ({first}); run the same command to resume"
        ) from None


def _bytes_tensor(data: bytes, width: int):
    """``data`` in a uint8 CPU tensor of ``width`` bytes (zero-padded)."""
    import torch

    buffer = torch.zeros(max(width, 1), dtype=torch.uint8)
    if data:
        buffer[: len(data)] = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())
    return buffer


@contextmanager
def world(device: str = "auto") -> Iterator[World]:
    """This process's :class:`World`: joins the process group when launched as one of several, and leaves it."""
    if not launched():
        yield World()
        return
    import torch
    import torch.distributed as dist

    environ = os.environ
    size, rank = _number(environ, "WORLD_SIZE"), _number(environ, "RANK")
    local_rank = _number(environ, "LOCAL_RANK", "0")
    cuda = device != "cpu" and torch.cuda.is_available()
    try:
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=TIMEOUT)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AltiError(f"cannot join the torch.distributed process group: {first}") from None
    try:
        yield World(rank, size, local_rank, cuda)
    finally:
        dist.destroy_process_group()
