"""Rolling per-layer matrices out across layers: ``R = C^L @ ... @ C^1``.

The one implementation of the product: the explainer's scores, the per-layer views of
:class:`alti.results.Explanation` and the explorer's heatmap all use it.  It works on numpy
arrays and torch tensors alike (nothing but ``@``, indexing and ``mean``), and imports
neither, so the torch-free side of alti can use it.
"""

from __future__ import annotations

from typing import TypeVar

Matrix = TypeVar("Matrix")  # a numpy array or a torch tensor


def rollout(layers: Matrix, upto: int | None = None) -> Matrix:
    """Product of the first ``upto`` (default all) layer matrices, (L, n, n) -> (n, n).

    Row i of the result says how much each input token makes up token i's
    representation after layer ``upto``.  No identity is added: the residual
    is already inside each layer's matrix.
    """
    upto = len(layers) if upto is None else upto  # type: ignore[arg-type]
    result = layers[0]  # type: ignore[index]
    for layer in layers[1:upto]:  # type: ignore[index]
        result = layer @ result
    return result


def rolled_row(layers: Matrix, position: int | None) -> Matrix:
    """Row ``position`` (None: the mean of the rows) of :func:`rollout` of all layers, as
    vector-matrix products from the last layer down: L n^2 work instead of L n^3."""
    last = layers[-1]  # type: ignore[index]
    row = last.mean(0) if position is None else last[position]
    for layer in reversed(layers[:-1]):  # type: ignore[index]
        row = row @ layer
    return row
