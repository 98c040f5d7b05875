"""GCN normalisation: A_hat = D^-1/2 (A + I) D^-1/2, equal to PyG's ``gcn_norm``.

Self-loops follow PyG's ``add_remaining_self_loops``: a node that already has a loop keeps it (with its
weight), every other node gets one of weight 1. Degrees are row sums of A + I, i.e. the in-degree of
the aggregating node, which is the degree PyG uses for ``flow="source_to_target"``.
"""

from __future__ import annotations

import torch

from qgnn_cli.data.graph import CSR


def _add_remaining_self_loops(adj: CSR) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows, columns and weights (float32) of A + I, ordered by (row, column)."""
    n = adj.num_nodes
    rows, cols = adj.row_index(), adj.indices
    weights = adj.values if adj.values is not None else torch.ones(adj.nnz)
    on_diag = rows == cols
    loop_weights = torch.ones(n)
    loop_weights[rows[on_diag]] = weights[on_diag]
    off = ~on_diag
    nodes = torch.arange(n)
    rows = torch.cat([rows[off], nodes])
    cols = torch.cat([cols[off], nodes])
    weights = torch.cat([weights[off], loop_weights])
    order = torch.argsort(rows * n + cols)
    return rows[order], cols[order], weights[order]


def _indptr(rows: torch.Tensor, n: int) -> torch.Tensor:
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(rows, minlength=n), 0, out=indptr[1:])
    return indptr


def _inv_sqrt_degree(rows: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    deg = torch.zeros(n).index_add_(0, rows, weights)
    dinv = deg.pow(-0.5)
    return dinv.masked_fill_(torch.isinf(dinv), 0.0)


def gcn_norm(adj: CSR, add_self_loops: bool = True) -> CSR:
    """A_hat as a float32-valued CSR (self-loops included when ``add_self_loops``)."""
    n = adj.num_nodes
    if add_self_loops:
        rows, cols, weights = _add_remaining_self_loops(adj)
    else:
        rows, cols = adj.row_index(), adj.indices
        weights = adj.values if adj.values is not None else torch.ones(adj.nnz)
    dinv = _inv_sqrt_degree(rows, weights, n)
    # PyG multiplies dinv[source] * w * dinv[target]; the same order makes unweighted graphs match
    # bit for bit (weighted degree sums may differ in the last bit: other summation order).
    values = dinv[cols] * weights * dinv[rows]
    return CSR(_indptr(rows, n), cols, values, n)


def gcn_norm_factors(adj: CSR) -> tuple[CSR, torch.Tensor]:
    """The unweighted A + I and ``dinv`` = D^-1/2 (float32, (N,)), with A_hat = diag(dinv)(A+I)diag(dinv).

    Integer kernels aggregate over the 0/1 matrix A + I and apply ``dinv`` as per-row scales, which
    is why the two factors are handed out separately.
    """
    if adj.values is not None:
        raise ValueError("gcn_norm_factors needs an unweighted adjacency (values=None)")
    n = adj.num_nodes
    rows, cols, weights = _add_remaining_self_loops(adj)
    dinv = _inv_sqrt_degree(rows, weights, n)
    return CSR(_indptr(rows, n), cols, None, n), dinv
