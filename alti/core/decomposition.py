"""The attention block of one layer, decomposed per source token.

Post-LN layers follow GUIDE §1.1, pre-LN blocks §1.5.  The residual is
treated as one more "head" whose attention matrix is the identity, so that
every transformed vector of a post-LN layer is

    sigma_i * T_i(x_j) = sum_k weights[j, i, k] * vectors[j, k]

with ``vectors[j, h] = gamma * centre(f^h(x_j))`` for the heads and
``vectors[j, H] = gamma * centre(x_j)`` for the residual.  Gamma and the
centring are folded into W_O once per layer, so one batched matmul gives the
folded per-head vectors; ``sigma_i`` is kept apart (it cancels in every
row-normalised matrix).  The matmul's head-major result and the residual
vectors are what the L1 kernel reads; ``vectors`` and ``weights`` (source-major,
j first, for the Gram matrices) are built on first use.

Built with a :class:`~alti.core.workspace.Workspace`, a decomposition keeps
its per-layer arrays (head vectors, scaled output, residual, ...) in the
workspace's buffers instead of new memory: valid only until the next
decomposition made with the same workspace (the explainer's stream, which
drops each layer's view before the next, passes its thread's).

A pre-LN block has no norm after the residual: the vectors are ``W_O^h v^h_j``
and ``x_j`` themselves and the scale is 1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from alti.core.workspace import Workspace


class Decomposition:
    """What every decomposed layer offers the contribution functions.

    ``attentions`` (H, n_i, n_j), ``head_vectors`` (H, n_j, d), ``residual``
    (n_j, d) and ``scaled_output`` (n_i, d), such that target i's transformed
    vector of source j, times a positive scale of row i, is
    ``sum_h attentions[h, i, j] head_vectors[h, j] + [i == j] residual[j]``
    and ``scaled_output[i]`` is the block's output on the same scale.
    """

    attentions: torch.Tensor
    head_vectors: torch.Tensor
    workspace: Workspace | None = None

    def scratch(self, role: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised ``shape`` tensor of ``like``'s dtype and device: the workspace's
        buffer for ``role``, or new memory without a workspace."""
        if self.workspace is None:
            return like.new_empty(shape)
        return self.workspace.tensor(role, shape, like.dtype, like.device)

    @functools.cached_property
    def vectors(self) -> torch.Tensor:
        """(n_j, H+1, d): the head vectors of each source, then its residual (built on first use)."""
        heads, n, d = self.head_vectors.shape
        out = self.scratch("decomposition.vectors", (n, heads + 1, d), self.head_vectors)
        return torch.cat([self.head_vectors.transpose(0, 1), self.residual[:, None]], dim=1, out=out)

    @functools.cached_property
    def weights(self) -> torch.Tensor:
        """(n_j, n_i, H+1): attention ``A^h[i, j]``, then ``[i == j]`` (built on first use)."""
        heads, n, _ = self.attentions.shape
        weights = self.scratch("decomposition.weights", (n, n, heads + 1), self.attentions).zero_()
        weights[:, :, :heads] = self.attentions.permute(2, 1, 0)
        weights[:, :, heads].fill_diagonal_(1)
        return weights

    @functools.cached_property
    def unreached(self) -> torch.Tensor | None:
        """(n_i, n_j) True where source j sends nothing to target i (no head attends, i != j).

        Causal masks and sliding windows give exact zeros in the attention, so
        those transformed vectors are exactly zero and so are their
        contributions; None where every pair is reached.
        """
        _, n_i, n_j = self.attentions.shape
        sums = self.scratch("decomposition.attention_sums", (n_i, n_j), self.attentions)
        silent = torch.sum(self.attentions, 0, out=sums) == 0  # attention is never negative
        silent.fill_diagonal_(False)
        return silent if bool(silent.any()) else None

    @functools.cached_property
    def causal(self) -> bool:
        """Every source after its target is unreached (a causal mask)."""
        unreached = self.unreached
        return unreached is not None and not bool(torch.triu(~unreached, diagonal=1).any())


