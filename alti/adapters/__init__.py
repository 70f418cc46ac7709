"""Architecture adapters, keyed by ``config.model_type``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from alti.adapters import albert, bert, deberta, distilbert
from alti.adapters.base import Adapter, LayerModules
from alti.errors import UnsupportedModelError

ADAPTERS: dict[str, Callable[[nn.Module, object], Adapter]] = {
    "bert": bert.resolve,
    "roberta": bert.resolve,
    "xlm-roberta": bert.resolve,
    "camembert": bert.resolve,
    "electra": bert.resolve,
    "distilbert": distilbert.resolve,
    "albert": albert.resolve,
    "deberta-v2": deberta.resolve,
}

SUPPORTED_MODEL_TYPES = tuple(ADAPTERS)

__all__ = ["ADAPTERS", "SUPPORTED_MODEL_TYPES", "Adapter", "LayerModules", "get_adapter"]


def get_adapter(model: nn.Module) -> Adapter:
    """Resolve the encoder modules of ``model`` (a classifier, masked LM or bare encoder)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in ADAPTERS:
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported; supported types: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return ADAPTERS[model_type](model.base_model, config)
