"""The graph as the propagation layers see it: A + I, D^-1/2 and |E|, built once per graph.

``A_hat = D^-1/2 (A + I) D^-1/2`` is never materialised: aggregation runs over the unweighted
``A + I`` and scales rows by ``dinv`` before and after, which is the form the packed integer kernel
executes (``kernels/spmm.py``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from qgnn_cli.data import CSR, gcn_norm_factors


class _SpMM(torch.autograd.Function):
    """``a @ x`` with the transpose for the backward built once, not on every call (autograd's default)."""

    @staticmethod
    def forward(ctx, x, a, a_t):
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, grad):
        return torch.sparse.mm(ctx.a_t, grad), None, None


def _sparse(indptr: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sparse_csr_tensor(indptr, indices, torch.ones(indices.numel()), (n, n))


@dataclass(frozen=True)
class GraphOperator:
    a1: torch.Tensor  # sparse CSR float32, A + I (ones)
    a1_t: torch.Tensor  # its transpose (the same matrix for undirected graphs)
    indptr: torch.Tensor  # int64 (N+1,), the CSR of A + I for the packed kernels
    indices: torch.Tensor  # int64 (nnz,)
    rows: torch.Tensor  # int64 (nnz,), the row of every entry (for per-edge sums)
    dinv: torch.Tensor  # float32 (N,), D^-1/2 of A + I
    dinv_col: torch.Tensor  # float32 (N, 1), the same as a column for broadcasting

    @property
    def num_nodes(self) -> int:
        return int(self.dinv.numel())

    @property
    def num_entries(self) -> int:
        """|E| of METHOD.md §4: the nonzeros of A_hat, self-loops included."""
        return int(self.indices.numel())

    @classmethod
    def from_adj(cls, adj: CSR) -> "GraphOperator":
        a1, dinv = gcn_norm_factors(adj)
        n, rows = a1.num_nodes, a1.row_index()
        order = torch.argsort(a1.indices * n + rows)  # the entries of A^T, by (column, row)
        t_indptr = torch.zeros(n + 1, dtype=torch.int64)
        torch.cumsum(torch.bincount(a1.indices, minlength=n), 0, out=t_indptr[1:])
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            sparse, sparse_t = _sparse(a1.indptr, a1.indices, n), _sparse(t_indptr, rows[order], n)
        return cls(sparse, sparse_t, a1.indptr, a1.indices, rows, dinv, dinv.unsqueeze(1))

    def sparse_mm(self, x: torch.Tensor) -> torch.Tensor:
        """``(A + I) @ x``; differentiable in ``x``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return _SpMM.apply(x, self.a1, self.a1_t)

    def a_hat(self, x: torch.Tensor) -> torch.Tensor:
        """Unquantized ``A_hat @ x`` in the factored order the kernels use."""
        return self.sparse_mm(x * self.dinv_col) * self.dinv_col