@dataclass(frozen=True)
class PostLNDecomposition(Decomposition):
    attentions: torch.Tensor  # (H, n_i, n_j) as the model computed them
    head_vectors: torch.Tensor  # (H, n_j, d): gamma * centre(f^h(x_j))
    x: torch.Tensor  # (n_j, d): the layer input
    norm_input: torch.Tensor  # (n_i, d): the LayerNorm's input
    norm_output: torch.Tensor  # (n_i, d): its output
    gamma: torch.Tensor  # (d,)
    beta: torch.Tensor  # (d,)
    out_bias: torch.Tensor  # (d,): b_O
    eps: float
    workspace: Workspace | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def sigma(self) -> torch.Tensor:
        """(n_i,): the LayerNorm's scale."""
        centred = self.scratch("decomposition.centred", self.norm_input.shape, self.norm_input)
        return _norm_scale(self.norm_input, self.eps, centred)[:, 0]

    @functools.cached_property
    def residual(self) -> torch.Tensor:
        """(n_j, d): gamma * centre(x_j)."""
        return _centre(self.x, self.scratch("decomposition.residual", self.x.shape, self.x)).mul_(self.gamma)

    @functools.cached_property
    def scaled_output(self) -> torch.Tensor:
        """(n_i, d): sigma_i * y_i."""
        out = self.scratch("decomposition.scaled_output", self.norm_output.shape, self.norm_output)
        return torch.mul(self.norm_output, self.sigma[:, None], out=out)

    @functools.cached_property
    def bias(self) -> torch.Tensor:
        """(d,): gamma * centre(b_O)."""
        return self.gamma * _centre(self.out_bias)


@dataclass(frozen=True)
class PreLNDecomposition(Decomposition):
    """A pre-LN attention block (GUIDE §1.5): ``m_i = sum_j T_i(x_j) + b_O`` exactly.

    ``T_i(x_j) = [i == j] x_j + sum_h A^h_ij W_O^h v^h_j``; no scale per row
    (``scaled_output`` is ``m`` itself).
    """

    attentions: torch.Tensor  # (H, n_i, n_j)
    head_vectors: torch.Tensor  # (H, n_j, d): W_O^h v^h_j
    residual: torch.Tensor  # (n_j, d): x_j, the residual stream entering the block
    scaled_output: torch.Tensor  # (n_i, d): m_i = x_i + Attn(N1(x))_i
    bias: torch.Tensor  # (d,): b_O (zeros when the projection has none)
    workspace: Workspace | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RowDecomposition(Decomposition):
    """One row of a :class:`BatchDecomposition`: views of its arrays, read by every method
    as any other decomposition."""

    attentions: torch.Tensor  # (H, n, n)
    head_vectors: torch.Tensor  # (H, n, d)
    residual: torch.Tensor  # (n, d)
    scaled_output: torch.Tensor  # (n, d)
    bias: torch.Tensor  # (d,)


@dataclass(frozen=True)
class BatchDecomposition:
    """One layer of several padded rows decomposed at once (the GPU path of a batch).

    The same arrays as a :class:`Decomposition`, with a leading row
    dimension: ``attentions`` (B, H, N, N), ``head_vectors`` (B, H, N, d),
    ``residual`` and ``scaled_output`` (B, N, d); ``bias`` (d,).  Row b's
    tokens are positions ``spans[b] = (start, stop)``; what lies outside is
    padding, never read into a row.  The contribution functions that take a
    batch return (B, N, N): each row's matrix within its span, zeros around it.
    """

    attentions: torch.Tensor
    head_vectors: torch.Tensor
    residual: torch.Tensor
    scaled_output: torch.Tensor
    bias: torch.Tensor
    spans: tuple[tuple[int, int], ...]

    def row(self, index: int) -> RowDecomposition:
        start, stop = self.spans[index]
        tokens = slice(start, stop)
        return RowDecomposition(
            attentions=self.attentions[index, :, tokens, tokens],
            head_vectors=self.head_vectors[index, :, tokens],
            residual=self.residual[index, tokens],
            scaled_output=self.scaled_output[index, tokens],
            bias=self.bias,
        )

    def rows_of(self, matrices: torch.Tensor) -> list[torch.Tensor]:
        """Each row's (n, n) matrix out of (B, N, N) matrices of the whole batch."""
        return rows_of(matrices, self.spans)

    @functools.cached_property
    def vectors(self) -> torch.Tensor:
        """(B, N_j, H+1, d): :attr:`Decomposition.vectors` of every row."""
        return torch.cat([self.head_vectors.transpose(1, 2), self.residual[:, :, None]], dim=2)

    @functools.cached_property
    def weights(self) -> torch.Tensor:
        """(B, N_j, N_i, H+1): :attr:`Decomposition.weights` of every row; sources outside a
        row's tokens weigh 0, so sums over sources are the row's own."""
        rows, heads, width, _ = self.attentions.shape
        weights = self.attentions.new_zeros(rows, width, width, heads + 1)
        weights[..., :heads] = self.attentions.permute(0, 3, 2, 1)
        weights[..., heads].diagonal(dim1=1, dim2=2).fill_(1)
        return weights.mul_(self.tokens[:, :, None, None])

    @functools.cached_property
    def tokens(self) -> torch.Tensor:
        """(B, N) True at each row's tokens."""
        positions = torch.arange(self.attentions.shape[-1], device=self.attentions.device)
        bounds = torch.tensor(self.spans, device=positions.device)
        return (positions >= bounds[:, :1]) & (positions < bounds[:, 1:])

    @functools.cached_property
    def unreached(self) -> torch.Tensor:
        """(B, N, N) True where source j sends nothing to target i (no head attends, i != j);
        as :attr:`Decomposition.unreached` within each row's tokens."""
        silent = self.attentions.sum(1) == 0
        silent.diagonal(dim1=1, dim2=2).fill_(False)
        return silent

    @functools.cached_property
    def causal(self) -> bool:
        """No row's target reaches a source after it (every row's matrix is lower triangular)."""
        pairs = self.tokens[:, :, None] & self.tokens[:, None, :]
        return not bool(torch.triu(pairs & ~self.unreached, diagonal=1).any())


