"""Value Zeroing's pure maths (Mohebbi et al., EACL 2023; GUIDE §1.7).

Nothing here runs a model: :mod:`alti.methods.value_zeroing` reruns the
layers and hands the outputs over.
"""

from __future__ import annotations

import torch

from alti.core.contributions import normalize_rows


def cosine_distances(zeroed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``clip(1 - cos(zeroed[..., i, :], real[i, :]), 0, 2)`` for every target i: (..., n).

    ``zeroed`` (..., n, d), ``real`` (n, d).  Computed in float64 as
    ``||a/|a| - b/|b|||^2 / 2``, which equals ``1 - cos`` but keeps small
    distances: in float32, ``1 - cos`` of two nearly parallel vectors is
    rounding noise (about 1e-7 absolute) once the distance is below ~1e-5.
    A zero vector has cosine 0 with anything (distance 1), as in scikit-learn.
    """
    a = zeroed.to(torch.float64)
    b = real.to(torch.float64)
    norm_a = a.norm(dim=-1, keepdim=True)
    norm_b = b.norm(dim=-1, keepdim=True)
    unit_a = a / torch.where(norm_a > 0, norm_a, torch.ones_like(norm_a))
    unit_b = b / torch.where(norm_b > 0, norm_b, torch.ones_like(norm_b))
    distances = (unit_a - unit_b).square().sum(-1) / 2
    degenerate = (norm_a[..., 0] == 0) | (norm_b[..., 0] == 0)
    distances = torch.where(degenerate, torch.ones_like(distances), distances)
    return distances.clamp(0.0, 2.0)


def value_zeroing_matrix(distances: torch.Tensor, reached: torch.Tensor | None = None) -> torch.Tensor:
    """One layer's map (n, n) from ``distances[i, j]`` (target i, zeroed source j).

    ``reached[i, j]`` (bool): some head of the layer attends from i to j.  Where
    none does, the output of i cannot depend on j's value vectors, so its
    distance is exactly zero (above the diagonal of a causal model, outside a
    sliding window), whatever the rounding of the rerun.  Rows are divided by
    their sums, the diagonal kept (a row of zeros stays zero).
    """
    if reached is not None:
        distances = torch.where(reached, distances, torch.zeros_like(distances))
    return normalize_rows(distances)
