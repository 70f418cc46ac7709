"""Value Zeroing (Mohebbi et al., EACL 2023): how much each layer's output moves when one
token's value vectors are zeroed (GUIDE §1.7).

One real forward pass records, for every applied layer, the exact arguments
the model passes to the whole layer (``adapter.layers[l].block``), its output
and which pairs its attention connects.  Then, layer by layer, the block is
called again on copies of its real input: copy j with token j's value vector
set to zero in every head (its value bias included; for a fused q|k|v
projection only the value part), so the attention probabilities stay those
of the real pass and everything after them (output projection, residual,
norms, FFN) is recomputed.  ``D[i, j] = clip(1 - cos(out_j[i], out[i]), 0, 2)``
compares target i's output with the real one (post-LN: after the layer's
second LayerNorm; pre-LN: the residual stream after the whole block,
``x + Attn + MLP``).  Rows are divided by their sums (diagonal kept) and
rolled out without an identity; the score is the row the head reads.

The copies run as batches whose activations stay under a memory budget
(options ``batch_size``: copies per pass, or ``max_bytes``).  Every hook is
removed in a ``finally`` block and acts only on forward passes of the calling
thread.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass

import numpy as np
import torch

from alti.adapters.base import split_values
from alti.catalog import INFOS
from alti.core.rollout import rolled_row
from alti.core.value_zeroing import cosine_distances, value_zeroing_matrix
from alti.methods import Source, register
from alti.methods.base import MethodOutput

#: Activations of the copies of one pass, by default (estimated, see :func:`copy_bytes`).
CPU_MAX_BYTES = 256 * 2**20
GPU_MAX_BYTES = 2 * 2**30


@dataclass
class LayerCall:
    """One applied layer of the real forward pass (batch of one)."""

    args: tuple
    kwargs: dict
    output: torch.Tensor | None = None  # (1, n, d) the layer's hidden-state output
    reached: torch.Tensor | None = None  # (n, n) bool: some head attends from i to j; None: unknown


def _hidden(output) -> torch.Tensor:
    """The hidden states in a layer's output (a tensor, or a tuple / model output whose first item they are)."""
    if isinstance(output, torch.Tensor):
        return output
    return output[0]


def _is_cache(value) -> bool:
    return hasattr(value, "get_seq_length")


