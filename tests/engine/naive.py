"""Deliberately naive reference implementations, one (i, j) pair at a time.

They read the model's own modules and the attention weights the model
returns; nothing here shares code with ``alti.core``.
"""

from __future__ import annotations

import torch


def layer_inputs_and_attentions(model, adapter, input_ids):
    """Inputs of every layer's value projection (via pre-hooks) and the attentions."""
    inputs = []
    handles = [
        m.register_forward_pre_hook(lambda mod, args: inputs.append(args[0][0].clone()))
        for m in {id(layer.value): layer.value for layer in adapter.layers}.values()
    ]
    try:
        with torch.no_grad():
            out = model(input_ids=input_ids, output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    return inputs, [a[0] for a in out.attentions]


def layer_norm(s, ln):
    mean = s.mean()
    var = ((s - mean) ** 2).mean()
    return ln.weight * (s - mean) / torch.sqrt(var + ln.eps) + ln.bias


def naive_layer(x, attn, modules, heads):
    """All per-layer matrices of one layer, by explicit loops over i, j and h."""
    n, d = x.shape
    dh = modules.value.out_features // heads
    w_v, b_v = modules.value.weight, modules.value.bias
    w_o, b_o = modules.output.weight, modules.output.bias
    ln, ln2 = modules.attention_norm, modules.output_norm
    gamma = ln.weight

    def f(h, j):  # (x_j W_V^h + b_V^h) W_O^h
        rows = slice(h * dh, (h + 1) * dh)
        v = x[j] @ w_v[rows].T + b_v[rows]
        return v @ w_o[:, rows].T

    z = torch.zeros(n, n, d, dtype=x.dtype)
    mix = torch.zeros(n, n, d, dtype=x.dtype)
    for i in range(n):
        for j in range(n):
            for h in range(heads):
                mix[i, j] += attn[h, i, j] * f(h, j)
            z[i, j] = mix[i, j] + (x[j] if i == j else 0)
    out = {name: torch.zeros(n, n, dtype=x.dtype) for name in ("alti", "alti_l2", "norm", "norm_rollout", "globenc")}
    identity_error = 0.0
    for i in range(n):
        s = z[i].sum(0) + b_o
        y = layer_norm(s, ln)
        sigma = torch.sqrt(((s - s.mean()) ** 2).mean() + ln.eps)
        total = torch.zeros(d, dtype=x.dtype)
        for j in range(n):
            t = gamma * (z[i, j] - z[i, j].mean()) / sigma
            total += t
            out["alti"][i, j] = max(0.0, float(y.abs().sum() - (y - t).abs().sum()))
            out["alti_l2"][i, j] = max(0.0, float(y.norm() - (y - t).norm()))
            out["norm"][i, j] = mix[i, j].norm()
            out["norm_rollout"][i, j] = t.norm()
            out["globenc"][i, j] = (ln2.weight * (t - t.mean())).norm()
        rebuilt = total + gamma * (b_o - b_o.mean()) / sigma + ln.bias
        identity_error = max(identity_error, float((rebuilt - y).abs().max()))
    for name in out:
        out[name] = out[name] / out[name].sum(-1, keepdim=True)
    return out, identity_error
