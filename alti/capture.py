"""One forward pass with hooks -> what every trace method needs, per layer.

Hooks are registered on the unique modules named by the adapter and removed in
a ``finally`` block, so no hook survives a call, also one that raised.  Modules
shared across depth (ALBERT) fire once per applied layer; calls are recorded in
order, so the k-th call of a role belongs to layer k.  Hooks record only
calls made by the thread that registered them, so forward passes of the same
model in other threads (a UI's workers) neither disturb nor see the capture.

A layer's trace is handed to ``on_layer`` as soon as the forward pass has
computed it (a pre-LN block once the next block starts, for its output) and
then forgotten, so only about one layer's attention probabilities are held at
a time; without ``on_layer`` the traces are collected into the result.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from alti.adapters import Adapter
from alti.adapters.base import linear_weight, split_values


@dataclass(frozen=True)
class LayerTrace:
    """Activations of one post-LN layer for a (padded) batch."""

    x: torch.Tensor  # (B, N, d) layer input, i.e. the value projection's input
    values: torch.Tensor  # (B, N, H*dh) x W_V + b_V
    attentions: torch.Tensor  # (B, H, N, N) post-softmax attention
    norm_input: torch.Tensor  # (B, N, d) input of the LayerNorm after attention
    norm_output: torch.Tensor  # (B, N, d) its output


@dataclass(frozen=True)
class PreLNTrace:
    """Activations of one pre-LN block for a (padded) batch."""

    x: torch.Tensor  # (B, N, d) the residual stream entering the block (N1's input)
    values: torch.Tensor  # (B, N, H_kv, dh) value vectors, from N1(x)
    attentions: torch.Tensor  # (B, H, N, N) post-softmax attention
    attention_output: torch.Tensor  # (B, N, d) the output projection's output, b_O included
    next_x: torch.Tensor  # (B, N, d) the residual stream after the block


@dataclass(frozen=True)
class Capture:
    logits: torch.Tensor
    layers: list  # LayerTrace (post-LN) or PreLNTrace (pre-LN), one per applied layer; [] with on_layer


class _Recorder:
    """The calls of each role, turned into layer traces as soon as a layer is complete."""

    def __init__(self, adapter: Adapter, on_layer: Callable[[int, object], None]):
        self.adapter = adapter
        self.on_layer = on_layer
        self.pre_ln = adapter.pre_ln
        if self.pre_ln:
            self.roles = {
                "attention": [layer.attention for layer in adapter.layers],
                "value": [layer.value for layer in adapter.layers],
                "input_norm": [layer.input_norm for layer in adapter.layers],
                "final_norm": [adapter.final_norm],
            }
        else:
            self.roles = {
                "attention": [layer.attention for layer in adapter.layers],
                "value": [layer.value for layer in adapter.layers],
                "norm": [layer.attention_norm for layer in adapter.layers],
            }
        self.calls: dict[str, list] = {role: [] for role in self.roles}
        self.done = 0  # layers handed on so far

    def record(self, role: str, args, output) -> None:
        if role == "attention":
            probabilities = None if output[1] is None else output[1].detach()
            self.calls[role].append((output[0].detach(), probabilities))
        else:
            self.calls[role].append((args[0].detach(), output.detach()))
        self.flush()

    def _complete(self, index: int) -> bool:
        if self.pre_ln:  # its output is the next block's input, or the final norm's
            after = len(self.calls["input_norm"]) > index + 1 or bool(self.calls["final_norm"])
            return after and len(self.calls["attention"]) > index and len(self.calls["value"]) > index
        return all(len(calls) > index for calls in self.calls.values())

    def flush(self) -> None:
        while self.done < self.adapter.num_layers and self._complete(self.done):
            index = self.done
            (attention_output, attentions), (_, value_out) = self.calls["attention"][index], self.calls["value"][index]
            if attentions is None:
                raise RuntimeError(
                    f"layer {index} returned no attention probabilities; load the model with "
                    "attn_implementation='eager'"
                )
            if self.pre_ln:
                x = self.calls["input_norm"][index][0]
                following = self.calls["input_norm"][index + 1 :] or self.calls["final_norm"]
                trace = PreLNTrace(
                    x=x,
                    values=split_values(
                        value_out, self.adapter.value_layout, self.adapter.kv_heads, self.adapter.head_dim
                    ),
                    attentions=attentions,
                    attention_output=attention_output,
                    next_x=following[0][0],
                )
                self.calls["input_norm"][index] = None
            else:
                value_in = self.calls["value"][index][0]
                norm_in, norm_out = self.calls["norm"][index]
                trace = LayerTrace(value_in, value_out, attentions, norm_in, norm_out)
                self.calls["norm"][index] = None
            self.calls["attention"][index] = self.calls["value"][index] = None  # forget as we go
            self.done += 1
            self.on_layer(index, trace)

    def check(self) -> None:
        counts = {role: len(calls) for role, calls in self.calls.items()}
        expected = self.adapter.num_layers
        if self.done != expected or any(count != expected for role, count in counts.items() if role != "final_norm"):
            raise RuntimeError(
                f"captured {counts} calls for a {expected}-layer model; the adapter's modules do not "
                "match the forward pass"
            )


def capture(
    model: torch.nn.Module,
    adapter: Adapter,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    on_layer: Callable[[int, object], None] | None = None,
    logits_to_keep: list[int] | None = None,
) -> Capture:
    """Run ``model`` once on ``input_ids`` (B, N) and hand on (or record) every layer.

    ``logits_to_keep``: for a causal LM, the positions whose logits are needed
    (the rest of its vocabulary-sized output is never computed).
    """
    collected: list = []
    recorder = _Recorder(adapter, on_layer or (lambda index, trace: collected.append(trace)))
    owner = threading.get_ident()

    def hook_for(role):
        def hook(module, args, output):
            if threading.get_ident() == owner:  # not another thread's forward pass
                recorder.record(role, args, output)

        return hook

    handles = []
    try:
        for role, modules in recorder.roles.items():
            for module in {id(m): m for m in modules}.values():
                handles.append(module.register_forward_hook(hook_for(role)))
        with torch.inference_mode():
            kwargs = {"output_attentions": True} if adapter.output_attentions else {}
            if position_ids is not None:
                kwargs["position_ids"] = position_ids
            if adapter.causal and "use_cache" in inspect.signature(model.forward).parameters:
                kwargs["use_cache"] = False  # no key/value cache: 2 n d_kv floats a layer, never read
            if logits_to_keep is not None:
                kwargs["logits_to_keep"] = torch.tensor(logits_to_keep, device=input_ids.device)
            out = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    recorder.check()
    return Capture(logits=out.logits.detach(), layers=collected)


class LayerView:
    """One layer of one example, cut out of a batch trace, in the maths dtype.

    The decomposition is computed on first use and shared by every method.
    ``folded`` caches each layer's folded output weights across calls (keyed
    by module, dtype and the parameters' version counters).  With a
    ``workspace`` (:mod:`alti.core.workspace`) the decomposition's arrays live
    in its buffers: valid until the next view with the same workspace is
    decomposed, so a caller passing one drops each view before the next.
    ``row_of_batch``: a function giving this example's row of a decomposition
    made for several rows at once (:func:`batch_decomposition`), used instead
    of decomposing the example alone.
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
        workspace=None,
        row_of_batch=None,
    ):
        self.modules = modules
        rows = slice(start, start + length)
        self.x = trace.x[index, rows].to(dtype)
        self.values = trace.values[index, rows].to(dtype)
        self.attentions = trace.attentions[index, :, rows, rows].to(dtype)
        self.norm_input = trace.norm_input[index, rows].to(dtype)
        self.norm_output = trace.norm_output[index, rows].to(dtype)
        self.dtype = dtype
        self._folded = {} if folded is None else folded
        self.workspace = workspace
        self._row_of_batch = row_of_batch
        self._decomposition = None

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(self.dtype)

    def folded_output_weight(self) -> torch.Tensor:
        return folded_output_weight(self.modules, self.dtype, self.attentions.shape[0], self._folded)

    def head_outputs(self) -> torch.Tensor:
        """``f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h``: (n, H, d)."""
        from alti.core import head_outputs

        return head_outputs(self.values, self.parameter(self.modules.output.weight), self.attentions.shape[0])

    @property
    def decomposition(self):
        from alti.core import decompose

        if self._decomposition is None and self._row_of_batch is not None:
            self._decomposition = self._row_of_batch()
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
                workspace=self.workspace,
            )
        return self._decomposition


