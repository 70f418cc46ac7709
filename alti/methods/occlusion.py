"""Occlusion: replace each token by the mask token and read the drop in p(class).

The score of token j is ``p(target | x) - p(target | x with x_j masked)``, a
signed difference of probabilities.  Special tokens are never occluded (score
0).  All occluded inputs go through ``explainer.predict_ids`` as padded
batches (option ``batch_size``, default 32).
"""

from __future__ import annotations

import numpy as np

from alti.methods import register
from alti.methods.base import MethodInfo
from alti.methods.gradients import mask_token_id

DEFAULT_BATCH_SIZE = 32


def occlusion(explainer, input_ids, target, **options) -> np.ndarray:
    ids = [int(i) for i in input_ids[0].tolist()]
    mask = mask_token_id(explainer.tokenizer)
    positions = np.flatnonzero(~explainer.special_mask(ids))
    variants = [ids]
    for j in positions:
        occluded = list(ids)
        occluded[j] = mask
        variants.append(occluded)
    probabilities = explainer.predict_ids(
        variants, batch_size=int(options.get("batch_size", DEFAULT_BATCH_SIZE))
    )[:, target]
    scores = np.zeros(len(ids), dtype=np.float64)
    scores[positions] = probabilities[0] - probabilities[1:]
    return scores


METHODS = [
    (
        MethodInfo(
            name="occlusion",
            family="perturbation",
            signed=True,
            explains="probability",
            matrix=False,
            description="drop in p(class) when the token is replaced by [MASK]",
        ),
        occlusion,
    ),
]

for _info, _compute in METHODS:
    register(_info, _compute, kind="model")
