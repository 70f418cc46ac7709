"""The method registry's shared types: what a method's ``compute`` receives and returns,
and the options a method declares.

A method is described by a :class:`alti.catalog.MethodInfo` and registered with
:func:`alti.methods.register`, which pairs the info with a ``compute`` of one of three
shapes, by :class:`Source` (where its scores come from):

- :attr:`Source.TRACE`: ``compute(layer: TraceLayer) -> Tensor (n, n)``, one matrix per
  layer from the single captured forward pass (with ``batched=True`` also a
  :class:`BatchTraceLayer` -> ``Tensor (B, N, N)``);
- :attr:`Source.LOGIT`: ``compute(readout: alti.methods.logit.Readout, alti:
  alti.methods.logit.Mixing) -> ndarray (n,)``, from the same pass;
- :attr:`Source.MODEL`: ``compute(explainer: ModelAccess, input_ids: LongTensor (1, n),
  target: alti.targets.Target, **options) -> ndarray (n,) | MethodOutput``, calling the
  model itself.

The Protocols below name everything a method may use of what it receives; the explainer's
views (:mod:`alti.capture`) and :class:`alti.Explainer` satisfy them.  A model method's
keyword options are declared with its info (:class:`alti.catalog.Option`), where the CLI
and the explorer read them without importing torch.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch

    from alti.adapters.base import Adapter, Head
    from alti.targets import Target


class Source(enum.StrEnum):
    """Where a method's scores come from (recorded as ``settings[method]["kind"]``)."""

    TRACE = "trace"  # per-layer matrices of the one captured forward pass
    LOGIT = "logit"  # the explained logit split along that pass (ALTI-Logit)
    MODEL = "model"  # the method runs the model itself (gradients, occlusion, ...)


class TraceLayer(Protocol):
    """One layer of one input, as a trace method's ``compute`` receives it
    (:class:`alti.capture.LayerView` for post-LN blocks, :class:`alti.capture.PreLNView`
    for pre-LN ones).  Arrays are in the maths dtype."""

    modules: Any  #: the adapter's modules of this layer (:class:`alti.adapters.base.Layer`)
    dtype: torch.dtype
    attentions: torch.Tensor  #: (H, n, n) post-softmax attention

    @property
    def decomposition(self) -> Any:
        """The layer's decomposition (:class:`alti.core.Decomposition`), made on first use."""
        ...

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor:
        """A module's parameter, detached, in the maths dtype."""
        ...

    def head_outputs(self) -> torch.Tensor:
        """Each source token's value through the output projection, per head: (n, H, d)."""
        ...


class BatchTraceLayer(Protocol):
    """One layer of a group of a padded batch's rows (:class:`alti.capture.BatchLayer`),
    as a method registered with ``batched=True`` receives it on the GPU path."""

    modules: Any
    dtype: torch.dtype

    @property
    def attentions(self) -> torch.Tensor:
        """(B, H, N, N)."""
        ...

    @property
    def decomposition(self) -> Any:
        """The group's decomposition (:class:`alti.core.decomposition.BatchDecomposition`)."""
        ...

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor: ...


class ModelAccess(Protocol):
    """The slice of :class:`alti.Explainer` that model methods use."""

    model: torch.nn.Module
    tokenizer: Any
    adapter: Adapter
    head: Head
    device: torch.device
    dtype: torch.dtype
    is_classifier: bool

    def special_mask(self, input_ids: Sequence[int]) -> np.ndarray: ...

    def quantities(self, id_lists: Sequence[Sequence[int]], target: Target | int, batch_size: int = 32) -> np.ndarray:
        """The explained quantity of ``target`` on each id sequence, as padded batches."""
        ...

    def quantity_forward(self, target: Target | int) -> Callable[[torch.Tensor], torch.Tensor]:
        """A differentiable forward: input ids (B, n) -> the explained quantity (B,)."""
        ...

    def predict_ids(self, id_lists: Sequence[Sequence[int]], batch_size: int = 32) -> np.ndarray: ...

    def pause_point(self) -> None:
        """Called between a long method's steps: the explorer may wait here, or stop the work."""
        ...


@dataclass
class MethodOutput:
    """What a model method may return instead of bare scores.

    ``scores`` (n,); ``layers`` (L, n, n) per-layer matrices for the layer
    slider, or None; ``settings`` are added to the method's recorded settings.
    """

    scores: Any
    layers: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
