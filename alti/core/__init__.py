"""Pure tensor maths: the layer decomposition, contribution matrices, rollout.

Nothing here knows about models or tokenizers; every function takes tensors of
one example (no batch dimension) and returns tensors.  The exception is the
batch decomposition of :mod:`alti.core.decomposition` (one layer of a padded
batch): its rows read as single examples, and ``alti_l1``, ``globenc`` and
``norms_of_mixtures`` also take the whole batch, one (n, n) matrix per row.
"""

from alti.core.contributions import (
    alti_l1,
    alti_l2,
    globenc,
    normalize_rows,
    norms_of_mixtures,
    weighted_norms,
)
from alti.core.decomposition import (
    Decomposition,
    decompose,
    fold_output_weight,
    head_outputs,
    transformed_vectors,
)
from alti.core.rollout import rollout

__all__ = [
    "Decomposition",
    "alti_l1",
    "alti_l2",
    "decompose",
    "fold_output_weight",
    "globenc",
    "head_outputs",
    "normalize_rows",
    "norms_of_mixtures",
    "rollout",
    "transformed_vectors",
    "weighted_norms",
]
