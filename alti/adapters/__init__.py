"""Architecture adapters, keyed by ``config.model_type``, and the registry users extend.

Built in: the post-LN encoders (BERT and its relatives, DistilBERT, ALBERT,
DeBERTa-v2/v3) and the pre-LN families (GPT-2, Llama, Mistral, Qwen2, Qwen3,
Gemma v1, GPT-NeoX, Phi, ModernBERT).  Add your own without editing alti:

- ``alti.adapters.register("my-llama", resolve)`` with ``resolve(model,
  config) -> Adapter``, or with a :class:`~alti.adapters.spec.PreLNSpec` /
  :class:`~alti.adapters.spec.PostLNSpec` of module paths;
- ``alti.adapters.load_adapter_file("my-model.toml")`` (the CLI's and the
  explorer's ``--adapter``): the same paths in a TOML file.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable

from torch import nn

from alti.adapters import albert, bert, deberta, distilbert, gpt2, gpt_neox, llama, modernbert, phi
from alti.adapters.base import Adapter, Head, LayerModules, PreLNLayer
from alti.adapters.spec import PostLNSpec, PreLNSpec, spec_from_dict
from alti.errors import UnsupportedModelError

Resolver = Callable[[nn.Module, object], Adapter]

ADAPTERS: dict[str, Resolver] = {
    "bert": bert.resolve,
    "roberta": bert.resolve,
    "xlm-roberta": bert.resolve,
    "camembert": bert.resolve,
    "electra": bert.resolve,
    "distilbert": distilbert.resolve,
    "albert": albert.resolve,
    "deberta-v2": deberta.resolve,
    "gpt2": gpt2.resolve,
    "llama": llama.resolve,
    "mistral": llama.resolve,
    "qwen2": llama.resolve,
    "qwen3": llama.resolve,
    "gemma": llama.resolve,
    "gpt_neox": gpt_neox.resolve,
    "phi": phi.resolve,
    "modernbert": modernbert.resolve,
}

#: Families alti knows and refuses, with the reason.
REFUSED = {
    kind: "Gemma-2/3 blocks normalise the attention output before the residual (sandwich norms) "
    "and soft-cap the logits, which this version does not decompose exactly"
    for kind in ("gemma2", "gemma3", "gemma3_text")
}

SUPPORTED_MODEL_TYPES = tuple(ADAPTERS)

__all__ = [
    "ADAPTERS",
    "check_supported",
    "SUPPORTED_MODEL_TYPES",
    "Adapter",
    "Head",
    "LayerModules",
    "PostLNSpec",
    "PreLNLayer",
    "PreLNSpec",
    "get_adapter",
    "load_adapter_file",
    "register",
    "supported_types",
]


def supported_types() -> tuple[str, ...]:
    """Every model type with an adapter, the user's registrations included."""
    return tuple(ADAPTERS)


def register(model_type: str, resolve: Resolver | PreLNSpec | PostLNSpec) -> None:
    """Serve ``model_type`` with ``resolve(model, config) -> Adapter`` or a spec of module paths.

    A registration replaces any earlier one for the same type (built-ins included).
    """
    if isinstance(resolve, (PreLNSpec, PostLNSpec)):
        resolve = resolve.resolve
    if not callable(resolve):
        raise TypeError("register() needs a callable resolve(model, config) -> Adapter, or a PreLNSpec/PostLNSpec")
    ADAPTERS[model_type] = resolve
    REFUSED.pop(model_type, None)


def load_adapter_file(path: str) -> str:
    """Register the adapter described by a TOML file (see :mod:`alti.adapters.spec`); its model type."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UnsupportedModelError(f"adapter file {path} does not exist") from None
    except OSError as error:
        raise UnsupportedModelError(f"cannot read adapter file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UnsupportedModelError(f"adapter file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise UnsupportedModelError(
            f"adapter file {path} is not UTF-8 text; write a TOML file of module paths"
        ) from None
    model_type, spec = spec_from_dict(data, path)
    register(model_type, spec)
    return model_type


def _task(model: nn.Module) -> str:
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "classifier"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    if name.endswith("ForMaskedLM"):
        return "masked_lm"
    return "encoder"


def _head(model: nn.Module, adapter: Adapter) -> Head:
    task = _task(model)
    readout = None
    if task == "classifier":
        reads = adapter.classifier_reads
        if adapter.pre_ln and adapter.causal:
            readout = getattr(model, "score", None)
    elif task == "causal_lm":
        if not adapter.causal:
            raise UnsupportedModelError(f"{type(model).__name__} is a causal LM head on a bidirectional encoder")
        reads, readout = "last", model.get_output_embeddings()
    elif task == "masked_lm":
        reads = "mask"
    else:
        reads = adapter.classifier_reads
    if task == "causal_lm" and readout is None:
        raise UnsupportedModelError(f"{type(model).__name__} has no output embeddings to read the next token from")
    return Head(task=task, reads=reads, readout=readout, final_norm=adapter.final_norm)


def check_supported(model_type: str | None, name: str | None = None) -> None:
    """Refuse, in one line, a model type without an adapter (``name``: the checkpoint, if known)."""
    what = f"'{name}' is a {model_type!r} model, which" if name else f"model type {model_type!r}"
    if model_type in REFUSED:
        raise UnsupportedModelError(f"{what} is not supported: {REFUSED[model_type]}")
    if model_type not in ADAPTERS:
        raise UnsupportedModelError(
            f"{what} is not supported; supported types: {', '.join(ADAPTERS)} "
            "(add one with --adapter FILE.toml or alti.adapters.register)"
        )


def get_adapter(model: nn.Module) -> Adapter:
    """Resolve the modules of ``model`` (a classifier, a causal or masked LM, or a bare model)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    check_supported(model_type)
    adapter = ADAPTERS[model_type](model, config)
    return dataclasses.replace(adapter, head=_head(model, adapter))
