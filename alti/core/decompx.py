"""DecompX's maths on one example (Modarressi et al., ACL 2023; GUIDE §1.7).

The state is a tensor ``parts`` of shape (m, n, d): ``parts[i, k]`` is what input
token k contributes to the vector of target token i, so that ``parts[i].sum(0)``
is the model's own vector of token i at that point.  ``m`` is the number of
targets kept: all n tokens, or only the first ([CLS]) in the last layer, whose
other rows the head never reads.

Each function below carries the parts through one stage of a post-LN layer or
of the classification head, in place where it can, the way the authors' code
(mohsenfayyaz/DecompX, ``src/modeling_bert.py``, the paper's default config) does:

- a bias ``b`` added to a vector is shared among its parts ``v_k`` with weights
  ``|v_k . b| / sum_k' |v_k' . b|`` ("AbsDot"; a vector whose parts are all
  orthogonal to ``b`` shares it equally, where the authors' ``+ 1e-12`` in the
  denominator drops it);
- attention: the parts are projected by ``W_V`` first and mixed per head in
  head space (``sum_s A^h[i, s] (parts[s, k] W_V^h)``), then go through ``W_O``;
  the residual adds the previous parts; ``W_O b_V + b_O`` is split.  In the first
  layer (``parts[i, k] = [i == k] x_i``) each token keeps ``b_V`` inside its own
  value vector and only ``b_O`` is split;
- LayerNorm: each part is centred by its own mean, divided by the standard
  deviation of the *real* input vector, times gamma; beta is split;
- FFN and head activations: the zero-origin slope ``theta = act(zeta) / zeta``
  of the real pre-activation scales every part alike.

Nothing here builds the [H, n, n, d] tensor of the authors' code; the big
products (``W_V``, ``W_O``, the FFN's two linears) are single matmuls over
chunks of parts, sized by the caller's memory budget.
"""

from __future__ import annotations

import torch


def absdot_weights(dots: torch.Tensor) -> torch.Tensor:
    """AbsDot shares (m, n) from the dot products (m, n) of each part with the bias."""
    weights = dots.abs()
    total = weights.sum(-1, keepdim=True)
    equal = torch.full_like(weights, 1.0 / weights.shape[-1])
    return torch.where(total > 0, weights / torch.where(total > 0, total, 1.0), equal)