class PreLNView:
    """One pre-LN block of one example, cut out of a batch trace, in the maths dtype.

    Rows ``start .. start + length`` of the padded batch are the example's
    tokens.  The decomposition is computed on first use; ``folded`` caches
    each block's per-head output weights across calls; ``workspace`` and
    ``row_of_batch``: as :class:`LayerView`'s.
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
        workspace=None,
        row_of_batch=None,
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
        self.workspace = workspace
        self._row_of_batch = row_of_batch
        self._decomposition = None

    @functools.cached_property
    def output(self) -> torch.Tensor:
        """``m = x + Attn(N1(x))`` of every token."""
        return self.x + self.attention_output

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(self.dtype)

    def output_bias(self) -> torch.Tensor:
        return output_bias(self.modules, self.x)

    def per_head_weight(self) -> torch.Tensor:
        return per_head_weight(self.modules, self.dtype, self.heads, self._folded)

    def head_outputs(self) -> torch.Tensor:
        """``f^h(x_j) = W_O^h v^h_j``: (n, H, d)."""
        return self.decomposition.head_vectors.transpose(0, 1)

    @property
    def decomposition(self):
        from alti.core.decomposition import decompose_pre_ln

        if self._decomposition is None and self._row_of_batch is not None:
            self._decomposition = self._row_of_batch()
        if self._decomposition is None:
            self._decomposition = decompose_pre_ln(
                values=self.values,
                x=self.x,
                attentions=self.attentions,
                out_weight=self.per_head_weight(),
                out_bias=self.output_bias(),
                output=self.output,
                workspace=self.workspace,
            )
        return self._decomposition

    def mixed_at(self, position: int) -> torch.Tensor:
        """``sum_h A^h[N, k] W_O^h v^h_k`` for every source k (n, d): the attention part of
        ``T_N(x_k)`` at row N = ``position`` (ALTI-Logit projects it on the readout, GUIDE §1.6)."""
        dec = self.decomposition
        return torch.einsum("hk,hkd->kd", dec.attentions[:, position, :], dec.head_vectors)


def folded_output_weight(modules, dtype: torch.dtype, heads: int, cache: dict) -> torch.Tensor:
    """A post-LN layer's W_O with gamma and the centring folded in (``fold_output_weight``),
    kept in ``cache`` by module, dtype and the parameters' version counters."""
    from alti.core import fold_output_weight

    weight, gamma = modules.output.weight, modules.attention_norm.weight
    key = (id(modules.output), dtype, weight._version, gamma._version)
    if key not in cache:
        cache[key] = fold_output_weight(weight.detach().to(dtype), gamma.detach().to(dtype), heads)
    return cache[key]


