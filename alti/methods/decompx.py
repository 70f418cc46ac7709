"""DecompX (Modarressi et al., ACL 2023): a per-token decomposition carried through every layer,
FFN and classification head included (GUIDE §1.7).

Every token's vector is kept as one part per input token (``X^0[i, k] = [i == k] x^0_i``,
the embedding output not decomposed).  Each layer carries the parts through attention
(``W_V`` first, mixed in head space, ``W_O``), the residual, the first LayerNorm, the
FFN and the second LayerNorm; biases are split among the parts by AbsDot, LayerNorm
scales and activation slopes are those of the real forward pass
(:mod:`alti.core.decompx`).  The head carries the [CLS] parts through its linear maps
to the logits, so the score of token k is its part of the explained class's logit
(against a foil: its part of ``logit[target] - logit[foil]``) and the scores add up to
that logit (difference).

One forward pass with hooks reads what the decomposition needs from the model itself
(attention probabilities, the first layer's input and values, each LayerNorm's input,
each FFN's and each head activation's input and output); the decomposition then runs
on those.  The per-layer matrices are ``||X^l[i, k]||_2`` after each layer: unsigned
norms, not row-normalised.  In the last layer only the [CLS] row is computed (the head
reads nothing else; its other rows are 0) unless ``full_last_layer=True``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from alti.catalog import INFOS
from alti.core import decompx as D
from alti.errors import UnsupportedModelError
from alti.methods import Source, register
from alti.methods.base import MethodOutput

#: the temporaries of one chunk of parts stay under this many megabytes
DEFAULT_CHUNK_MB = INFOS["decompx"].option("chunk_mb").default
#: a decomposition whose logit parts miss the model's logit by more than this share of
#: the logit's scale does not describe the model (a wrong adapter): refused
COMPLETENESS_LIMIT = 1e-3


@dataclass
class Recording:
    """What one forward pass gives the decomposition (compute dtype, batch of one)."""

    x: torch.Tensor | None = None  # (n, d): the first layer's input
    values: torch.Tensor | None = None  # (n, H*dh): its value vectors, b_V included
    attentions: list = field(default_factory=list)  # (H, n, n) per layer
    sigma1: list = field(default_factory=list)  # (n,) per layer: the first LayerNorm's scale
    theta: list = field(default_factory=list)  # (n, d_ff) per layer: the FFN's slopes
    sigma2: list = field(default_factory=list)  # (n,) per layer
    head_in: list = field(default_factory=list)  # (in,) per head linear: its input
    head_out: list = field(default_factory=list)  # (out,) per head linear: its output
    logits: torch.Tensor | None = None  # (C,)
    pending: list = field(default_factory=list)  # FFN pre-activations waiting for their activation


def _record(explainer, input_ids: torch.Tensor, dtype: torch.dtype) -> Recording:
    """Run the model once on ``input_ids`` (1, n) and keep what DecompX needs; hooks are
    removed in all cases, and calls from other threads are ignored."""
    adapter = explainer.adapter
    rec = Recording()
    owner = threading.get_ident()
    calls = {"value": 0}

    def take(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach()[0].to(dtype)

    def on_value(module, args, output):
        if calls["value"] == 0:
            rec.x, rec.values = take(args[0]), take(output)
        calls["value"] += 1

    def on_attention(module, args, output):
        if output[1] is None:
            raise RuntimeError("the attention module returned no probabilities; load the model with eager attention")
        rec.attentions.append(take(output[1]))

    def scale_of(target: list) -> Callable:
        def hook(module, args, output):
            target.append(D.layer_scale(take(args[0]), module.eps))

        return hook

    def on_ffn_in(module, args, output):
        rec.pending.append(take(output))

    def on_ffn_out(module, args, output):
        rec.theta.append(D.zero_origin_slope(rec.pending.pop(0), take(args[0])))

    def on_head(module, args, output):
        rec.head_in.append(take(args[0]))
        rec.head_out.append(take(output))

    roles = [
        ([m.value for m in adapter.layers], on_value),
        ([m.attention for m in adapter.layers], on_attention),
        ([m.attention_norm for m in adapter.layers], scale_of(rec.sigma1)),
        ([m.ffn_in for m in adapter.layers], on_ffn_in),
        ([m.ffn_out for m in adapter.layers], on_ffn_out),
        ([m.output_norm for m in adapter.layers], scale_of(rec.sigma2)),
        (list(adapter.classifier_layers), on_head),
    ]

    def guarded(hook):
        def run(module, args, output):
            if threading.get_ident() == owner:
                hook(module, args, output)

        return run

    handles = []
    try:
        for modules, hook in roles:
            for module in {id(m): m for m in modules}.values():
                handles.append(module.register_forward_hook(guarded(hook)))
        kwargs = {"output_attentions": True} if adapter.output_attentions else {}
        with torch.inference_mode():
            out = explainer.model(input_ids=input_ids, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    rec.logits = out.logits.detach()[0].to(dtype)
    expected = adapter.num_layers
    counts = [len(rec.attentions), len(rec.sigma1), len(rec.theta), len(rec.sigma2)]
    if any(c != expected for c in counts) or len(rec.head_out) != len(adapter.classifier_layers):
        raise UnsupportedModelError(
            f"DecompX captured {counts} layer calls and {len(rec.head_out)} head calls for a "
            f"{expected}-layer model; the adapter's modules do not match the forward pass"
        )
    return rec


@dataclass
class Decomposed:
    """DecompX of one example."""

    logit_parts: torch.Tensor  # (n, C): each token's part of each class's logit
    norms: torch.Tensor  # (L, n, n): ||X^l[i, k]||_2 after each layer
    logits: torch.Tensor  # (C,): the model's own logits
    rows_in_last_layer: int  # n, or 1 when only the [CLS] row was carried through the last layer


def _parameter(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().to(dtype)


def _bias(module, dtype) -> torch.Tensor | None:
    return _parameter(getattr(module, "bias", None), dtype)


def _chunk(budget: int, per_item: int) -> int:
    return max(1, budget // max(per_item, 1))


def decompose(
    explainer,
    input_ids: torch.Tensor,
    full_last_layer: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    on_stage: Callable[[int | None, str, torch.Tensor], None] | None = None,
) -> Decomposed:
    """DecompX of ``input_ids`` (1, n) without padding.

    ``on_stage(layer, stage, parts)``, if given, sees the parts (m, n, d) after each stage
    of each layer (``attention``: the attention block's output; ``attention_norm_input``,
    ``attention_norm``, ``ffn``, ``output_norm_input``, ``output_norm``) and of the head
    (layer None; ``head_0``, ``head_0_activation``, ..., the last map's ``head_J``: the
    logits), where ``parts[i].sum(0)`` is the model's own vector of target i.  It costs
    copies of the state; tests use it.
    """
    dtype = explainer.dtype
    device = input_ids.device
    adapter = explainer.adapter
    rec = _record(explainer, input_ids, dtype)
    n = input_ids.shape[1]
    num_layers = adapter.num_layers
    itemsize = torch.empty((), dtype=dtype).element_size()
    budget = int(chunk_mb * 2**20)
    norms = torch.zeros(num_layers, n, n, dtype=dtype, device=device)
    parts = None
    m = n
    for index, modules in enumerate(adapter.layers):
        explainer.pause_point()
        if index == num_layers - 1 and not full_last_layer:
            m = 1  # the head reads only [CLS]
        attentions = rec.attentions[index]
        w_v = _parameter(modules.value.weight, dtype)
        w_o = _parameter(modules.output.weight, dtype)
        b_v, b_o = _bias(modules.value, dtype), _bias(modules.output, dtype)
        residual = None
        if index == 0:
            if on_stage is not None:
                residual = torch.zeros(m, n, rec.x.shape[-1], dtype=dtype, device=device)
                residual[torch.arange(m), torch.arange(m)] = rec.x[:m]
            per_part = 2 * m * rec.x.shape[-1] * itemsize
            parts = D.first_attention(rec.x, rec.values, attentions, w_o, m, _chunk(budget, per_part))
            bias = b_o
        else:
            if on_stage is not None:
                residual = parts[:m].clone()
            if m < n:
                parts = D.attention_rows(parts, attentions, w_v, w_o, m)
            else:
                width = w_v.shape[0]
                per_part = (2 * n * parts.shape[-1] + 4 * n * width) * itemsize
                D.attention_(parts, attentions, w_v, w_o, _chunk(budget, per_part))
            bias = b_o
            if b_v is not None:
                bias = w_o @ b_v if bias is None else w_o @ b_v + b_o
        D.split_bias_(parts, bias)
        if on_stage is not None:
            on_stage(index, "attention", parts - residual)
            on_stage(index, "attention_norm_input", parts)
        norm = modules.attention_norm
        D.layer_norm_(parts, rec.sigma1[index][:m], _parameter(norm.weight, dtype), _parameter(norm.bias, dtype))
        if on_stage is not None:
            on_stage(index, "attention_norm", parts)
        theta = rec.theta[index][:m]
        w1, w2 = _parameter(modules.ffn_in.weight, dtype), _parameter(modules.ffn_out.weight, dtype)
        per_target = n * (w1.shape[0] + 2 * parts.shape[-1]) * itemsize
        ffn = (w1, _bias(modules.ffn_in, dtype), theta, w2, _bias(modules.ffn_out, dtype), _chunk(budget, per_target))
        if on_stage is not None:
            on_stage(index, "ffn", D.ffn_(parts, *ffn, out=torch.empty_like(parts)))
        D.ffn_(parts, *ffn)
        if on_stage is not None:
            on_stage(index, "output_norm_input", parts)
        norm = modules.output_norm
        D.layer_norm_(parts, rec.sigma2[index][:m], _parameter(norm.weight, dtype), _parameter(norm.bias, dtype))
        if on_stage is not None:
            on_stage(index, "output_norm", parts)
        norms[index, :m] = torch.linalg.vector_norm(parts, dim=-1)
    layers = []
    for j, linear in enumerate(adapter.classifier_layers):
        theta = None
        if j + 1 < len(adapter.classifier_layers):
            theta = D.zero_origin_slope(rec.head_out[j], rec.head_in[j + 1])
        layers.append((_parameter(linear.weight, dtype), _bias(linear, dtype), theta))
    stages = D.head(parts[0], layers)
    if on_stage is not None:
        names = []
        for j, (_, _, theta) in enumerate(layers):
            names.append(f"head_{j}")
            if theta is not None:
                names.append(f"head_{j}_activation")
        for name, stage in zip(names, stages):
            on_stage(None, name, stage[None])
    return Decomposed(stages[-1], norms, rec.logits, m)


def applies(explainer) -> str | None:
    """Why DecompX does not apply to ``explainer``'s model, or None."""
    adapter = explainer.adapter
    if adapter.pre_ln:
        return "DecompX decomposes post-LN encoder layers; this is a pre-LN model"
    if not explainer.is_classifier:
        return "DecompX explains a sequence classifier's logit; this model is not a sequence classifier"
    if explainer.head.reads != "first":
        return "DecompX follows the [CLS] vector into the head; this classifier reads another row"
    if any(m.ffn_in is None or m.ffn_out is None for m in adapter.layers):
        return "its adapter names no FFN modules (ffn_in, ffn_out)"
    if not adapter.classifier_layers:
        return "its classification head is not a known chain of linear maps (adapter classifier_layers)"
    return None


