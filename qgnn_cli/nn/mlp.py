"""The paper's feature transform: dropout, QLinear(in -> hidden), ReLU, dropout, QLinear(hidden -> out).

Each dropout runs inside its QLinear, after the input quantizer, and the ReLU inside ``lin1``, before
its output quantizer (see ``quant/linear.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from qgnn_cli.nn.sites import SitePlan
from qgnn_cli.quant import QLinear, QLRQuantizer


class QMLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float, plan: SitePlan):
        super().__init__()
        self.lin1 = QLinear(in_features, hidden, input_q=plan.make("input"), weight_q=plan.make("weight"),
                            output_q=plan.make("linear"), dropout=dropout, relu=True)
        self.lin2 = QLinear(hidden, out_features, input_q=plan.make("linear"), weight_q=plan.make("weight"),
                            output_q=plan.make("linear"), dropout=dropout)

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        return [(f"{lin}.{n}", q) for lin in ("lin1", "lin2") for n, q in getattr(self, lin).sites()]

    def forward(self, x) -> torch.Tensor:
        """``x``: dense (N, F) or :class:`SparseFeatures`."""
        return self.lin2(self.lin1(x))
