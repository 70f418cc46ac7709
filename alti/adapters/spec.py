"""Adapters described by module paths: the built-in pre-LN families and user TOML files.

A spec names, relative to the model's base model (``model.base_model``: e.g.
``LlamaModel`` inside ``LlamaForCausalLM``), where the blocks are and, inside
each block, the modules ALTI reads.  Paths are dotted attribute names; a
number indexes a list (``encoder.layer``, ``self_attn.v_proj``).

A TOML file holds the same fields (``alti explain --adapter my-model.toml``)::

    model_type = "my-llama"        # config.model_type this adapter serves
    block = "pre_ln"               # or "post_ln"
    layers = "layers"
    input_norm = "input_layernorm"
    attention = "self_attn"
    value = "self_attn.v_proj"
    value_layout = "heads"         # heads | qkv | qkv_per_head
    output = "self_attn.o_proj"
    final_norm = "norm"
    embeddings = "embed_tokens"
    causal = true

and for post-LN encoders ``attention_norm`` and ``output_norm`` instead of
``input_norm``, ``final_norm`` and ``causal``.  A post-LN spec may also name,
for DecompX, each block's FFN linears (``ffn_in``, ``ffn_out``) and a sequence
classifier's head as comma-separated linear maps below the *whole* model
(``head_layers = "bert.pooler.dense, classifier"``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from torch import nn

from alti.adapters.base import BLOCKS, VALUE_LAYOUTS, Adapter, LayerModules, PreLNLayer
from alti.errors import UnsupportedModelError

#: one segment of a module path: a plain attribute name (no leading underscore) or a list index
SEGMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9]+")


#: string fields of an adapter file that are settings, not module paths
NOT_PATHS = frozenset({"value_layout", "classifier_reads"})


def check_path(path: str, where: str) -> None:
    """Refuse a module path that is not dotted plain names and indices (``model.layers``,
    ``h.0.attn``): a path reaches ``getattr`` and must not name dunders or private members."""
    if path and not all(SEGMENT.fullmatch(part) for part in path.split(".")):
        raise UnsupportedModelError(
            f"{where}: {path!r} is not a module path; write dotted attribute names and list indices, "
            "e.g. model.layers or h.0.attn (no leading underscores)"
        )


def module_at(root: nn.Module, path: str) -> nn.Module:
    """The module at a dotted ``path`` below ``root`` (numbers index lists)."""
    check_path(path, "the adapter")
    module = root
    for part in path.split(".") if path else []:
        try:
            module = module[int(part)] if part.isdigit() else getattr(module, part)
        except (AttributeError, IndexError, TypeError):
            raise UnsupportedModelError(
                f"the adapter's path {path!r} does not exist in {type(root).__name__} (no {part!r}); "
                "check the module names with print(model)"
            ) from None
    return module


def config_int(config, names: tuple[str, ...], default: int | None = None) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return default


@dataclass(frozen=True)
class PreLNSpec:
    """Module paths of a pre-LN family (GUIDE §1.5)."""

    layers: str
    input_norm: str
    attention: str
    value: str
    output: str
    final_norm: str
    embeddings: str
    value_layout: str = "heads"
    causal: bool = True
    classifier_reads: str = "last"

    def resolve(self, model: nn.Module, config) -> Adapter:
        if self.value_layout not in VALUE_LAYOUTS:
            raise UnsupportedModelError(
                f"unknown value_layout {self.value_layout!r}; use one of {', '.join(VALUE_LAYOUTS)}"
            )
        base = model.base_model
        blocks = module_at(base, self.layers)
        layers = tuple(
            PreLNLayer(
                input_norm=module_at(block, self.input_norm),
                attention=module_at(block, self.attention),
                value=module_at(block, self.value),
                output=module_at(block, self.output),
                block=block,
            )
            for block in blocks
        )
        heads = config_int(config, ("num_attention_heads", "n_head"))
        return Adapter(
            model_type=config.model_type,
            encoder=base,
            embeddings=module_at(base, self.embeddings),
            layers=layers,
            num_heads=heads,
            num_kv_heads=config_int(config, ("num_key_value_heads",), heads),
            max_positions=config_int(config, ("max_position_embeddings", "n_positions"), 1 << 30),
            block="pre_ln",
            value_layout=self.value_layout,
            causal=self.causal,
            final_norm=module_at(base, self.final_norm),
            classifier_reads=self.classifier_reads,
        )


@dataclass(frozen=True)
class PostLNSpec:
    """Module paths of a post-LN encoder family (GUIDE §1.1)."""

    layers: str
    attention: str
    value: str
    output: str
    attention_norm: str
    output_norm: str
    embeddings: str
    #: optional, for DecompX: each block's FFN linears, and the classifier head's linear
    #: maps as comma-separated paths below the whole model (not the base model)
    ffn_in: str | None = None
    ffn_out: str | None = None
    head_layers: str | None = None

    def resolve(self, model: nn.Module, config) -> Adapter:
        base = model.base_model

        def optional(block, path):
            return None if path is None else module_at(block, path)

        layers = tuple(
            LayerModules(
                attention=module_at(block, self.attention),
                value=module_at(block, self.value),
                output=module_at(block, self.output),
                attention_norm=module_at(block, self.attention_norm),
                output_norm=module_at(block, self.output_norm),
                block=block,
                ffn_in=optional(block, self.ffn_in),
                ffn_out=optional(block, self.ffn_out),
            )
            for block in module_at(base, self.layers)
        )
        head = ()
        if self.head_layers and model is not base:
            head = tuple(module_at(model, path.strip()) for path in self.head_layers.split(",") if path.strip())
        return Adapter(
            model_type=config.model_type,
            encoder=base,
            embeddings=module_at(base, self.embeddings),
            layers=layers,
            num_heads=config_int(config, ("num_attention_heads", "n_heads")),
            max_positions=config_int(config, ("max_position_embeddings",), 1 << 30),
            classifier_layers=head,
        )


def spec_from_dict(data: dict, source: str) -> tuple[str, PreLNSpec | PostLNSpec]:
    """``(model_type, spec)`` from the fields of an adapter TOML file."""
    data = dict(data)
    model_type = data.pop("model_type", None)
    block = data.pop("block", "pre_ln")
    if not isinstance(model_type, str) or not model_type:
        raise UnsupportedModelError(f'{source} has no model_type; add model_type = "..." (the config\'s model_type)')
    if block not in BLOCKS:
        raise UnsupportedModelError(f"{source}: block must be one of {', '.join(BLOCKS)}, not {block!r}")
    cls = PreLNSpec if block == "pre_ln" else PostLNSpec
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UnsupportedModelError(
            f"{source}: unknown key(s) {', '.join(unknown)} for a {block} adapter; "
            f"known: model_type, block, {', '.join(fields)}"
        )
    missing = [name for name, f in fields.items() if f.default is dataclasses.MISSING and name not in data]
    if missing:
        raise UnsupportedModelError(f"{source}: missing key(s) {', '.join(missing)} for a {block} adapter")
    for name, value in data.items():
        expected = bool if name == "causal" else str
        if not isinstance(value, expected):
            raise UnsupportedModelError(f"{source}: {name} must be a {expected.__name__}, not {value!r}")
        if name == "head_layers":
            for path in value.split(","):
                check_path(path.strip(), f"{source}: {name}")
        elif expected is str and name not in NOT_PATHS:
            check_path(value, f"{source}: {name}")
    return model_type, cls(**data)
