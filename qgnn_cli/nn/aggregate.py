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


def aggregate_forward(x, module, op, skew_in: int, skew_out: int | None):
    """The quantized training aggregation's forward without autograd: ``(state, y)`` (see
    :class:`_FusedAggregate`); ``skew_out`` None: the output site is off."""
    pre = x * op.dinv_col
    st_in, (centred, scale) = site_forward(pre, module.input_q._parameters["alpha"], module.input_q, None, False,
                                           skew_in)
    summed = torch.sparse.mm(op.a1, centred)
    out = (summed * scale) * op.dinv_col
    if skew_out is None:  # the output site is off
        return (st_in, None, summed, op), out
    st_out, y = site_forward(out, module.output_q._parameters["alpha"], module.output_q, None, True, skew_out)
    return (st_in, st_out, summed, op), y


def aggregate_backward(state, grad, need_x: bool = True, need_a_in: bool = True, need_a_out: bool = True):
    """``(grad_x, grad_alpha_in, grad_alpha_out)``: what the six unfused nodes' backward gives."""
    st_in, st_out, summed, op = state
    g_out, ga_out = site_backward(st_out, grad, None, True, need_a_out) if st_out is not None else (grad, None)
    g_prod = g_out * op.dinv_col  # d/d(summed * scale)
    g_summed = g_prod * st_in.scale
    g_scale = (g_prod * summed).sum()
    g_centred = torch.sparse.mm(op.a1_t, g_summed)
    g_pre, ga_in = site_backward(st_in, g_centred, g_scale, need_x, need_a_in)
    g_x = g_pre * op.dinv_col if need_x else None
    return g_x, ga_in, ga_out


class _FusedAggregate(torch.autograd.Function):
    """A training-mode quantized aggregation in one autograd node: the pre-scaling, the input site,
    the sparse sum, the two products and the output site. The same ops in the same order as the
    unfused module (each site through ``quant/ste.py``'s site_forward/site_backward, the sum through
    ``GraphOperator.sparse_mm``'s matrices), so the same bits; what goes is the per-node overhead of
    the six autograd nodes it replaces (two of them python), which on Cora costs more than the
    arithmetic (tests/nn/test_aggregate.py compares the two)."""

    @staticmethod
    def forward(ctx, x, alpha_in, alpha_out, module, op, skew_in: int, skew_out: int | None):
        ctx.state, y = aggregate_forward(x, module, op, skew_in, skew_out)
        return y

    @staticmethod
    def backward(ctx, grad):
        g_x, ga_in, ga_out = aggregate_backward(ctx.state, grad, *ctx.needs_input_grad[:3])
        return g_x, ga_in, ga_out, None, None, None, None


def fusable(module: "QAggregate"):
    """``(skew_in, skew_out)`` where the module's training forward can run fused, else None;
    ``skew_out`` is None where the output site is off."""
    q_in, q_out = module.input_q, module.output_q
    if not (module.training and qlr.FUSED and q_in.enabled):
        return None
    init_in, skew_in = q_in._python_state()
    init_out, skew_out = q_out._python_state() if q_out.enabled else (True, None)
    return (skew_in, skew_out) if init_in and init_out else None


class QAggregate(nn.Module):
    def __init__(self, input_q: QLRQuantizer | None = None, output_q: QLRQuantizer | None = None):
        super().__init__()
        self.input_q = input_q or QLRQuantizer()
        self.output_q = output_q or QLRQuantizer()

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        """Forward order: the pre-scaled source rows, then the aggregated result."""
        return [("input", self.input_q), ("output", self.output_q)]

    def forward(self, x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
        skews = fusable(self)
        if skews is not None:
            return _FusedAggregate.apply(x, self.input_q._parameters["alpha"], self.output_q._parameters["alpha"],
                                         self, op, *skews)
        pre = x * op.dinv_col
        if self.input_q.enabled:
            centred, scale = self.input_q.codes(pre)
            out = (op.sparse_mm(centred) * scale) * op.dinv_col
        else:
            out = op.sparse_mm(pre) * op.dinv_col
        return self.output_q(out)
