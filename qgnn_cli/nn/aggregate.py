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
from qgnn_cli.quant import QLRQuantizer, qlr
from qgnn_cli.quant.ste import site_backward, site_forward


class _FusedAggregate(torch.autograd.Function):
    """A training-mode quantized aggregation in one autograd node: the pre-scaling, the input site,
    the sparse sum, the two products and the output site. The same ops in the same order as the
    unfused module (each site through ``quant/ste.py``'s site_forward/site_backward, the sum through
    ``GraphOperator.sparse_mm``'s matrices), so the same bits; what goes is the per-node overhead of
    the six autograd nodes it replaces (two of them python), which on Cora costs more than the
    arithmetic (tests/nn/test_aggregate.py compares the two)."""

    @staticmethod
    def forward(ctx, x, alpha_in, alpha_out, module, op, skew_in: int, skew_out: int):
        pre = x * op.dinv_col
        st_in, (centred, scale) = site_forward(pre, alpha_in, module.input_q, None, False, skew_in)
        summed = torch.sparse.mm(op.a1, centred)
        out = (summed * scale) * op.dinv_col
        st_out, y = site_forward(out, alpha_out, module.output_q, None, True, skew_out)
        ctx.st_in, ctx.st_out, ctx.summed, ctx.op = st_in, st_out, summed, op
        return y

    @staticmethod
    def backward(ctx, grad):
        need_x, need_a_in, need_a_out = ctx.needs_input_grad[:3]
        op, st_in = ctx.op, ctx.st_in
        g_out, ga_out = site_backward(ctx.st_out, grad, None, True, need_a_out)
        g_prod = g_out * op.dinv_col  # d/d(summed * scale)
        g_summed = g_prod * st_in.scale
        g_scale = (g_prod * ctx.summed).sum()
        g_centred = torch.sparse.mm(op.a1_t, g_summed)
        g_pre, ga_in = site_backward(st_in, g_centred, g_scale, need_x, need_a_in)
        g_x = g_pre * op.dinv_col if need_x else None
        return g_x, ga_in, ga_out, None, None, None, None


class QAggregate(nn.Module):
    def __init__(self, input_q: QLRQuantizer | None = None, output_q: QLRQuantizer | None = None):
        super().__init__()
        self.input_q = input_q or QLRQuantizer()
        self.output_q = output_q or QLRQuantizer()

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        """Forward order: the pre-scaled source rows, then the aggregated result."""
        return [("input", self.input_q), ("output", self.output_q)]

    def forward(self, x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
        if self.training and qlr.FUSED and self.input_q.enabled and self.output_q.enabled:
            (init_in, skew_in), (init_out, skew_out) = self.input_q._python_state(), self.output_q._python_state()
            if init_in and init_out:
                return _FusedAggregate.apply(x, self.input_q._parameters["alpha"],
                                             self.output_q._parameters["alpha"], self, op, skew_in, skew_out)
        pre = x * op.dinv_col
        if self.input_q.enabled:
            centred, scale = self.input_q.codes(pre)
            out = (op.sparse_mm(centred) * scale) * op.dinv_col
        else:
            out = op.sparse_mm(pre) * op.dinv_col
        return self.output_q(out)
