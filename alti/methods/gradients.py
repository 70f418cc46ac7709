"""Gradient methods through Captum, taken at the embedding layer.

Every method here attributes the explained quantity of the target
(:mod:`alti.targets`): the probability of the class or next token (the one
predicted on the full input unless a target is given), or the logit
difference against a foil.  Gradients are taken with respect to the output
of the model's embedding module (``explainer.adapter.embeddings``) using
Captum's ``Layer*`` classes, so the model embeds its input ids exactly once.

- ``grad_l2``: L2 norm of the gradient of each token's embedding.
- ``gxi_l2`` / ``gxi_dot``: input x gradient, L2 norm / signed sum over the
  hidden dimension.
- ``ig_l2`` / ``ig_dot``: integrated gradients from the baseline
  ``[CLS] [MASK] ... [SEP]`` (special tokens kept, every other token replaced
  by the mask token; models without one use their unknown, padding or
  end-of-text token), L2 norm / signed sum.  The dot variant is complete: its
  scores sum to ``q(x) - q(baseline)`` up to the convergence delta.

Options: ``steps`` (integration steps, default 50) and
``internal_batch_size`` (how many interpolated inputs go through the model at
once, default all of them).
"""

from __future__ import annotations

import numpy as np
import torch

from alti.catalog import INFOS
from alti.errors import UnsupportedModelError
from alti.methods import Source, register

DEFAULT_STEPS = INFOS["ig_l2"].option("steps").default


def blank_token_id(tokenizer) -> int | None:
    """The token that stands for "no word": the mask token, else unknown, padding or end of text."""
    for candidate in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return None


def mask_token_id(tokenizer) -> int:
    blank = blank_token_id(tokenizer)
    if blank is None:
        raise UnsupportedModelError(
            "this tokenizer has no mask, unknown, padding or end-of-text token, which integrated gradients "
            "and occlusion need; use a gradient method without a baseline (grad_l2, gxi_l2, gxi_dot)"
        )
    return blank


def needs_blank_token(explainer) -> str | None:
    if blank_token_id(explainer.tokenizer) is None:
        return "its tokenizer has no mask, unknown, padding or end-of-text token to blank tokens with"
    return None


def ig_baseline(explainer, input_ids: torch.Tensor) -> torch.Tensor:
    """``[CLS] [MASK] ... [SEP]``: special tokens kept, every other token blanked."""
    keep = torch.as_tensor(explainer.special_mask(input_ids[0].tolist()), device=input_ids.device)
    baseline = input_ids.clone()
    baseline[0, ~keep] = mask_token_id(explainer.tokenizer)
    return baseline


def layer_gradient_x_input(explainer, input_ids: torch.Tensor, target, multiply: bool) -> torch.Tensor:
    """Gradient of the quantity at the embedding output (times that output when ``multiply``): (n, d)."""
    from captum.attr import LayerGradientXActivation

    method = LayerGradientXActivation(
        explainer.quantity_forward(target),
        explainer.adapter.embeddings,
        multiply_by_inputs=multiply,
    )
    attributions = method.attribute(input_ids.to(explainer.device))
    return attributions[0].detach()


def integrated_gradients(
    explainer,
    input_ids: torch.Tensor,
    target,
    steps: int = DEFAULT_STEPS,
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, float]:
    """Integrated gradients at the embedding output: attributions (n, d) and the convergence delta."""
    from captum.attr import LayerIntegratedGradients

    input_ids = input_ids.to(explainer.device)
    method = LayerIntegratedGradients(explainer.quantity_forward(target), explainer.adapter.embeddings)
    attributions, delta = method.attribute(
        input_ids,
        baselines=ig_baseline(explainer, input_ids),
        n_steps=int(steps),
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return attributions[0].detach(), float(delta.abs().max())


def _l2(attributions: torch.Tensor) -> np.ndarray:
    return attributions.norm(dim=-1).double().cpu().numpy()


def _dot(attributions: torch.Tensor) -> np.ndarray:
    return attributions.sum(dim=-1).double().cpu().numpy()


def grad_l2(explainer, input_ids, target, **options) -> np.ndarray:
    return _l2(layer_gradient_x_input(explainer, input_ids, target, multiply=False))


def gxi_l2(explainer, input_ids, target, **options) -> np.ndarray:
    return _l2(layer_gradient_x_input(explainer, input_ids, target, multiply=True))


def gxi_dot(explainer, input_ids, target, **options) -> np.ndarray:
    return _dot(layer_gradient_x_input(explainer, input_ids, target, multiply=True))


def _ig(explainer, input_ids, target, options) -> torch.Tensor:
    attributions, _ = integrated_gradients(
        explainer,
        input_ids,
        target,
        steps=options.get("steps", DEFAULT_STEPS),
        internal_batch_size=options.get("internal_batch_size"),
    )
    return attributions


def ig_l2(explainer, input_ids, target, **options) -> np.ndarray:
    return _l2(_ig(explainer, input_ids, target, options))


def ig_dot(explainer, input_ids, target, **options) -> np.ndarray:
    return _dot(_ig(explainer, input_ids, target, options))


for _method_info, _compute in ((INFOS["grad_l2"], grad_l2), (INFOS["gxi_l2"], gxi_l2), (INFOS["gxi_dot"], gxi_dot)):
    register(_method_info, _compute, Source.MODEL)
for _method_info, _compute in ((INFOS["ig_l2"], ig_l2), (INFOS["ig_dot"], ig_dot)):
    register(_method_info, _compute, Source.MODEL, requires=needs_blank_token)
