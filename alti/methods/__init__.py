"""The method registry: every explanation method by name.

Three kinds of methods:

* ``"trace"`` methods compute one (n, n) matrix per layer from the single
  captured forward pass: ``compute(layer: LayerView | PreLNView) -> Tensor``.
  Their scores are the target row of the rolled-out product (``rolled=True``)
  or of the last layer's matrix.
* ``"logit"`` methods (ALTI-Logit and its baseline) split the explained logit
  among the tokens from the same forward pass: ``compute(readout,
  alti_layers (L, n, n)) -> np.ndarray (n,)`` (:mod:`alti.methods.logit`).
* ``"model"`` methods call the model themselves:
  ``compute(explainer, input_ids: LongTensor (1, n), target: alti.targets.Target,
  **options) -> np.ndarray (n,)``, or a :class:`~alti.methods.base.MethodOutput`
  with per-layer matrices beside the scores.

``requires(explainer) -> str | None`` says why a method does not apply to a
model (None when it does); the explainer refuses such a method in one line
that names the methods that do.

A trace method registered with ``batched=True`` also computes a group of a
batch's rows at once: ``compute(layer: alti.capture.BatchLayer) -> Tensor (B,
N, N)``, each row's matrix within its span equal to ``compute`` of that row
alone.  Where a batch's rows are decomposed together (on CUDA), that replaces
a launch per row and operation by one per group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alti.catalog import INFOS, MethodInfo
from alti.errors import UnknownMethodError

KINDS = ("trace", "logit", "model")


@dataclass(frozen=True)
class Method:
    info: MethodInfo
    compute: Callable
    kind: str
    rolled: bool = False
    requires: Callable | None = None
    batched: bool = False

    @property
    def name(self) -> str:
        return self.info.name

    def refusal(self, explainer) -> str | None:
        """Why this method does not apply to ``explainer``'s model, or None."""
        return None if self.requires is None else self.requires(explainer)


METHODS: dict[str, Method] = {}


def register(
    info: MethodInfo,
    compute: Callable,
    kind: str,
    rolled: bool = False,
    requires: Callable | None = None,
    batched: bool = False,
) -> Method:
    if kind not in KINDS:
        raise ValueError(f"method kind must be one of {KINDS}, not {kind!r}")
    method = Method(info=info, compute=compute, kind=kind, rolled=rolled, requires=requires, batched=batched)
    METHODS[info.name] = method
    INFOS.setdefault(info.name, info)  # methods registered by users are in the catalog too
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


from alti.methods import (  # noqa: E402,F401  (they register)
    alti_family,
    attention,
    decompx,
    gradients,
    logit,
    occlusion,
    value_zeroing,
)