def rows_of(matrices: torch.Tensor, spans) -> list[torch.Tensor]:
    """Row k's (n, n) matrix ``matrices[k, start:stop, start:stop]`` for each ``spans[k] = (start, stop)``."""
    return [matrices[index, start:stop, start:stop] for index, (start, stop) in enumerate(spans)]


def decompose_batch_post_ln(
    values: torch.Tensor,
    x: torch.Tensor,
    attentions: torch.Tensor,
    folded_weight: torch.Tensor,
    out_bias: torch.Tensor,
    norm_input: torch.Tensor,
    norm_output: torch.Tensor,
    gamma: torch.Tensor,
    eps: float,
    spans,
) -> BatchDecomposition:
    """:func:`decompose` of a padded batch: ``values`` (B, N, H*dh), ``x``,
    ``norm_input``, ``norm_output`` (B, N, d), ``attentions`` (B, H, N, N)."""
    rows, width = values.shape[:2]
    heads = folded_weight.shape[0]
    per_head = values.reshape(rows, width, heads, -1).transpose(1, 2)  # (B, H, N, dh)
    return BatchDecomposition(
        attentions=attentions,
        head_vectors=torch.matmul(per_head, folded_weight),
        residual=_centre(x).mul_(gamma),
        scaled_output=norm_output * _norm_scale(norm_input, eps),
        bias=gamma * _centre(out_bias),
        spans=tuple(spans),
    )


def decompose_batch_pre_ln(
    values: torch.Tensor,
    x: torch.Tensor,
    attentions: torch.Tensor,
    out_weight: torch.Tensor,
    out_bias: torch.Tensor,
    output: torch.Tensor,
    spans,
) -> BatchDecomposition:
    """:func:`decompose_pre_ln` of a padded batch: ``values`` (B, N, H_kv, dh),
    ``x`` and ``output`` (B, N, d), ``attentions`` (B, H, N, N)."""
    per_head = _each_query_head(values.transpose(1, 2), attentions.shape[1])  # (B, H, N, dh)
    return BatchDecomposition(
        attentions=attentions,
        head_vectors=torch.matmul(per_head, out_weight),
        residual=x,
        scaled_output=output,
        bias=out_bias,
        spans=tuple(spans),
    )


