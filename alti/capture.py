"""One forward pass with hooks -> what every trace method needs, per layer.

Hooks are registered on the unique modules named by the adapter and removed in
a ``finally`` block, so no hook survives a call, also one that raised.  Modules
shared across depth (ALBERT) fire once per applied layer; calls are recorded in
order, so the k-th call of a role belongs to layer k.  Hooks record only
calls made by the thread that registered them, so forward passes of the same
model in other threads (a UI's workers) neither disturb nor see the capture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from alti.adapters import Adapter


@dataclass(frozen=True)
class LayerTrace:
    """Activations of one layer for a (padded) batch."""

    x: torch.Tensor  # (B, N, d) layer input, i.e. the value projection's input
    values: torch.Tensor  # (B, N, H*dh) x W_V + b_V
    attentions: torch.Tensor  # (B, H, N, N) post-softmax attention
    norm_input: torch.Tensor  # (B, N, d) input of the LayerNorm after attention
    norm_output: torch.Tensor  # (B, N, d) its output
    output_norm_input: torch.Tensor  # (B, N, d) input of the LayerNorm after the FFN


@dataclass(frozen=True)
class Capture:
    logits: torch.Tensor
    layers: list[LayerTrace]


def capture(
    model: torch.nn.Module,
    adapter: Adapter,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> Capture:
    """Run ``model`` once on ``input_ids`` (B, N) and record every layer."""
    roles = {
        "attention": [layer.attention for layer in adapter.layers],
        "value": [layer.value for layer in adapter.layers],
        "norm": [layer.attention_norm for layer in adapter.layers],
        "output_norm": [layer.output_norm for layer in adapter.layers],
    }
    calls: dict[str, list] = {role: [] for role in roles}
    owner = threading.get_ident()

    def recorder(role):
        def hook(module, args, output):
            if threading.get_ident() != owner:  # another thread's forward pass
                return
            if role == "attention":
                calls[role].append(None if output[1] is None else output[1].detach())
            else:
                calls[role].append((args[0].detach(), output.detach()))

        return hook

    handles = []
    try:
        for role, modules in roles.items():
            for module in {id(m): m for m in modules}.values():
                handles.append(module.register_forward_hook(recorder(role)))
        with torch.inference_mode():
            kwargs = {"output_attentions": True} if adapter.output_attentions else {}
            out = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    finally:
        for handle in handles:
            handle.remove()

    expected = adapter.num_layers
    counts = [len(v) for v in calls.values()]
    if any(count != expected for count in counts) or any(a is None for a in calls["attention"]):
        raise RuntimeError(
            f"captured {counts} calls (attention, value, norms) for a {expected}-layer model "
            "without every attention matrix; load the model with attn_implementation='eager'"
        )
    layers = [
        LayerTrace(
            x=value_in,
            values=value_out,
            attentions=attn,
            norm_input=norm_in,
            norm_output=norm_out,
            output_norm_input=out_norm_in,
        )
        for attn, (value_in, value_out), (norm_in, norm_out), (out_norm_in, _) in zip(
            calls["attention"], calls["value"], calls["norm"], calls["output_norm"]
        )
    ]
    return Capture(logits=out.logits.detach(), layers=layers)


class LayerView:
    """One layer of one example, cut out of a batch trace, in the maths dtype.

    The decomposition is computed on first use and shared by every method.
    ``folded`` caches each layer's folded output weights across calls (keyed
    by module, dtype and the parameters' version counters).
    """

    def __init__(
        self,
        trace: LayerTrace,
        modules,
        index: int,
        length: int,
        dtype: torch.dtype,
        folded: dict | None = None,
    ):
        self.modules = modules
        self.x = trace.x[index, :length].to(dtype)
        self.values = trace.values[index, :length].to(dtype)
        self.attentions = trace.attentions[index, :, :length, :length].to(dtype)
        self.norm_input = trace.norm_input[index, :length].to(dtype)
        self.norm_output = trace.norm_output[index, :length].to(dtype)
        self.output_norm_input = trace.output_norm_input[index, :length].to(dtype)
        self.dtype = dtype
        self._folded = {} if folded is None else folded
        self._decomposition = None

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(self.dtype)

    def folded_output_weight(self) -> torch.Tensor:
        from alti.core import fold_output_weight

        weight, gamma = self.modules.output.weight, self.modules.attention_norm.weight
        key = (id(self.modules.output), self.dtype, weight._version, gamma._version)
        if key not in self._folded:
            heads = self.attentions.shape[0]
            self._folded[key] = fold_output_weight(self.parameter(weight), self.parameter(gamma), heads)
        return self._folded[key]

    @property
    def decomposition(self):
        from alti.core import decompose

        if self._decomposition is None:
            norm = self.modules.attention_norm
            self._decomposition = decompose(
                values=self.values,
                x=self.x,
                attentions=self.attentions,
                folded_weight=self.folded_output_weight(),
                out_bias=self.parameter(self.modules.output.bias),
                norm_input=self.norm_input,
                norm_output=self.norm_output,
                gamma=self.parameter(norm.weight),
                beta=self.parameter(norm.bias),
                eps=norm.eps,
            )
        return self._decomposition
