"""The model registry: ``smp`` (the paper's decoupled model, also ``appnp``) and ``gcn`` (deep stack).

Every model takes ``forward(x, op)`` with ``op`` a :class:`GraphOperator` and returns log-probabilities;
``sites()`` lists ``(name, quantizer)`` for every quantizer in the order the eval forward applies
them (names are module paths, so ``model.get_submodule(name)`` finds each); ``penalty()`` is the
extra training-loss term and ``ascent()`` the multiplier update after each optimizer step (no-ops
for ``smp``, whose multipliers live inside the forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qgnn_cli.nn.gcn import DeepGCN
from qgnn_cli.nn.mlp import QMLP
from qgnn_cli.nn.operator import GraphOperator
from qgnn_cli.nn.sites import SitePlan
from qgnn_cli.nn.smp import SMPParams, SMPPropagation
from qgnn_cli.quant import QLRQuantizer

MODELS = ("smp", "gcn")


class SMPModel(nn.Module):
    """``log_softmax(SMP_K(QMLP(x)))``: sites are ``mlp.lin1.*``, ``mlp.lin2.*``, then ``prop.steps.k.*``."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, steps: int, dropout: float,
                 plan: SitePlan, params: SMPParams):
        super().__init__()
        self.mlp = QMLP(in_features, hidden, num_classes, dropout, plan)
        self.prop = SMPPropagation(steps, params, plan)

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        return [(f"mlp.{n}", q) for n, q in self.mlp.sites()] + [(f"prop.{n}", q) for n, q in self.prop.sites()]

    def forward(self, x: torch.Tensor, op: GraphOperator, trace: list | None = None) -> torch.Tensor:
        return F.log_softmax(self.prop(self.mlp(x), op, trace), dim=-1)

    def penalty(self) -> float:
        return 0.0

    def ascent(self) -> None:
        pass


def build_model(name: str, in_features: int, num_classes: int, *, layers: int, hidden: int, dropout: float,
                plan: SitePlan, smp: SMPParams, constraint: bool = True, lambda_lr: float = 0.01) -> nn.Module:
    """``layers`` is K (propagation steps) for ``smp`` and the number of GCN layers for ``gcn``."""
    if layers <= 0:
        raise ValueError(f"layers must be positive, got {layers}")
    if name == "smp":
        return SMPModel(in_features, hidden, num_classes, layers, dropout, plan, smp)
    if name == "gcn":
        return DeepGCN(in_features, hidden, num_classes, layers, dropout, plan, constraint, smp.alpha_th, lambda_lr)
    raise ValueError(f"unknown model {name!r}: expected one of {MODELS}")
