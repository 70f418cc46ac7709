"""The method registry: every explanation method by name.

Two kinds of methods:

* ``"trace"`` methods compute one (n, n) matrix per layer from the single
  captured forward pass: ``compute(layer: alti.capture.LayerView) -> Tensor``.
  Their scores are the target row of the rolled-out product (``rolled=True``)
  or of the last layer's matrix.
* ``"model"`` methods call the model themselves:
  ``compute(explainer, input_ids: LongTensor (1, n), target: int, **options)
  -> np.ndarray (n,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alti.errors import UnknownMethodError
from alti.methods.base import MethodInfo

KINDS = ("trace", "model")


@dataclass(frozen=True)
class Method:
    info: MethodInfo
    compute: Callable
    kind: str
    rolled: bool = False

    @property
    def name(self) -> str:
        return self.info.name


METHODS: dict[str, Method] = {}


def register(info: MethodInfo, compute: Callable, kind: str, rolled: bool = False) -> Method:
    if kind not in KINDS:
        raise ValueError(f"method kind must be one of {KINDS}, not {kind!r}")
    method = Method(info=info, compute=compute, kind=kind, rolled=rolled)
    METHODS[info.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown method {name!r}; valid methods: {', '.join(METHODS)}"
        ) from None


from alti.methods import alti_family, attention, gradients, occlusion  # noqa: E402,F401  (they register)