def record_layers(explainer, input_ids: torch.Tensor) -> list[LayerCall]:
    """Run the model once on ``input_ids`` (1, n) and record every applied layer's call.

    Shared layers (ALBERT) are recorded once per application, in order.
    """
    adapter, model = explainer.adapter, explainer.model
    owner = threading.get_ident()
    calls: list[LayerCall] = []
    reached: list = []

    def before(module, args, kwargs):
        if threading.get_ident() == owner:
            calls.append(LayerCall(args=args, kwargs=dict(kwargs)))

    def after(module, args, output):
        if threading.get_ident() == owner:
            calls[-1].output = _hidden(output).detach()

    def attended(module, args, output):
        if threading.get_ident() == owner:
            probabilities = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
            reached.append(None if probabilities is None else (probabilities[0] != 0).any(0))

    blocks = {id(layer.block): layer.block for layer in adapter.layers}
    attentions = {id(layer.attention): layer.attention for layer in adapter.layers}
    handles = []
    kwargs = {"attention_mask": torch.ones_like(input_ids)}
    if adapter.output_attentions:
        kwargs["output_attentions"] = True
    parameters = inspect.signature(model.forward).parameters
    if "use_cache" in parameters:
        kwargs["use_cache"] = False  # a cache would make each rerun attend to the keys again
    if "logits_to_keep" in parameters:
        kwargs["logits_to_keep"] = 1  # no logits are needed; compute one row, not n x vocabulary
    try:
        for block in blocks.values():
            handles.append(block.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(block.register_forward_hook(after))
        for attention in attentions.values():
            handles.append(attention.register_forward_hook(attended))
        with torch.inference_mode():
            model(input_ids=input_ids, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    if len(calls) != adapter.num_layers or any(call.output is None for call in calls):
        raise RuntimeError(
            f"recorded {len(calls)} layer calls for a {adapter.num_layers}-layer model; the adapter's "
            "blocks do not match the forward pass"
        )
    if len(reached) == len(calls):
        for call, mask in zip(calls, reached):
            call.reached = mask
    return calls


def _expand(value, copies: int):
    """``value`` with every batch-of-one tensor (2 or more dimensions) repeated ``copies`` times;
    a cache object becomes None (the layer must not append to the real pass's keys)."""
    if isinstance(value, torch.Tensor):
        if value.dim() >= 2 and value.shape[0] == 1:
            return value.expand(copies, *value.shape[1:]).contiguous()
        return value
    if isinstance(value, tuple):
        items = [_expand(v, copies) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_expand(v, copies) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, copies) for k, v in value.items()}
    if _is_cache(value):
        return None
    return value


def _ffn_width(config, hidden: int) -> int:
    for name in ("intermediate_size", "hidden_dim", "n_inner", "ffn_dim"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 4 * hidden


def copy_bytes(explainer, n: int, hidden: int, itemsize: int) -> int:
    """Estimated activation bytes of one copy of a layer's rerun at ``n`` tokens.

    Projections, residuals and norms (about 8 vectors of width d per token),
    the FFN (about 4 of its width), attention scores and probabilities (about
    3 per head and pair).
    """
    ffn = _ffn_width(explainer.model.config, hidden)
    heads = explainer.adapter.num_heads
    return itemsize * (n * (8 * hidden + 4 * ffn) + 3 * heads * n * n)


def copies_per_pass(explainer, n: int, hidden: int, itemsize: int, batch_size=None, max_bytes=None) -> int:
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        return min(int(batch_size), n)
    if max_bytes is None:
        max_bytes = GPU_MAX_BYTES if explainer.device.type == "cuda" else CPU_MAX_BYTES
    return max(1, min(n, int(max_bytes) // copy_bytes(explainer, n, hidden, itemsize)))


class _Zeroing:
    """A forward hook on the value modules that zeroes, in copy b, the value row ``sources[b]``."""

    def __init__(self, adapter):
        self.layout = adapter.value_layout
        self.kv_heads = adapter.kv_heads
        self.head_dim = adapter.head_dim
        self.owner = threading.get_ident()
        self.sources: torch.Tensor | None = None
        self.calls = 0

    def __call__(self, module, args, output):
        if self.sources is None or threading.get_ident() != self.owner:
            return None
        self.calls += 1
        output = output.clone()
        values = split_values(output, self.layout, self.kv_heads, self.head_dim)  # a view into output
        copies = torch.arange(len(self.sources), device=output.device)
        values[copies, self.sources] = 0
        return output


def layer_distances(explainer, call: LayerCall, index: int, copies: int, zeroing: _Zeroing) -> torch.Tensor:
    """``D[i, j]`` (n, n, float64) of one layer: target i's distance with source j's values zeroed."""
    block = explainer.adapter.layers[index].block
    real = call.output[0]
    n = real.shape[0]
    distances = torch.empty((n, n), dtype=torch.float64, device=real.device)
    for start in range(0, n, copies):
        explainer.pause_point()
        count = min(copies, n - start)
        # fresh copies for every pass (a layer that wrote into its input would not spoil the next)
        args, kwargs = _expand(call.args, count), _expand(call.kwargs, count)
        zeroing.sources = torch.arange(start, start + count, device=real.device)
        zeroing.calls = 0
        try:
            output = block(*args, **kwargs)
        finally:
            zeroing.sources = None
        if zeroing.calls != 1:
            raise RuntimeError(
                f"layer {index}'s value module ran {zeroing.calls} times in one call of the layer; "
                "value zeroing needs it exactly once"
            )
        distances[:, start : start + count] = cosine_distances(_hidden(output), real).T
    return distances


def value_zeroing_layers(explainer, input_ids: torch.Tensor, batch_size=None, max_bytes=None):
    """The per-layer maps (L, n, n; rows sum to 1, float64) and the copies per pass used."""
    input_ids = input_ids.to(explainer.device)
    zeroing = _Zeroing(explainer.adapter)
    values = {id(layer.value): layer.value for layer in explainer.adapter.layers}
    handles = []
    try:
        with torch.inference_mode():
            calls = record_layers(explainer, input_ids)
            real = calls[0].output
            n, hidden = real.shape[1], real.shape[2]
            copies = copies_per_pass(explainer, n, hidden, real.element_size(), batch_size, max_bytes)
            for module in values.values():
                handles.append(module.register_forward_hook(zeroing))
            layers = []
            for index, call in enumerate(calls):
                distances = layer_distances(explainer, call, index, copies, zeroing)
                layers.append(value_zeroing_matrix(distances, call.reached))
                calls[index] = None  # its arguments are no longer needed
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(layers), copies


def value_zeroing(explainer, input_ids, target, batch_size=None, max_bytes=None) -> MethodOutput:
    layers, copies = value_zeroing_layers(explainer, input_ids, batch_size, max_bytes)
    position = target.position
    scores = rolled_row(layers, position)
    settings = {
        "distance": "1 - cos (clipped to [0, 2])",
        "rows": "normalised (diagonal kept)",
        "scores_from": "rolled-out product",
        "target_position": position,
        "copies_per_pass": copies,
    }
    if position is None:
        settings["read"] = "mean of every row (mean pooling)"
    return MethodOutput(
        scores=scores.cpu().numpy().astype(np.float64),
        layers=layers.cpu().numpy(),
        settings=settings,
    )


def needs_blocks(explainer) -> str | None:
    if any(getattr(layer, "block", None) is None for layer in explainer.adapter.layers):
        return "its adapter names no whole layer (block) to rerun"
    return None


register(
    INFOS["value_zeroing"],
    value_zeroing,
    Source.MODEL,
    requires=needs_blocks,
)
