"""Occlusion: replace each token by the mask token and read the drop in the explained quantity.

The score of token j is ``q(x) - q(x with x_j masked)`` where q is the
target's quantity (:mod:`alti.targets`: a probability, or a logit difference
against a foil); models without a mask token use their unknown, padding or
end-of-text token.  Special tokens are never occluded (score 0).  All
occluded inputs go through ``explainer.quantities`` as padded batches
(option ``batch_size``, default 32).
"""

from __future__ import annotations

import numpy as np

from alti.catalog import INFOS
from alti.methods import Source, register
from alti.methods.gradients import mask_token_id, needs_blank_token

DEFAULT_BATCH_SIZE = INFOS["occlusion"].option("batch_size").default


def occlusion(explainer, input_ids, target, **options) -> np.ndarray:
    ids = [int(i) for i in input_ids[0].tolist()]
    mask = mask_token_id(explainer.tokenizer)
    positions = np.flatnonzero(~explainer.special_mask(ids))
    variants = [ids]
    for j in positions:
        occluded = list(ids)
        occluded[j] = mask
        variants.append(occluded)
    values = explainer.quantities(variants, target, batch_size=int(options.get("batch_size", DEFAULT_BATCH_SIZE)))
    scores = np.zeros(len(ids), dtype=np.float64)
    scores[positions] = values[0] - values[1:]
    return scores


register(
    INFOS["occlusion"],
    occlusion,
    Source.MODEL,
    requires=needs_blank_token,
)
