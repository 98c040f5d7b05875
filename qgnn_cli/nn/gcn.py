"""A deep stack of quantized GCN layers with an optional per-layer smoothness constraint (beyond the paper).

    h_0     = ReLU(QLinear(in -> hidden)(dropout(x)))
    h_{l+1} = Q_update(ReLU(A(QLinear_l(h_l)) + b_l))        l = 0 .. L-1, each with its own weights
    out     = QLinear(hidden -> classes)(dropout(h_L))    # output site off: the class scores stay float

(each dropout inside its QLinear, after the input quantizer; lin_in's ReLU before its output
quantizer: ``quant/linear.py``).

``A`` is the quantized aggregation (``nn/aggregate.py``); each ``QLinear_l`` has no bias of its own,
``b_l`` is added after aggregation, as in ``GCNConv``. Dropout sits only at the two ends: per-layer
dropout makes a 64-layer stack untrainable before any smoothness effect can be seen.

With ``constraint=True`` every layer's change ``dX_l = h_{l+1} - h_l`` is held to the SMP bound
tr(dX_l^T L dX_l) <= alpha_th * |E| through a Lagrangian term in the training loss, one multiplier per
layer, raised by gradient ascent across training steps and kept >= 0 (an inequality; the basic
differential multiplier method with the slack eliminated by projection). The energy is divided by
|E| so that the multiplier learning rate does not depend on the graph's size. The multipliers only
shape training; the eval forward does not read them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qgnn_cli.nn.aggregate import QAggregate
from qgnn_cli.nn.energy import dirichlet_energy
from qgnn_cli.nn.operator import GraphOperator
from qgnn_cli.nn.sites import SitePlan
from qgnn_cli.quant import QLinear, QLRQuantizer


class QGCNLayer(nn.Module):
    def __init__(self, features: int, plan: SitePlan):
        super().__init__()
        self.lin = QLinear(features, features, bias=False, input_q=plan.make("linear"),
                           weight_q=plan.make("weight"), output_q=plan.make("linear"))
        self.agg = QAggregate(plan.make("agg"), plan.make("agg"))
        self.bias = nn.Parameter(torch.zeros(features))
        self.update = plan.make("update")

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        return ([(f"lin.{n}", q) for n, q in self.lin.sites()] + [(f"agg.{n}", q) for n, q in self.agg.sites()]
                + [("update", self.update)])

    def conv(self, x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
        """``A_hat (x W^T) + b``: GCNConv, before the nonlinearity."""
        return self.agg(self.lin(x), op) + self.bias

    def forward(self, x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
        return self.update(F.relu(self.conv(x, op)))


class DeepGCN(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_classes: int, layers: int, dropout: float,
                 plan: SitePlan, constraint: bool = False, alpha_th: float = 0.1, lambda_lr: float = 0.01):
        super().__init__()
        self.constraint, self.alpha_th, self.lambda_lr = constraint, alpha_th, lambda_lr
        self.lin_in = QLinear(in_features, hidden, input_q=plan.make("input"), weight_q=plan.make("weight"),
                              output_q=plan.make("linear"), dropout=dropout, relu=True)
        self.layers = nn.ModuleList(QGCNLayer(hidden, plan) for _ in range(layers))
        # lin_out's output site is off: its values are the class scores the model returns (as the last
        # SMP step's results, nn/smp.py); quantized, they tie in the arg-max
        self.lin_out = QLinear(hidden, num_classes, input_q=plan.make("linear"), weight_q=plan.make("weight"),
                               dropout=dropout)
        self.register_buffer("multipliers", torch.zeros(layers))
        self._violations: list[torch.Tensor] = []

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        """lin_in, then layer by layer (lin, agg, update), then lin_out: forward order."""
        out = [(f"lin_in.{n}", q) for n, q in self.lin_in.sites()]
        for i, layer in enumerate(self.layers):
            out += [(f"layers.{i}.{n}", q) for n, q in layer.sites()]
        return out + [(f"lin_out.{n}", q) for n, q in self.lin_out.sites()]

    def forward(self, x: torch.Tensor, op: GraphOperator) -> torch.Tensor:
        self._violations = []
        h = self.lin_in(x)
        for layer in self.layers:
            nxt = layer(h, op)
            if self.constraint and self.training:
                self._violations.append(dirichlet_energy(nxt - h, op) / op.num_entries - self.alpha_th)
            h = nxt
        return F.log_softmax(self.lin_out(h), dim=-1)

    def penalty(self) -> torch.Tensor | float:
        """sum_l lambda_l * (E_l / |E| - alpha_th) of the last training forward (0 without constraint)."""
        if not self._violations:
            return 0.0
        return (self.multipliers * torch.stack(self._violations)).sum()

    @torch.no_grad()
    def ascent(self) -> None:
        """Raise each multiplier by its constraint's violation (after the optimizer step)."""
        if self._violations:
            v = torch.stack(self._violations).detach()
            self.multipliers.add_(self.lambda_lr * v).clamp_(min=0.0)
