"""GCN normalisation: A_hat = D^-1/2 (A + I) D^-1/2, equal to PyG's ``gcn_norm``.

Self-loops follow PyG's ``add_remaining_self_loops``: a node that already has a loop keeps it (with its
weight), every other node gets one of weight 1. Degrees are row sums of A + I, i.e. the in-degree of
the aggregating node, which is the degree PyG uses for ``flow="source_to_target"``.
"""

from __future__ import annotations

import torch

from qgnn_cli.data.graph import CSR


def _add_remaining_self_loops(adj: CSR) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``indptr``, rows, columns and float32 weights of A + I, ordered by (row, column).

    Without a sort: each row gains exactly one loop, so every entry's new position is known (its old
    position, plus one per earlier row, plus one if it lies right of the diagonal).
    """
    n = adj.num_nodes
    rows, cols = adj.row_index(), adj.indices
    weights = adj.values if adj.values is not None else torch.ones(adj.nnz)
    on_diag = rows == cols
    loop_weights = torch.ones(n)
    if bool(on_diag.any()):
        loop_weights[rows[on_diag]] = weights[on_diag]
        off = ~on_diag
        rows, cols, weights = rows[off], cols[off], weights[off]
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(rows, minlength=n) + 1, 0, out=indptr[1:])
    nodes = torch.arange(n)
    loop_pos = indptr[:-1] + torch.bincount(rows[cols < rows], minlength=n)
    entry_pos = torch.arange(rows.numel()) + rows + (cols > rows)
    nnz = rows.numel() + n
    out_rows, out_cols = torch.empty(nnz, dtype=torch.int64), torch.empty(nnz, dtype=torch.int64)
    out_weights = torch.empty(nnz)
    for out, entries, loops in ((out_rows, rows, nodes), (out_cols, cols, nodes), (out_weights, weights, loop_weights)):
        out.index_copy_(0, entry_pos, entries).index_copy_(0, loop_pos, loops)  # index_copy_: ~5x index_put
    return indptr, out_rows, out_cols, out_weights


def _inv_sqrt_degree(rows: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    deg = torch.zeros(n).index_add_(0, rows, weights)
    dinv = deg.pow(-0.5)
    return dinv.masked_fill_(torch.isinf(dinv), 0.0)


def gcn_norm(adj: CSR, add_self_loops: bool = True) -> CSR:
    """A_hat as a float32-valued CSR (self-loops included when ``add_self_loops``)."""
    n = adj.num_nodes
    if add_self_loops:
        indptr, rows, cols, weights = _add_remaining_self_loops(adj)
    else:
        indptr, rows, cols = adj.indptr, adj.row_index(), adj.indices
        weights = adj.values if adj.values is not None else torch.ones(adj.nnz)
    dinv = _inv_sqrt_degree(rows, weights, n)
    # PyG multiplies dinv[source] * w * dinv[target]; the same order makes unweighted graphs match
    # bit for bit (weighted degree sums may differ in the last bit: other summation order).
    values = dinv[cols] * weights * dinv[rows]
    return CSR(indptr, cols, values, n)


def gcn_norm_factors(adj: CSR) -> tuple[CSR, torch.Tensor]:
    """The unweighted A + I and ``dinv`` = D^-1/2 (float32, (N,)), with A_hat = diag(dinv)(A+I)diag(dinv).

    Integer kernels aggregate over the 0/1 matrix A + I and apply ``dinv`` as per-row scales, which
    is why the two factors are handed out separately.
    """
    if adj.values is not None:
        raise ValueError("gcn_norm_factors needs an unweighted adjacency (values=None)")
    n = adj.num_nodes
    indptr, rows, cols, weights = _add_remaining_self_loops(adj)
    return CSR(indptr, cols, None, n), _inv_sqrt_degree(rows, weights, n)
