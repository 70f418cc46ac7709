"""Deliberately naive pre-LN references, one (i, j) pair and one head at a time.

Module names are written out per family here (not taken from alti's
adapters), value vectors are cut out of each family's own projection, and the
block output ``m`` that the decomposition must rebuild is read from the model
itself: the input of the norm before the MLP, or for parallel blocks the
block's output minus the MLP's.
"""

from __future__ import annotations

import torch

# family: (blocks, N1, attention, output projection, N2 or None for parallel blocks, final norm, readout)
LAYOUT = {
    "gpt2": ("transformer.h", "ln_1", "attn", "attn.c_proj", "ln_2", "transformer.ln_f"),
    "llama": (
        "model.layers",
        "input_layernorm",
        "self_attn",
        "self_attn.o_proj",
        "post_attention_layernorm",
        "model.norm",
    ),
    "gpt_neox_sequential": (
        "gpt_neox.layers",
        "input_layernorm",
        "attention",
        "attention.dense",
        "post_attention_layernorm",
        "gpt_neox.final_layer_norm",
    ),
    "gpt_neox": (
        "gpt_neox.layers",
        "input_layernorm",
        "attention",
        "attention.dense",
        None,
        "gpt_neox.final_layer_norm",
    ),
    "phi": ("model.layers", "input_layernorm", "self_attn", "self_attn.dense", None, "model.final_layernorm"),
    "modernbert": ("model.layers", "attn_norm", "attn", "attn.Wo", "mlp_norm", "model.final_norm"),
}
for _kind in ("mistral", "qwen2", "qwen3", "gemma"):
    LAYOUT[_kind] = LAYOUT["llama"]


def _get(root, path):
    for part in path.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root


def values_of(kind, block, normed, heads, kv_heads, dh):
    """The value vectors (n, H_kv, dh) of one block from its normed input (n, d)."""
    n = normed.shape[0]
    if kind == "gpt2":
        qkv = normed @ block.attn.c_attn.weight + block.attn.c_attn.bias
        return qkv[:, 2 * heads * dh :].reshape(n, heads, dh)
    if kind.startswith("gpt_neox"):
        fused = block.attention.query_key_value(normed).reshape(n, heads, 3 * dh)
        return fused[:, :, 2 * dh :]
    if kind == "modernbert":
        return block.attn.Wqkv(normed).reshape(n, 3, heads, dh)[:, 2]
    return block.self_attn.v_proj(normed).reshape(n, kv_heads, dh)


def output_weight(kind, block):
    """W_O as (d, H*dh) and b_O (d,) or zeros."""
    proj = _get(block, LAYOUT[kind][3])
    weight = proj.weight.T if kind == "gpt2" else proj.weight
    bias = proj.bias if proj.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
    return weight, bias


def trace(model, kind, input_ids):
    """Per block: x, the normed input, the attentions, and the reference m; the final residual."""
    blocks_path, n1, _, _, n2, final = LAYOUT[kind]
    blocks = _get(model, blocks_path)
    seen = {"x": [], "normed": [], "m": [], "out": [], "mlp": [], "final": []}

    def record_norm(module, args, out):
        seen["x"].append(args[0][0].clone())
        seen["normed"].append(out[0].clone())

    def record_input(role):
        def hook(module, args):
            seen[role].append(args[0][0].clone())

        return hook

    def record_output(role):
        def hook(module, args, out):
            seen[role].append((out[0] if isinstance(out, tuple) else out)[0].clone())

        return hook

    handles = []
    for block in blocks:
        handles.append(_get(block, n1).register_forward_hook(record_norm))
        if n2 is not None:
            handles.append(_get(block, n2).register_forward_pre_hook(record_input("m")))
        else:
            handles.append(block.mlp.register_forward_hook(record_output("mlp")))
            handles.append(block.register_forward_hook(record_output("out")))
    handles.append(_get(model, final).register_forward_pre_hook(record_input("final")))
    try:
        with torch.no_grad():
            out = model(input_ids=input_ids, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    if n2 is None:
        seen["m"] = [o - mlp for o, mlp in zip(seen["out"], seen["mlp"])]
    return blocks, seen, [a[0] for a in out.attentions], out.logits[0], _get(model, final)


@torch.no_grad()
def naive_block(kind, block, x, normed, attn, m, heads, kv_heads):
    """ALTI (L1), ALTI-L2, norm rollout and the identity error of one block, by loops."""
    n, d = x.shape
    weight, bias = output_weight(kind, block)
    dh = weight.shape[1] // heads
    v = values_of(kind, block, normed, heads, kv_heads, dh)
    per_group = heads // kv_heads
    f = torch.zeros(heads, n, d, dtype=x.dtype)
    for h in range(heads):
        for j in range(n):
            f[h, j] = weight[:, h * dh : (h + 1) * dh] @ v[j, h // per_group]
    out = {name: torch.zeros(n, n, dtype=x.dtype) for name in ("alti", "alti_l2", "norm_rollout")}
    error = 0.0
    for i in range(n):
        total = bias.clone()
        for j in range(n):
            t = x[j].clone() if i == j else torch.zeros(d, dtype=x.dtype)
            for h in range(heads):
                t += attn[h, i, j] * f[h, j]
            total += t
            out["alti"][i, j] = max(0.0, float(m[i].abs().sum() - (m[i] - t).abs().sum()))
            out["alti_l2"][i, j] = max(0.0, float(m[i].norm() - (m[i] - t).norm()))
            out["norm_rollout"][i, j] = t.norm()
        error = max(error, float((total - m[i]).abs().max()))
    for name in out:
        out[name] = out[name] / out[name].sum(-1, keepdim=True)
    return out, f, error


@torch.no_grad()
def naive_logit(kind, model, seen, attentions, f_all, alti_layers, u, final_norm, position, rms_gamma_offset=0.0):
    """ALTI-Logit and logit by their definitions (GUIDE §1.6), with an explicit rollout."""
    x_final = seen["final"][-1][position]
    gamma = final_norm.weight + rms_gamma_offset
    if isinstance(final_norm, torch.nn.LayerNorm):
        centred = x_final - x_final.mean()
        scale = (centred.pow(2).mean() + final_norm.eps).sqrt()
        direction = ((u * gamma) - (u * gamma).mean()) / scale
    else:
        eps = getattr(final_norm, "variance_epsilon", getattr(final_norm, "eps", None))
        direction = u * gamma / (x_final.pow(2).mean() + eps).sqrt()
    n = attentions[0].shape[-1]
    rolled = torch.eye(n, dtype=x_final.dtype)
    alti_logit = torch.zeros(n, dtype=x_final.dtype)
    logit = torch.zeros(n, dtype=x_final.dtype)
    for layer, (attn, f) in enumerate(zip(attentions, f_all)):
        per_source = torch.zeros(n, dtype=x_final.dtype)
        for k in range(n):
            for h in range(attn.shape[0]):
                per_source[k] += attn[h, position, k] * (direction @ f[h, k])
        logit += per_source
        alti_logit += per_source @ rolled
        rolled = alti_layers[layer] @ rolled
    embedding = direction @ seen["x"][0][position]
    alti_logit[position] += embedding
    logit[position] += embedding
    return alti_logit, logit
