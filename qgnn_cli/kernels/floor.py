"""``qgnn::gather_floor``: a benchmark helper, not a model op.

It touches every neighbour's packed row of a CSR matrix and does nothing else (the compiled kernel
loads each row with the same prefetching as ``spmm`` and folds it with XOR), so its time is the
floor of the gather-sum workload on a machine: random cache-line fetches, no arithmetic, no output
rows. ``benchmarks/kernels.py`` reports the packed SpMM against it. The result is the XOR of every
32-bit word of every neighbour row, per row (int32 [N]), which the reference computes bit by bit.
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.validate import check_csr, check_tensor


def gather_floor_reference(indptr: torch.Tensor, indices: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    rows = indptr.numel() - 1
    words = packed.to(torch.int64)[indices.to(torch.int64)] & 0xFFFFFFFF  # (nnz, W)
    bits = (words.unsqueeze(2) >> torch.arange(32, device=packed.device)) & 1  # (nnz, W, 32)
    per_edge = bits.sum(dim=1)  # (nnz, 32)
    row_of_edge = torch.repeat_interleave(torch.arange(rows, device=packed.device), indptr[1:] - indptr[:-1])
    counts = torch.zeros(rows, 32, dtype=torch.int64, device=packed.device).index_add_(0, row_of_edge, per_edge)
    value = ((counts & 1) << torch.arange(32, device=packed.device)).sum(dim=1)
    return torch.where(value >= 2**31, value - 2**32, value).to(torch.int32)


def _fake(indptr, indices, packed):
    return packed.new_empty((indptr.shape[0] - 1,), dtype=torch.int32)


define("gather_floor(Tensor indptr, Tensor indices, Tensor packed) -> Tensor", gather_floor_reference, _fake)


def gather_floor(indptr: torch.Tensor, indices: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """Benchmark helper: XOR of every neighbour's packed row, per row (see the module docstring)."""
    check_tensor(packed, "packed", torch.int32, 2)
    check_csr(indptr, indices, packed.shape[0])
    return torch.ops.qgnn.gather_floor(indptr, indices, packed.contiguous())
