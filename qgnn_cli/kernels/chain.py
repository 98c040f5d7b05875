"""Epilogue chains: per-element float stages that ``spmm_requant`` and ``gemm_requant`` apply to each
output row before quantizing it onto the output grid.

Between two packed ops a model often runs a few per-element sites: a GEMM's output site, then the
``D^-1/2`` pre-scaling and the aggregation's input site; an aggregation's output site, the bias, a
ReLU, the update site and the next layer's input site. Inside the producing kernel's epilogue they
cost a few vector operations per row instead of extra passes over the N x F matrix. Stages, in order,
in float32 exactly as written (each product and sum rounded on its own)::

    fake_quant(grid)   y = (mult * code(y) - zero) * scale      the site's value (rounding.py)
    mul_row            y = y * chain_row[r]                      e.g. D^-1/2
    add_col            y = y + chain_col[c]                      e.g. a bias
    relu               y = max(y, 0)

An op receives the chain as ``chain`` (float64, one ``(kind, bits, scale, zero, mult, skew)`` row per
stage; the stage codes are ``csrc/cpu/kernels.h``'s ``ChainOp``), plus the one row vector and the one
column vector its stages read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qgnn_cli.kernels.quantize import check_grid
from qgnn_cli.kernels.rounding import fake_quantize
from qgnn_cli.kernels.validate import check_tensor

FAKE_QUANT, MUL_ROW, ADD_COL, RELU = 0, 1, 2, 3
MAX_STAGES = 8  # kMaxChainStages


@dataclass(frozen=True)
class Chain:
    """A chain ready for an op: ``spec`` (float64 (n, 6)) and the vectors its stages read."""

    spec: torch.Tensor
    row: torch.Tensor | None = None
    col: torch.Tensor | None = None

    @classmethod
    def of(cls, stages: list[tuple], row: torch.Tensor | None = None, col: torch.Tensor | None = None) -> "Chain":
        """``stages``: ``("fake_quant", bits, scale, zero, mult, skew)``, ``("mul_row",)``, ``("add_col",)``
        or ``("relu",)``, in order."""
        kinds = {"fake_quant": FAKE_QUANT, "mul_row": MUL_ROW, "add_col": ADD_COL, "relu": RELU}
        rows = []
        for stage in stages:
            if stage[0] not in kinds:
                raise ValueError(f"unknown chain stage {stage[0]!r}: expected one of {tuple(kinds)}")
            grid = tuple(stage[1:]) if stage[0] == "fake_quant" else (0, 0.0, 0, 0, 0)
            if len(grid) != 5:
                raise ValueError("a fake_quant stage needs (bits, scale, zero, mult, skew)")
            rows.append((kinds[stage[0]], *grid))
        spec = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), 6)
        return cls(spec, row, col)

    def args(self) -> tuple:
        return self.spec, self.row, self.col


def apply_chain_reference(y: torch.Tensor, chain: torch.Tensor | None, chain_row: torch.Tensor | None,
                          chain_col: torch.Tensor | None) -> torch.Tensor:
    """The stages on float32 rows ``y`` (rows, cols), with the rounding rule's own functions."""
    if chain is None:
        return y
    for kind, bits, scale, zero, mult, skew in chain.tolist():
        kind = int(kind)
        if kind == FAKE_QUANT:
            y = fake_quantize(y, torch.tensor(scale, dtype=torch.float32), float(zero), int(bits), int(mult), int(skew))
        elif kind == MUL_ROW:
            y = y * chain_row.unsqueeze(1)
        elif kind == ADD_COL:
            y = y + chain_col
        else:
            y = torch.relu(y)
    return y


def check_chain(chain: torch.Tensor | None, chain_row: torch.Tensor | None, chain_col: torch.Tensor | None,
                rows: int, cols: int) -> None:
    """Raise ``ValueError`` unless the chain's stages and the vectors they read are well formed."""
    if chain is None:
        return
    check_tensor(chain, "chain", torch.float64, 2)
    if chain.shape[1] != 6 or chain.shape[0] > MAX_STAGES:
        raise ValueError(f"chain must have at most {MAX_STAGES} rows of 6 entries, got {tuple(chain.shape)}")
    for i, (kind, bits, scale, zero, mult, skew) in enumerate(chain.tolist()):
        if kind not in (FAKE_QUANT, MUL_ROW, ADD_COL, RELU):
            raise ValueError(f"chain stage {i}: unknown kind {kind}")
        if kind == FAKE_QUANT:
            if any(v != int(v) for v in (bits, zero, mult, skew)):
                raise ValueError(f"chain stage {i}: bits, zero, mult and skew must be integers")
            check_grid(int(bits), float(torch.tensor(scale, dtype=torch.float32)), int(zero), int(mult), int(skew))
        for needed, vec, name, n in ((MUL_ROW, chain_row, "chain_row", rows), (ADD_COL, chain_col, "chain_col", cols)):
            if kind == needed:
                if vec is None:
                    raise ValueError(f"chain stage {i} reads {name}, which is missing")
                check_tensor(vec, name, torch.float32, 1)
                if vec.numel() != n:
                    raise ValueError(f"{name} has {vec.numel()} entries, the output has {n}")
