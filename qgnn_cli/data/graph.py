"""The in-memory graph: CSR adjacency, node features, labels and split masks.

Convention (the same as PyG's ``edge_index = [src, dst]`` with messages flowing src -> dst):
row ``i`` of the CSR lists the nodes ``j`` whose messages node ``i`` aggregates, so
``out = A @ X`` gives ``out[i] = sum_j A[i, j] * X[j]``. For the undirected graphs we ship the
matrix is symmetric and the distinction does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from qgnn_cli.errors import DataError
from qgnn_cli.finite import all_finite


@dataclass(frozen=True)
class CSR:
    """A square sparse matrix in CSR form.

    ``indptr`` int64 (N+1,), ``indices`` int64 (nnz,) sorted within each row, ``values`` float32
    (nnz,) or ``None`` for an unweighted (all ones) matrix.
    """

    indptr: torch.Tensor
    indices: torch.Tensor
    values: torch.Tensor | None
    num_nodes: int

    @property
    def nnz(self) -> int:
        return int(self.indices.numel())

    def degrees(self) -> torch.Tensor:
        """Number of stored entries per row (int64)."""
        return self.indptr[1:] - self.indptr[:-1]

    def row_index(self) -> torch.Tensor:
        """The row of every stored entry (int64, nnz), i.e. the COO row vector."""
        return torch.repeat_interleave(torch.arange(self.num_nodes), self.degrees())

    def to_torch_sparse(self) -> torch.Tensor:
        """A ``torch.sparse_csr`` float32 tensor (values default to ones)."""
        values = self.values if self.values is not None else torch.ones(self.nnz)
        return torch.sparse_csr_tensor(
            self.indptr, self.indices, values, (self.num_nodes, self.num_nodes)
        )

    def validate(self, where: str = "adjacency") -> None:
        """Raise :class:`DataError` if the arrays are not a well-formed CSR matrix."""
        n = self.num_nodes
        if self.indptr.dtype != torch.int64 or self.indices.dtype != torch.int64:
            raise DataError(f"{where}: indptr and indices must be int64")
        if self.indptr.numel() != n + 1:
            raise DataError(f"{where}: indptr has {self.indptr.numel()} entries, expected {n + 1}")
        if int(self.indptr[0]) != 0 or int(self.indptr[-1]) != self.indices.numel():
            raise DataError(f"{where}: indptr must start at 0 and end at nnz={self.indices.numel()}")
        if bool((self.indptr[1:] < self.indptr[:-1]).any()):
            raise DataError(f"{where}: indptr is not non-decreasing")
        if self.indices.numel():
            lo, hi = int(self.indices.min()), int(self.indices.max())
            if lo < 0 or hi >= n:
                raise DataError(
                    f"{where}: column index out of range [{lo}, {hi}] for {n} nodes"
                )
        if self.values is not None:
            if self.values.shape != self.indices.shape:
                raise DataError(f"{where}: values and indices differ in length")
            if not all_finite(self.values):
                raise DataError(f"{where}: edge values contain NaN or Inf")


@dataclass(frozen=True)
class Graph:
    """A node-classification graph.

    ``adj`` is the unweighted adjacency without self-loops (duplicates removed), ``x`` float32 (N, F),
    ``y`` int64 (N,) or ``None``. Masks are bool (N,) or, for files that ship several splits,
    (S, N); :meth:`split` picks one.
    """

    name: str
    adj: CSR
    x: torch.Tensor
    y: torch.Tensor | None
    num_classes: int
    train_mask: torch.Tensor | None = None
    val_mask: torch.Tensor | None = None
    test_mask: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return self.adj.num_nodes

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_edges(self) -> int:
        """Directed edge count (each undirected edge counts twice), self-loops excluded."""
        return self.adj.nnz

    def with_masks(self, train: torch.Tensor, val: torch.Tensor, test: torch.Tensor) -> "Graph":
        return replace(self, train_mask=train, val_mask=val, test_mask=test)

    def validate(self) -> None:
        """Raise :class:`DataError` naming the first inconsistency found."""
        where = self.name
        self.adj.validate(f"{where}: adjacency")
        n = self.num_nodes
        if self.x.dim() != 2 or self.x.shape[0] != n:
            raise DataError(f"{where}: features have shape {tuple(self.x.shape)}, expected ({n}, F)")
        if self.x.dtype != torch.float32:
            raise DataError(f"{where}: features must be float32, got {self.x.dtype}")
        if not all_finite(self.x):
            bad = int((~torch.isfinite(self.x)).any(dim=1).nonzero()[0])
            raise DataError(f"{where}: features contain NaN or Inf (first at node {bad})")
        if self.y is not None:
            if self.y.shape != (n,):
                raise DataError(f"{where}: labels have shape {tuple(self.y.shape)}, expected ({n},)")
            if self.y.numel() and (int(self.y.min()) < 0 or int(self.y.max()) >= self.num_classes):
                raise DataError(
                    f"{where}: labels out of range [{int(self.y.min())}, {int(self.y.max())}]"
                    f" for {self.num_classes} classes"
                )
        for name in ("train_mask", "val_mask", "test_mask"):
            m = getattr(self, name)
            if m is not None and (m.dtype != torch.bool or m.shape[-1] != n):
                raise DataError(f"{where}: {name} must be bool with last dimension {n}")


def validated(graph: Graph, source: str) -> Graph:
    """``graph`` after :meth:`Graph.validate`, with ``source`` (the file it came from) in any error."""
    try:
        graph.validate()
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    return graph
