"""Pure tensor maths: the layer decomposition, contribution matrices, rollout.

Nothing here knows about models or tokenizers; every function takes tensors of
one example (no batch dimension) and returns tensors.  The exception is the
batch decomposition of :mod:`alti.core.decomposition` (one layer of a padded
batch): its rows read as single examples, and ``alti_l1``, ``globenc`` and
``norms_of_mixtures`` also take the whole batch, one (n, n) matrix per row.
"""

import importlib

#: what each name re-exported here is part of (imported on first use: ``alti.core.rollout``
#: is torch-free, and importing this package must not import torch for it)
_HOMES = {
    "alti_l1": "contributions",
    "alti_l2": "contributions",
    "globenc": "contributions",
    "normalize_rows": "contributions",
    "norms_of_mixtures": "contributions",
    "weighted_norms": "contributions",
    "Decomposition": "decomposition",
    "decompose": "decomposition",
    "fold_output_weight": "decomposition",
    "head_outputs": "decomposition",
    "transformed_vectors": "decomposition",
    "rolled_row": "rollout",
}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"alti.core.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'alti.core' has no attribute {name!r}")
