"""A graph prepared once for the packed kernels: A + I as CSR with int32 columns, D^-1/2, checked once.

The kernels are then called with ``check=False``: their O(nnz) validation ran here, on tensors
nobody modifies afterwards.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from qgnn_cli.data import CSR, Graph, gcn_norm_factors
from qgnn_cli.errors import DataError
from qgnn_cli.kernels.validate import check_csr


@dataclass(eq=False)
class PackedGraph:
    indptr: torch.Tensor  # int64 (N+1,), A + I
    indices: torch.Tensor  # int32 (nnz,)
    dinv: torch.Tensor  # float32 (N,)
    max_degree: int
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_nodes(self) -> int:
        return int(self.dinv.numel())

    @property
    def num_entries(self) -> int:
        """|E| of METHOD.md §4: nonzeros of A + I."""
        return int(self.indices.numel())

    @property
    def dinv_col(self) -> torch.Tensor:
        if "dinv_col" not in self._cache:
            self._cache["dinv_col"] = self.dinv.unsqueeze(1)
        return self._cache["dinv_col"]

    @classmethod
    def from_adj(cls, adj: CSR) -> "PackedGraph":
        a1, dinv = gcn_norm_factors(adj)
        if a1.nnz >= 2**31 or a1.num_nodes >= 2**31:
            raise DataError(f"graph too large for int32 column indices ({a1.num_nodes} nodes, {a1.nnz} entries)")
        indices = a1.indices.to(torch.int32)
        try:
            max_degree = check_csr(a1.indptr, indices, a1.num_nodes)
        except ValueError as exc:
            raise DataError(f"adjacency unusable by the packed kernels: {exc}") from None
        return cls(a1.indptr.contiguous(), indices.contiguous(), dinv.to(torch.float32).contiguous(), max_degree)

    @classmethod
    def of(cls, graph: "Graph | CSR | PackedGraph") -> "PackedGraph":
        if isinstance(graph, PackedGraph):
            return graph
        if isinstance(graph, Graph):
            return cls.from_adj(graph.adj)
        if isinstance(graph, CSR):
            return cls.from_adj(graph)
        raise TypeError(f"expected a Graph, CSR or PackedGraph, got {type(graph).__name__}")

    # -- lazily built views for the float fallbacks ----------------------------------------------------
    def sparse(self) -> torch.Tensor:
        """A + I as a float32 torch sparse CSR tensor (for sites that are off)."""
        if "sparse" not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._cache["sparse"] = torch.sparse_csr_tensor(
                    self.indptr, self.indices.to(torch.int64), torch.ones(self.num_entries),
                    (self.num_nodes, self.num_nodes))
        return self._cache["sparse"]

    def sparse_mm(self, x: torch.Tensor) -> torch.Tensor:
        """``(A + I) @ x`` in float32, as ``nn.GraphOperator.sparse_mm`` (``nn.energy`` calls this)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse.mm(self.sparse(), x)