def decompx(
    explainer,
    input_ids: torch.Tensor,
    target,
    full_last_layer: bool = False,
    chunk_mb: float = DEFAULT_CHUNK_MB,
) -> MethodOutput:
    """Scores (n,): each token's part of the target class's logit (minus its part of the
    foil's); layers (L, n, n): ``||X^l[i, k]||_2``."""
    result = decompose(explainer, input_ids, full_last_layer=full_last_layer, chunk_mb=chunk_mb)
    parts, logits = result.logit_parts, result.logits
    scores = parts[:, target.index]
    logit = logits[target.index]
    if target.foil is not None:
        scores = scores - parts[:, target.foil]
        logit = logit - logits[target.foil]
    scores = scores.double().cpu().numpy()
    logit = float(logit)
    error = abs(float(scores.sum()) - logit)
    scale = max(abs(logit), float(np.abs(scores).sum()), 1.0)
    if error > COMPLETENESS_LIMIT * scale:
        raise UnsupportedModelError(
            f"DecompX's parts add up to {scores.sum():.6g}, not to the model's logit {logit:.6g}; "
            "the adapter's modules do not describe this model's forward pass"
        )
    settings: dict[str, Any] = {
        "quantity": "logit" if target.foil is None else "logit difference",
        "logit": logit,
        "completeness_error": error,
        "bias_split": "absdot",
        "activations": "zero-origin slope act(z)/z of the real pre-activation",
        "layers": "L2 norm of each part X^l[i][k] after each layer (unsigned; not row-normalised)"
        + ("" if result.rows_in_last_layer > 1 else "; last layer: the [CLS] row only (other rows 0)"),
    }
    return MethodOutput(scores=scores, layers=result.norms.double().cpu().numpy(), settings=settings)


register(
    INFOS["decompx"],
    decompx,
    Source.MODEL,
    requires=applies,
)
