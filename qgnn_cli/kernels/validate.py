"""Checks at the Python boundary, so that no compiled kernel ever reads out of bounds."""

from __future__ import annotations

import torch

from qgnn_cli.kernels.pack import words_per_row
from qgnn_cli.kernels.rounding import check_bits


def check_tensor(t: torch.Tensor, name: str, dtype: torch.dtype, dim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dtype != dtype or t.dim() != dim:
        raise ValueError(f"{name} must be a {dim}-D {dtype} tensor, got {t.dim()}-D {t.dtype}")


def check_packed(packed: torch.Tensor, bits: int, cols: int, name: str = "packed") -> None:
    check_bits(bits)
    check_tensor(packed, name, torch.int32, 2)
    if cols < 0 or packed.shape[1] != words_per_row(cols, bits):
        raise ValueError(
            f"{name} rows have {packed.shape[1]} words, but {cols} codes of {bits} bits need "
            f"{words_per_row(max(cols, 0), bits)}"
        )


def check_csr(indptr: torch.Tensor, indices: torch.Tensor, num_cols: int) -> int:
    """Validate a CSR structure whose column indices address ``num_cols`` rows; returns max degree."""
    check_tensor(indptr, "indptr", torch.int64, 1)
    check_tensor(indices, "indices", torch.int32, 1)
    if indptr.numel() < 1 or int(indptr[0]) != 0:
        raise ValueError("indptr must be non-empty and start at 0")
    if int(indptr[-1]) != indices.numel():
        raise ValueError(f"indptr ends at {int(indptr[-1])} but there are {indices.numel()} indices")
    degrees = indptr[1:] - indptr[:-1]
    if degrees.numel() and int(degrees.min()) < 0:
        raise ValueError("indptr must be non-decreasing")
    if indices.numel():
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= num_cols:
            raise ValueError(f"column index out of range: [{lo}, {hi}] for {num_cols} source rows")
    return int(degrees.max()) if degrees.numel() else 0