def split_bias_(parts: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Add ``bias`` (d,) to the vectors whose parts are ``parts`` (m, n, d), shared by AbsDot."""
    if bias is None:
        return parts
    weights = absdot_weights(torch.matmul(parts, bias))
    parts.view(-1, parts.shape[-1]).addr_(weights.reshape(-1), bias)
    return parts


def layer_norm_(
    parts: torch.Tensor, sigma: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None
) -> torch.Tensor:
    """LayerNorm of the vectors whose parts are ``parts`` (m, n, d), with ``sigma`` (m,)
    the real inputs' ``sqrt(var + eps)``: each part centred, scaled, beta split."""
    parts.sub_(parts.mean(-1, keepdim=True))
    scale = (1.0 / sigma)[:, None, None]
    parts.mul_(scale if gamma is None else scale * gamma)
    return split_bias_(parts, beta)


def first_attention(
    x: torch.Tensor, values: torch.Tensor, attentions: torch.Tensor, w_o: torch.Tensor, m: int, chunk: int
) -> torch.Tensor:
    """Parts (m, n, d) of the first layer's attention output plus residual, before ``b_O``.

    ``x`` (n, d) the layer input, ``values`` (n, H*dh) its value vectors with ``b_V``,
    ``attentions`` (H, n, n), ``w_o`` (d, H*dh); targets are the first m tokens:
    ``parts[i, k] = sum_h A^h[i, k] v^h_k W_O^h + [i == k] x_k``; ``chunk`` tokens k at a time.
    """
    heads, n = attentions.shape[0], x.shape[0]
    head_dim = values.shape[-1] // heads
    per_head = torch.bmm(
        values.view(n, heads, head_dim).transpose(0, 1),  # (H, n, dh)
        w_o.view(-1, heads, head_dim).permute(1, 2, 0),  # (H, dh, d)
    ).transpose(0, 1)  # (n_k, H, d): f^h(x_k)
    weights = attentions[:, :m, :].permute(2, 1, 0)  # (n_k, m, H)
    parts = x.new_empty(m, n, x.shape[-1])
    for start in range(0, n, chunk):
        block = slice(start, start + chunk)
        parts[:, block] = torch.bmm(weights[block], per_head[block]).transpose(0, 1)
    rows = torch.arange(m, device=x.device)
    parts[rows, rows] += x[:m]
    return parts


def attention_(
    parts: torch.Tensor, attentions: torch.Tensor, w_v: torch.Tensor, w_o: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Attention output plus residual of every token, in place on ``parts`` (n, n, d), before
    the split bias ``W_O b_V + b_O``.  Parts go through ``W_V`` (no bias), are mixed per head
    in head space, then through ``W_O`` (no bias); ``chunk`` input tokens k at a time."""
    n, _, d = parts.shape
    heads = attentions.shape[0]
    width = w_v.shape[0]
    head_dim = width // heads
    for start in range(0, n, chunk):
        block = parts[:, start : start + chunk]  # (n_s, c, d), a view
        c = block.shape[1]
        values = torch.matmul(block, w_v.T)  # (n_s, c, H*dh)
        values = values.view(n, c, heads, head_dim).permute(2, 0, 1, 3).reshape(heads, n, c * head_dim)
        mixed = torch.bmm(attentions, values)  # (H, n_i, c*dh)
        del values
        mixed = mixed.view(heads, n, c, head_dim).permute(1, 2, 0, 3).reshape(n * c, width)
        block += torch.matmul(mixed, w_o.T).view(n, c, d)
    return parts


def attention_rows(
    parts: torch.Tensor, attentions: torch.Tensor, w_v: torch.Tensor, w_o: torch.Tensor, m: int
) -> torch.Tensor:
    """New parts (m, n, d) of the first m targets only (the last layer's [CLS]): attention
    output plus residual, before the split bias.  Mixing comes first here (m rows of A
    against the parts), then ``W_V`` and ``W_O`` on m * n vectors."""
    n, _, d = parts.shape
    heads = attentions.shape[0]
    width = w_v.shape[0]
    head_dim = width // heads
    rows = attentions[:, :m, :].reshape(heads * m, n)
    mixed = torch.matmul(rows, parts.reshape(n, n * d)).view(heads, m * n, d)  # (H, m*n_k, d)
    values = torch.bmm(mixed, w_v.view(heads, head_dim, d).transpose(1, 2))  # (H, m*n_k, dh)
    values = values.permute(1, 0, 2).reshape(m * n, width)
    return torch.matmul(values, w_o.T).view(m, n, d) + parts[:m]


def ffn_(
    parts: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    theta: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    chunk: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add the FFN's parts to ``parts`` (m, n, d) in place (the residual): per part
    ``W_2 (theta_i * (W_1 p + w1 b_1)) + w2 b_2``, with ``theta`` (m, d_ff) the real
    zero-origin slopes of target i, ``b_1`` and ``b_2`` split by AbsDot.

    ``b_1``'s shares come from ``p . (W_1^T b_1)`` (the same dot products, in d space), and
    its part passes through W_2 as ``w1 * W_2 (theta_i * b_1)``, so the (m, n, d_ff)
    intermediate is touched once (theta); ``chunk`` targets at a time.  ``out``: where
    to write the FFN's own parts instead (then ``parts`` is left as it is).
    """
    m, n, d = parts.shape
    shares = None
    if b1 is not None:
        shares = absdot_weights(torch.matmul(parts, torch.matmul(b1, w1)))  # (m, n)
    for start in range(0, m, chunk):
        rows = slice(start, min(start + chunk, m))
        c = rows.stop - rows.start
        hidden = torch.matmul(parts[rows].reshape(c * n, d), w1.T).view(c, n, -1)
        hidden.mul_(theta[rows, None, :])
        update = torch.matmul(hidden.view(c * n, -1), w2.T).view(c, n, d)
        del hidden
        if shares is not None:
            carried = torch.matmul(theta[rows] * b1, w2.T)  # (c, d): W_2 (theta_i * b_1)
            update.baddbmm_(shares[rows, :, None], carried[:, None, :])
        split_bias_(update, b2)
        if out is None:
            parts[rows] += update
        else:
            out[rows] = update
    return parts if out is None else out


def head(parts: torch.Tensor, layers: list) -> list[torch.Tensor]:
    """Carry the [CLS] parts (n, d) through the classifier's linear maps.

    ``layers``: ``(weight, bias or None, theta or None)`` in order; theta (out,) is the
    zero-origin slope of the activation after that map (None after the last).  Each
    bias is split among the tokens by AbsDot (the classifier's with one weight per
    token from the dot product over the classes).  Returns the parts after each map
    and after each activation; the last are the logits' parts (n, C).
    """
    stages = []
    for weight, bias, theta in layers:
        parts = torch.matmul(parts, weight.T)
        if bias is not None:
            parts = split_bias_(parts[None], bias)[0]
        stages.append(parts)
        if theta is not None:
            parts = parts * theta
            stages.append(parts)
    return stages


def zero_origin_slope(pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """``theta = act(zeta) / zeta`` from the real pre-activation ``pre`` and ``post = act(pre)``
    (0 where ``zeta`` is exactly 0: every part then sums to 0 there, as in the authors' code)."""
    nonzero = pre != 0
    return torch.where(nonzero, post / torch.where(nonzero, pre, 1.0), torch.zeros_like(pre))


def layer_scale(norm_input: torch.Tensor, eps: float) -> torch.Tensor:
    """(n,) ``sqrt(var + eps)`` of a LayerNorm's real inputs (n, d) (biased variance)."""
    centred = norm_input - norm_input.mean(-1, keepdim=True)
    return ((centred * centred).mean(-1) + eps).sqrt()
