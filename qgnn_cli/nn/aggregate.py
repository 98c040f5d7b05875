"""Quantized aggregation ``Q_out(A_hat @ X)`` with the packed kernel's semantics (``kernels/spmm.py``).

    pre = X * dinv                                   # the rows entering aggregation, D^-1/2 X
    out = ((A + I) @ centred(Q_in(pre))) * scale * dinv
    out = Q_out(out)

``centred`` holds integers, so the sparse sum is exact and equals the integer kernel's; the two
products follow in the kernel's order. Gradients pass through ``quant/ste.py``'s STE/LSQ backward.
"""

from __future__ import annotations

import torch
from torch import nn

from qgnn_cli.nn.operator import GraphOperator
from qgnn_cli.quant import QLRQuantizer


class QAggregate(nn.Module):
    def __init__(self, input_q: QLRQuantizer | None = None, output_q: QLRQuantizer | None = None):
        super().__init__()
        self.input_q = input_q or QLRQuantizer()
        self.output_q = output_q or QLRQuantizer()

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        """Forward order: the pre-scaled source rows, then the aggregated result."""
        return [("input", self.input_q), ("output", self.output_q)]

    def forward(self, x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
        pre = x * op.dinv_col
        if self.input_q.enabled:
            centred, scale = self.input_q.codes(pre)
            out = (op.sparse_mm(centred) * scale) * op.dinv_col
        else:
            out = op.sparse_mm(pre) * op.dinv_col
        return self.output_q(out)
