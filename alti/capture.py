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
from alti.adapters.base import linear_weight, split_values


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
class PreLNTrace:
    """Activations of one pre-LN block for a (padded) batch."""

    x: torch.Tensor  # (B, N, d) the residual stream entering the block (N1's input)
    values: torch.Tensor  # (B, N, H_kv, dh) value vectors, from N1(x)
    attentions: torch.Tensor  # (B, H, N, N) post-softmax attention
    attention_output: torch.Tensor  # (B, N, d) the output projection's output, b_O included
    next_x: torch.Tensor  # (B, N, d) the residual stream after the block

    @property
    def output(self) -> torch.Tensor:
        """``m = x + Attn(N1(x))``: the residual stream right after the attention block."""
        return self.x + self.attention_output


@dataclass(frozen=True)
class Capture:
    logits: torch.Tensor
    layers: list  # LayerTrace (post-LN) or PreLNTrace (pre-LN), one per applied layer


def capture(
    model: torch.nn.Module,
    adapter: Adapter,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> Capture:
    """Run ``model`` once on ``input_ids`` (B, N) and record every layer."""
    if adapter.pre_ln:
        roles = {
            "attention": [layer.attention for layer in adapter.layers],
            "value": [layer.value for layer in adapter.layers],
            "input_norm": [layer.input_norm for layer in adapter.layers],
            "final_norm": [adapter.final_norm],
        }
    else:
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
                probabilities = None if output[1] is None else output[1].detach()
                calls[role].append((output[0].detach(), probabilities))
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
            if position_ids is not None:
                kwargs["position_ids"] = position_ids
            out = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    finally:
        for handle in handles:
            handle.remove()

    expected = adapter.num_layers
    counts = [len(calls[role]) for role in roles if role != "final_norm"]
    if any(count != expected for count in counts) or any(a[1] is None for a in calls["attention"]):
        raise RuntimeError(
            f"captured {counts} calls (attention, value, norms) for a {expected}-layer model "
            "without every attention matrix; load the model with attn_implementation='eager'"
        )
    if adapter.pre_ln:
        return Capture(logits=out.logits.detach(), layers=_pre_ln_layers(adapter, calls))
    layers = [
        LayerTrace(
            x=value_in,
            values=value_out,
            attentions=attn,
            norm_input=norm_in,
            norm_output=norm_out,
            output_norm_input=out_norm_in,
        )
        for (_, attn), (value_in, value_out), (norm_in, norm_out), (out_norm_in, _) in zip(
            calls["attention"], calls["value"], calls["norm"], calls["output_norm"]
        )
    ]
    return Capture(logits=out.logits.detach(), layers=layers)


def _pre_ln_layers(adapter: Adapter, calls: dict[str, list]) -> list[PreLNTrace]:
    if len(calls["final_norm"]) != 1:
        raise RuntimeError(f"the final norm ran {len(calls['final_norm'])} times instead of once")
    residuals = [x for x, _ in calls["input_norm"]] + [calls["final_norm"][0][0]]
    head_dim = adapter.head_dim
    return [
        PreLNTrace(
            x=residuals[index],
            values=split_values(value_out, adapter.value_layout, adapter.kv_heads, head_dim),
            attentions=attn,
            attention_output=attn_out,
            next_x=residuals[index + 1],
        )
        for index, ((attn_out, attn), (_, value_out)) in enumerate(zip(calls["attention"], calls["value"]))
    ]


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
        start: int = 0,
    ):
        self.modules = modules
        rows = slice(start, start + length)
        self.x = trace.x[index, rows].to(dtype)
        self.values = trace.values[index, rows].to(dtype)
        self.attentions = trace.attentions[index, :, rows, rows].to(dtype)
        self.norm_input = trace.norm_input[index, rows].to(dtype)
        self.norm_output = trace.norm_output[index, rows].to(dtype)
        self.output_norm_input = trace.output_norm_input[index, rows].to(dtype)
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

    def head_outputs(self) -> torch.Tensor:
        """``f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h``: (n, H, d)."""
        from alti.core import head_outputs

        return head_outputs(self.values, self.parameter(self.modules.output.weight), self.attentions.shape[0])

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


class PreLNView:
    """One pre-LN block of one example, cut out of a batch trace, in the maths dtype.

    Rows ``start .. start + length`` of the padded batch are the example's
    tokens.  The decomposition is computed on first use; ``folded`` caches
    each block's per-head output weights across calls.
    """

    def __init__(
        self,
        trace: PreLNTrace,
        modules,
        index: int,
        start: int,
        length: int,
        dtype: torch.dtype,
        folded: dict | None,
        heads: int,
    ):
        self.modules = modules
        rows = slice(start, start + length)
        self.x = trace.x[index, rows].to(dtype)
        self.values = trace.values[index, rows].to(dtype)  # (n, H_kv, dh)
        self.attentions = trace.attentions[index, :, rows, rows].to(dtype)
        self.attention_output = trace.attention_output[index, rows].to(dtype)
        self.next_x = trace.next_x[index, rows].to(dtype)
        self.dtype = dtype
        self.heads = heads
        self._folded = {} if folded is None else folded
        self._decomposition = None

    @property
    def output(self) -> torch.Tensor:
        """``m = x + Attn(N1(x))`` of every token."""
        return self.x + self.attention_output

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(self.dtype)

    def output_bias(self) -> torch.Tensor:
        bias = getattr(self.modules.output, "bias", None)
        if bias is None:
            return self.x.new_zeros(self.x.shape[-1])
        return self.parameter(bias)

    def per_head_weight(self) -> torch.Tensor:
        from alti.core.decomposition import per_head_output_weight

        weight = linear_weight(self.modules.output)
        key = (id(self.modules.output), self.dtype, weight._version)
        if key not in self._folded:
            self._folded[key] = per_head_output_weight(self.parameter(weight), self.heads)
        return self._folded[key]

    def head_outputs(self) -> torch.Tensor:
        """``f^h(x_j) = W_O^h v^h_j``: (n, H, d)."""
        return self.decomposition.head_vectors.transpose(0, 1)

    @property
    def decomposition(self):
        from alti.core.decomposition import decompose_pre_ln

        if self._decomposition is None:
            self._decomposition = decompose_pre_ln(
                values=self.values,
                x=self.x,
                attentions=self.attentions,
                out_weight=self.per_head_weight(),
                out_bias=self.output_bias(),
                output=self.output,
            )
        return self._decomposition

    def logit_contributions(self, direction: torch.Tensor, position: int) -> torch.Tensor:
        """``u~ . sum_h A^h[N, k] W_O^h v^h_k`` for every source k (n,): what each token's
        attention part at row ``position`` adds to the explained logit (GUIDE §1.6)."""
        dec = self.decomposition
        along = dec.head_vectors @ direction.to(self.dtype)  # (H, n)
        return (dec.attentions[:, position, :] * along).sum(0)