def _centre(t: torch.Tensor, out: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    return torch.sub(t, t.mean(dim, keepdim=True), out=out)


def _norm_scale(norm_input: torch.Tensor, eps: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """(..., 1): a LayerNorm's scale ``sqrt(var + eps)`` of each row (two-pass variance;
    ``Tensor.var`` is far slower); ``out`` holds the centred input on the way."""
    centred = _centre(norm_input, out)
    return centred.mul_(centred).mean(-1, keepdim=True).add_(eps).sqrt_()


def _each_query_head(per_group: torch.Tensor, heads: int) -> torch.Tensor:
    """Values per key/value group (..., H_kv, n, dh) as values per query head (..., H, n, dh):
    query head h reads group ``h // (H / H_kv)`` (grouped-query attention)."""
    groups = per_group.shape[-3]
    return per_group if groups == heads else per_group.repeat_interleave(heads // groups, dim=-3)


def head_outputs(values: torch.Tensor, out_weight: torch.Tensor, heads: int) -> torch.Tensor:
    """``f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h`` for every source and head: (n, H, d).

    ``values`` (n, H*dh) is ``x W_V + b_V``; ``out_weight`` (d, H*dh) is W_O as
    stored by ``nn.Linear``.
    """
    d = out_weight.shape[0]
    return _per_head(values, out_weight.reshape(d, heads, -1).permute(1, 2, 0)).transpose(0, 1)


def _per_head(values: torch.Tensor, projection: torch.Tensor, workspace: Workspace | None = None) -> torch.Tensor:
    """``values`` (n, H*dh) times each head's projection (H, dh, d): (H, n, d), one bmm."""
    heads = projection.shape[0]
    per_head = values.reshape(values.shape[0], heads, -1).transpose(0, 1)  # (H, n, dh)
    return _head_vectors(per_head, projection, workspace)


def _head_vectors(per_head: torch.Tensor, projection: torch.Tensor, workspace: Workspace | None) -> torch.Tensor:
    """``per_head`` (H, n, dh) @ ``projection`` (H, dh, d), in the workspace's buffer if given."""
    if workspace is None:
        return torch.bmm(per_head, projection)
    shape = (per_head.shape[0], per_head.shape[1], projection.shape[2])
    out = workspace.tensor("decomposition.head_vectors", shape, per_head.dtype, per_head.device)
    return torch.bmm(per_head, projection, out=out)


def fold_output_weight(out_weight: torch.Tensor, gamma: torch.Tensor, heads: int) -> torch.Tensor:
    """``gamma * centre(W_O)`` over the output dimension, per head: (H, dh, d), contiguous.

    Then ``v_h @ folded[h]`` is ``gamma * centre(f^h)`` for any head value
    ``v_h`` (centring is linear).  Contiguous per head, the batched matmul
    reads it without repacking W_O on every call.
    """
    folded = gamma[:, None] * _centre(out_weight, dim=0)  # (d, H*dh)
    return folded.reshape(folded.shape[0], heads, -1).permute(1, 2, 0).contiguous()


def per_head_output_weight(out_weight: torch.Tensor, heads: int) -> torch.Tensor:
    """W_O (d, H*dh) as ``nn.Linear`` stores it, per head: (H, dh, d), contiguous."""
    return out_weight.reshape(out_weight.shape[0], heads, -1).permute(1, 2, 0).contiguous()


def decompose_pre_ln(
    values: torch.Tensor,
    x: torch.Tensor,
    attentions: torch.Tensor,
    out_weight: torch.Tensor,
    out_bias: torch.Tensor,
    output: torch.Tensor,
    workspace: Workspace | None = None,
) -> PreLNDecomposition:
    """Decompose one pre-LN attention block of one example.

    ``values`` (n, H_kv, dh); query head h reads key/value group
    ``h // (H / H_kv)`` (grouped-query attention); ``out_weight`` (H, dh, d) is
    :func:`per_head_output_weight` of W_O; ``output`` (n, d) is ``m``.
    ``workspace``: see the module's docstring.
    """
    per_head = _each_query_head(values.transpose(0, 1), attentions.shape[0])  # (H, n, dh)
    return PreLNDecomposition(
        attentions=attentions,
        head_vectors=_head_vectors(per_head, out_weight, workspace),
        residual=x,
        scaled_output=output,
        bias=out_bias,
        workspace=workspace,
    )


def decompose(
    values: torch.Tensor,
    x: torch.Tensor,
    attentions: torch.Tensor,
    folded_weight: torch.Tensor,
    out_bias: torch.Tensor,
    norm_input: torch.Tensor,
    norm_output: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
    workspace: Workspace | None = None,
) -> PostLNDecomposition:
    """Decompose one post-LN layer of one example.

    ``attentions`` (H, n, n); ``folded_weight`` (H, dh, d) is
    :func:`fold_output_weight` of W_O; ``norm_input``/``norm_output`` (n, d)
    are the LayerNorm's input and output.  Only the head vectors are computed
    here; everything else on first use, by the methods that need it.
    ``workspace``: see the module's docstring.
    """
    return PostLNDecomposition(
        attentions=attentions,
        head_vectors=_per_head(values, folded_weight, workspace),
        x=x,
        norm_input=norm_input,
        norm_output=norm_output,
        gamma=gamma,
        beta=beta,
        out_bias=out_bias,
        eps=eps,
        workspace=workspace,
    )


def transformed_vectors(dec: Decomposition, targets: slice) -> torch.Tensor:
    """``sigma_i * T_i(x_j)`` for a slice of targets: (len(targets), n, d).

    Never call this for all targets of a long input at once (it is n x n x d).
    """
    return torch.bmm(dec.weights[:, targets], dec.vectors).transpose(0, 1)
