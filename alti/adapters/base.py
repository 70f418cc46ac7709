"""The typed view of one model that every method works on.

An adapter names, once per model, the modules the decomposition needs in each
layer.  Methods never look at model classes; they only read an :class:`Adapter`.

Two block shapes are known (GUIDE §1.1 and §1.5):

* ``post_ln``: ``LayerNorm(x + Attn(x))`` then ``LayerNorm(m + FFN(m))``
  (BERT and its relatives): layers are :class:`LayerModules`.
* ``pre_ln``: ``m = x + Attn(N1(x))`` then ``x' = m + MLP(N2(m))`` (or the
  parallel form ``x' = x + Attn(N1(x)) + MLP(N2(x))``): decoders such as GPT-2
  and Llama, and ModernBERT.  Layers are :class:`PreLNLayer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

BLOCKS = ("post_ln", "pre_ln")
TASKS = ("classifier", "causal_lm", "masked_lm", "encoder")
#: Where a head reads: the first token ([CLS]), the last (non-pad) token, the
#: mean of every row, or the [MASK] of a masked-LM task.
READS = ("first", "last", "mean", "mask")
#: How the value vectors sit in the value module's output (B, N, width):
#: ``heads``: H_kv heads side by side (a separate v projection);
#: ``qkv``: queries, keys, values side by side, the values last (GPT-2's c_attn,
#: ModernBERT's Wqkv, fused GQA projections);
#: ``qkv_per_head``: per head, its query, key and value side by side (GPT-NeoX).
VALUE_LAYOUTS = ("heads", "qkv", "qkv_per_head")


@dataclass(frozen=True)
class LayerModules:
    """The modules of one post-LN encoder layer that ALTI decomposes."""

    attention: nn.Module  # returns (mixed values, attention probabilities (B, H, n, n))
    value: nn.Linear  # x -> x W_V + b_V, all heads side by side
    output: nn.Linear  # the attention output projection W_O, b_O
    attention_norm: nn.LayerNorm  # LayerNorm(attention output + x)
    output_norm: nn.LayerNorm  # LayerNorm(FFN output + its input)
    block: nn.Module | None = None  # the whole layer, as the model calls it (Value Zeroing reruns it)
    #: the FFN's two linear maps (DecompX): ``ffn_out(act(ffn_in(m)))`` is added to the
    #: first LayerNorm's output ``m`` before ``output_norm``; the activation is read from
    #: the forward pass (ffn_out's input), so it need not be named
    ffn_in: nn.Linear | None = None
    ffn_out: nn.Linear | None = None


@dataclass(frozen=True)
class PreLNLayer:
    """The modules of one pre-LN block that ALTI decomposes.

    The input of ``input_norm`` is the residual stream ``x`` entering the
    block; ``attention`` returns ``(output projection's output, attention
    probabilities (B, H, n, n))``; the value vectors are read from the output
    of ``value`` (see :data:`VALUE_LAYOUTS`); ``output`` is the output
    projection (``nn.Linear`` or GPT-2's ``Conv1D``).
    """

    input_norm: nn.Module
    attention: nn.Module
    value: nn.Module
    output: nn.Module
    block: nn.Module | None = None  # the whole block, as the model calls it


@dataclass(frozen=True)
class Head:
    """What the model's head reads and, where it is linear, how.

    ``readout`` is the linear map applied straight to the final norm's output
    (a causal LM's unembedding, a decoder classifier's ``score``); it is
    ``None`` where the head is not linear in the final hidden state (BERT's
    pooler, ModernBERT's prediction head), and then ALTI-Logit does not apply.
    """

    task: str  # one of TASKS
    reads: str  # one of READS
    readout: nn.Module | None = None
    final_norm: nn.Module | None = None


@dataclass(frozen=True)
class Adapter:
    """Resolved modules of one model.

    ``layers`` has one entry per applied layer, so a model that shares one
    layer (ALBERT) lists the same modules several times.  ``embeddings`` is the
    module whose output is the token embeddings (for Captum's Layer*
    attribution methods).
    """

    model_type: str
    encoder: nn.Module
    embeddings: nn.Module
    layers: tuple
    num_heads: int
    max_positions: int
    # the attention module returns its probabilities only when the model is
    # called with output_attentions=True (other models return them always;
    # asking would make transformers install permanent recording hooks)
    output_attentions: bool = False
    block: str = "post_ln"
    num_kv_heads: int | None = None
    value_layout: str = "heads"
    causal: bool = False
    #: for pre-LN models: the norm after the last block (its input is the final residual)
    final_norm: nn.Module | None = None
    #: how a sequence classifier of this family reads: "first", "last" or "mean"
    classifier_reads: str = "first"
    head: Head = field(default_factory=lambda: Head("encoder", "first"))
    #: a sequence classifier's head as linear maps applied in turn to the vector at
    #: position 0 (the last layer's output), each to the activation of the previous one's
    #: output (BERT: pooler.dense, classifier; RoBERTa: classifier.dense, out_proj); the
    #: last one gives the logits.  Empty where unknown (DecompX then does not apply).
    classifier_layers: tuple = ()

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_dim(self) -> int:
        if self.block == "pre_ln":
            return linear_weight(self.layers[0].output).shape[1] // self.num_heads
        return self.layers[0].value.out_features // self.num_heads

    @property
    def pre_ln(self) -> bool:
        return self.block == "pre_ln"


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight of a linear map as ``nn.Linear`` stores it: (out, in).

    GPT-2's ``Conv1D`` stores the transpose (in, out).
    """
    if type(module).__name__ == "Conv1D":
        return module.weight.T
    return module.weight


def split_values(output: torch.Tensor, layout: str, kv_heads: int, head_dim: int) -> torch.Tensor:
    """The value vectors (..., N, H_kv, dh) inside a value module's output (..., N, width)."""
    width = kv_heads * head_dim
    if layout == "heads":
        values = output[..., :width]
    elif layout == "qkv":
        values = output[..., output.shape[-1] - width :]
    elif layout == "qkv_per_head":
        per_head = output.unflatten(-1, (kv_heads, -1))
        return per_head[..., 2 * head_dim : 3 * head_dim]
    else:
        raise ValueError(f"unknown value layout {layout!r}; use one of {', '.join(VALUE_LAYOUTS)}")
    return values.unflatten(-1, (kv_heads, head_dim))


@dataclass(frozen=True)
class NormForm:
    """A norm as ``gamma * centre?(x) / scale(x) + beta``, scale fixed per token.

    ``centred`` for LayerNorm (scale: the standard deviation), not for RMSNorm
    (scale: the root mean square); ``gamma`` is the effective weight (Gemma's
    RMSNorm multiplies by ``1 + weight``); ``beta`` is None without a bias.
    """

    gamma: torch.Tensor
    beta: torch.Tensor | None
    eps: float
    centred: bool

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """The per-token divisor at ``x`` (..., d)."""
        if self.centred:
            centred = x - x.mean(-1, keepdim=True)
            return ((centred * centred).mean(-1) + self.eps).sqrt()
        return ((x * x).mean(-1) + self.eps).sqrt()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        body = x - x.mean(-1, keepdim=True) if self.centred else x
        out = self.gamma * body / self.scale(x)[..., None]
        return out if self.beta is None else out + self.beta


def norm_form(module: nn.Module) -> NormForm:
    """The :class:`NormForm` of a LayerNorm or RMSNorm module, checked on a probe vector.

    Raises ValueError for a norm of another form (it would be approximated).
    """
    weight = getattr(module, "weight", None)
    eps = getattr(module, "eps", getattr(module, "variance_epsilon", None))
    if eps is None:
        raise ValueError(f"{type(module).__name__} has no eps; it is not a LayerNorm or RMSNorm")
    width = weight.shape[0] if weight is not None else module.normalized_shape[0]
    dtype = weight.dtype if weight is not None else torch.float32
    ones = torch.ones(width, dtype=torch.float64)
    gamma = ones if weight is None else weight.detach().double()
    bias = getattr(module, "bias", None)
    beta = None if bias is None else bias.detach().double()
    candidates = (
        [NormForm(gamma, beta, float(eps), True)]
        if isinstance(module, nn.LayerNorm)
        else [NormForm(gamma, beta, float(eps), False), NormForm(1 + gamma, beta, float(eps), False)]
    )
    probe = torch.linspace(-2.0, 3.0, width, dtype=torch.float64)
    with torch.no_grad():
        seen = module(probe.to(dtype=dtype, device=gamma.device if weight is None else weight.device)[None])[0]
    seen = seen.double().cpu()
    tolerance = 1e-6 if dtype == torch.float64 else 2e-2
    for form in candidates:
        device_form = NormForm(form.gamma.cpu(), None if form.beta is None else form.beta.cpu(), form.eps, form.centred)
        if torch.allclose(device_form.apply(probe), seen, atol=tolerance, rtol=tolerance):
            return form
    raise ValueError(f"{type(module).__name__} is neither a LayerNorm nor an RMSNorm of a known form")
