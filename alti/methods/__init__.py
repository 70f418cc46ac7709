"""The method registry: every explanation method by name.

A method pairs its :class:`alti.catalog.MethodInfo` with a ``compute`` whose shape
depends on where its scores come from (:class:`alti.methods.base.Source`: the captured
trace, the logit readout, or the model itself); :mod:`alti.methods.base` types what each
receives.  Trace methods' scores are the target row of the rolled-out product
(``rolled=True``) or of the last layer's matrix.

``requires(explainer) -> str | None`` says why a method does not apply to a model (None
when it does); the explainer refuses such a method in one line that names the methods
that do.  A model method's keyword options are declared with its info
(:attr:`alti.catalog.MethodInfo.options`).

A trace method registered with ``batched=True`` also computes a group of a batch's rows
at once: ``compute(layer: BatchTraceLayer) -> Tensor (B, N, N)``, each row's matrix within
its span equal to ``compute`` of that row alone.  Where a batch's rows are decomposed
together (on CUDA), that replaces a launch per row and operation by one per group.

To add a method, see CONTRIBUTING.md ("Add a method"): a contract test runs every
registered method on a post-LN encoder, a pre-LN decoder classifier and a causal LM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alti.catalog import INFOS, MethodInfo, Option
from alti.errors import UnknownMethodError
from alti.methods.base import MethodOutput, Source

__all__ = ["METHODS", "Method", "MethodOutput", "Option", "Source", "get_method", "register"]


@dataclass(frozen=True)
class Method:
    info: MethodInfo
    compute: Callable
    source: Source
    rolled: bool = False
    requires: Callable | None = None
    batched: bool = False

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def options(self) -> tuple[Option, ...]:
        return self.info.options

    def refusal(self, explainer) -> str | None:
        """Why this method does not apply to ``explainer``'s model, or None."""
        return None if self.requires is None else self.requires(explainer)


METHODS: dict[str, Method] = {}


def register(
    info: MethodInfo,
    compute: Callable,
    source: Source | str,
    rolled: bool = False,
    requires: Callable | None = None,
    batched: bool = False,
) -> Method:
    try:
        source = Source(source)
    except ValueError:
        raise ValueError(f"a method's source must be one of {[s.value for s in Source]}, not {source!r}") from None
    if info.chunk_option is not None and info.chunk_option not in {o.name for o in info.options}:
        raise ValueError(f"{info.name}: chunk_option {info.chunk_option!r} is not one of its options")
    method = Method(
        info=info,
        compute=compute,
        source=source,
        rolled=rolled,
        requires=requires,
        batched=batched,
    )
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
