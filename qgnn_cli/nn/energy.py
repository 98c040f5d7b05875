"""Dirichlet energy tr(X^T L X) with L = I - A_hat.

Computed as ``sum(X * X) - sum(Y * ((A + I) @ Y))`` with ``Y = D^-1/2 X``: one sparse product instead of
two gathers over the edges. It equals the per-edge form

    1/2 * sum_{(i, j) in A + I} || x_i / sqrt(d_i) - x_j / sqrt(d_j) ||^2

up to float32 rounding (tests/nn/test_energy.py). The packed runtime calls this same function on the
same float tensor, so the SMP multiplier updates come out identical.
"""

from __future__ import annotations

import torch

from qgnn_cli.nn.operator import GraphOperator


def dirichlet_energy(x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
    """A 0-d float32 tensor, differentiable in ``x``."""
    y = x * op.dinv_col
    return (x * x).sum() - (y * op.sparse_mm(y)).sum()