def per_head_weight(modules, dtype: torch.dtype, heads: int, cache: dict) -> torch.Tensor:
    """A pre-LN block's W_O per head (``per_head_output_weight``), kept in ``cache`` like
    :func:`folded_output_weight`."""
    from alti.core.decomposition import per_head_output_weight

    weight = linear_weight(modules.output)
    key = (id(modules.output), dtype, weight._version)
    if key not in cache:
        cache[key] = per_head_output_weight(weight.detach().to(dtype), heads)
    return cache[key]


def output_bias(modules, like: torch.Tensor) -> torch.Tensor:
    """b_O in ``like``'s dtype, or zeros where the output projection has none."""
    bias = getattr(modules.output, "bias", None)
    if bias is None:
        return like.new_zeros(like.shape[-1])
    return bias.detach().to(like.dtype)


def batch_decomposition(
    trace, modules, rows: list[int], spans: list[tuple[int, int]], dtype: torch.dtype, heads: int, cache: dict
):
    """One layer of the padded batch's consecutive ``rows`` decomposed at once, in the maths dtype
    (:attr:`BatchLayer.decomposition`)."""
    return BatchLayer(trace, modules, rows, spans, dtype, heads, cache).decomposition


class BatchLayer:
    """One layer of a group of consecutive rows of a padded batch, in the maths dtype: what a
    method registered ``batched=True`` computes from (the GPU path of a batch).

    ``spans[k]`` are row ``rows[k]``'s token positions; only the positions from the
    first row's start to the last row's stop are kept (the others are padding of all of them),
    and ``spans`` here count from there.  ``attentions`` (B, H, N, N) is read through a view
    of the trace (no copy unless the dtype changes); ``decomposition`` is made on first use.
    ``cache``: the explainer's cache of per-layer output weights.
    """

    def __init__(
        self, trace, modules, rows: list[int], spans: list[tuple[int, int]], dtype: torch.dtype, heads: int, cache: dict
    ):
        if list(rows) != list(range(rows[0], rows[0] + len(rows))):
            raise ValueError(f"BatchLayer: rows {rows} are not consecutive")
        low, high = min(start for start, _ in spans), max(stop for _, stop in spans)
        self.trace, self.modules, self.dtype, self.heads, self._cache = trace, modules, dtype, heads, cache
        self._picked, self._kept = slice(rows[0], rows[0] + len(rows)), slice(low, high)
        self.spans = [(start - low, stop - low) for start, stop in spans]

    def parameter(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(self.dtype)

    def _cut(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[self._picked, self._kept].to(self.dtype)

    @functools.cached_property
    def attentions(self) -> torch.Tensor:
        return self.trace.attentions[self._picked, :, self._kept, self._kept].to(self.dtype)

    def rows_of(self, matrices: torch.Tensor) -> list[torch.Tensor]:
        """Each row's (n, n) matrix out of (B, N, N) matrices of the whole group."""
        from alti.core.decomposition import rows_of

        return rows_of(matrices, self.spans)

    @functools.cached_property
    def decomposition(self):
        from alti.core.decomposition import decompose_batch_post_ln, decompose_batch_pre_ln

        trace, modules, dtype = self.trace, self.modules, self.dtype
        if isinstance(trace, PreLNTrace):
            x = self._cut(trace.x)
            return decompose_batch_pre_ln(
                values=self._cut(trace.values),
                x=x,
                attentions=self.attentions,
                out_weight=per_head_weight(modules, dtype, self.heads, self._cache),
                out_bias=output_bias(modules, x),
                output=x + self._cut(trace.attention_output),
                spans=self.spans,
            )
        norm = modules.attention_norm
        return decompose_batch_post_ln(
            values=self._cut(trace.values),
            x=self._cut(trace.x),
            attentions=self.attentions,
            folded_weight=folded_output_weight(modules, dtype, self.heads, self._cache),
            out_bias=self.parameter(modules.output.bias),
            norm_input=self._cut(trace.norm_input),
            norm_output=self._cut(trace.norm_output),
            gamma=self.parameter(norm.weight),
            eps=norm.eps,
            spans=self.spans,
        )
