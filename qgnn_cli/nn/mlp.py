"""The paper's feature transform: dropout, QLinear(in -> hidden), ReLU, dropout, QLinear(hidden -> out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qgnn_cli.nn.features import dropout
from qgnn_cli.nn.sites import SitePlan
from qgnn_cli.quant import QLinear, QLRQuantizer


class QMLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float, plan: SitePlan):
        super().__init__()
        self.dropout = dropout
        self.lin1 = QLinear(in_features, hidden, input_q=plan.make("input"), weight_q=plan.make("weight"),
                            output_q=plan.make("linear"))
        self.lin2 = QLinear(hidden, out_features, input_q=plan.make("linear"), weight_q=plan.make("weight"),
                            output_q=plan.make("linear"))

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        return [(f"{lin}.{n}", q) for lin in ("lin1", "lin2") for n, q in getattr(self, lin).sites()]

    def forward(self, x) -> torch.Tensor:
        """``x``: dense (N, F) or :class:`SparseFeatures`."""
        x = dropout(x, self.dropout, self.training)
        z = F.relu(self.lin1(x))
        z = F.dropout(z, self.dropout, self.training)
        return self.lin2(z)
