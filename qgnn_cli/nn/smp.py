"""SMP: smoothness-aware message propagation, K weight-free steps (METHOD.md §4), and APPNP.

With ``A X`` the quantized aggregation and lambda, s reset to ``lambda_init``/``s_init`` at every
forward pass, step k does::

    X_half = (1 - (1 + mu) * eta) * X + mu * eta * A(X) + eta * H
    dX     = X_half - X
    X      = X_half + 2 * eta * lambda * A(dX)              # "authors": the A_hat part of the gradient
    X      = X_half - 2 * eta * lambda * (dX - A(dX))       # "exact": L dX, L = I - A_hat
    X      = Q_update(X)
    s      = s + 2 * eta_s * lambda * s
    E_k    = tr(dX^T L dX)                                  # nn/energy.py, float32
    lambda = max(0, lambda + eta_lambda * (alpha_th * |E| - s * s - E_k))

``A(X)`` and ``A(dX)`` are separate aggregation sites (their ranges differ by orders of magnitude).
The last step's update site is off: its output is the model's output, which the packed runtime hands
back in float; quantizing it only creates ties in the arg-max (at 2 bits every class score has one of
four values, and Cora INT2-BT* lost 6 points to them).
lambda and s are python floats (float64): multipliers of the constrained problem, updated by ascent,
not trained, so no gradient flows through them. ``mode="appnp"`` drops the constraint step:
``X = Q_update(X_half)``, which with mu = 9, eta = 0.1 is APPNP with teleport 0.1.

:func:`smp_propagate` is the loop on its own, parameterised by the aggregation, so the packed runtime
can run the very same arithmetic with its integer kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from qgnn_cli.nn.aggregate import QAggregate
from qgnn_cli.nn.energy import dirichlet_energy
from qgnn_cli.nn.operator import GraphOperator
from qgnn_cli.nn.sites import SitePlan
from qgnn_cli.quant import QLRQuantizer

PROP_MODES = ("smp", "appnp")
GRAD_MODES = ("authors", "exact")


@dataclass(frozen=True)
class SMPParams:
    mu: float = 9.0
    eta: float = 0.1
    eta_s: float = 1e-5
    eta_lambda: float = 1e-5
    alpha_th: float = 0.1
    lambda_init: float = 1e-3
    s_init: float = 1e-3
    mode: str = "smp"
    grad: str = "authors"


def update_multipliers(lam: float, s: float, e_k: float, params: SMPParams, budget: float) -> tuple[float, float]:
    """One step's slack and multiplier update (python floats), given the step's change energy ``e_k``.

    The one definition of the rule: training's loop and every packed runtime call it.

    lambda is kept >= 0 (projected ascent; METHOD.md §4 as written lets it go negative). A change energy
    above the budget drives lambda down, and a negative lambda turns the constraint step into
    anti-smoothing (``-2 eta lambda L dX`` with lambda < 0), which raises the energy further: with the
    exact gradient CiteSeer INT2-BT* reached E_k ~ 1e4, lambda -0.9 and a diverging loss. Measured on
    Cora K=10, seeds 0-2: INT2 75.0 -> 76.1 %, INT2-BT* 74.4 -> 75.2 % (benchmarks/RESULTS.md).
    """
    s = s + 2.0 * params.eta_s * lam * s
    lam = max(0.0, lam + params.eta_lambda * (budget - s * s - e_k))
    return lam, s


def smp_propagate(
    h: torch.Tensor,
    steps: int,
    params: SMPParams,
    aggregate: Callable[[int, str, torch.Tensor], torch.Tensor],
    update: Callable[[int, torch.Tensor], torch.Tensor],
    energy: Callable[[torch.Tensor], torch.Tensor],
    num_entries: int,
    trace: list | None = None,
) -> torch.Tensor:
    """Run ``steps`` propagation steps from ``X^0 = h``.

    ``aggregate(k, "x" | "dx", t)`` is step k's ``A_hat @ t`` through that site pair, ``update(k, t)``
    step k's update quantizer, ``energy(dX)`` tr(dX^T L dX). ``trace``, when given, receives
    ``(lambda, s, E_k)`` after every step (for tests and diagnostics).
    """
    p = params
    keep, smooth = 1.0 - (1.0 + p.mu) * p.eta, p.mu * p.eta
    lam, s = p.lambda_init, p.s_init
    budget = p.alpha_th * num_entries
    x = h
    for k in range(steps):
        x_half = keep * x + smooth * aggregate(k, "x", x) + p.eta * h
        if p.mode == "appnp":
            x = update(k, x_half)
            continue
        dx = x_half - x
        adx = aggregate(k, "dx", dx)
        if p.grad == "exact":
            x = update(k, x_half - (2.0 * p.eta * lam) * (dx - adx))
        else:
            x = update(k, x_half + (2.0 * p.eta * lam) * adx)
        e_k = float(energy(dx.detach()))
        lam, s = update_multipliers(lam, s, e_k, p, budget)
        if trace is not None:
            trace.append((lam, s, e_k))
    return x


class PropStep(nn.Module):
    """The quantizer sites of one step: A(X), A(dX) (SMP only) and the update."""

    def __init__(self, plan: SitePlan, with_dx: bool, last: bool):
        super().__init__()
        self.agg_x = QAggregate(plan.make("agg"), plan.make("agg"))
        self.agg_dx = QAggregate(plan.make("agg"), plan.make("agg")) if with_dx else None
        self.update = QLRQuantizer() if last else plan.make("update")

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        out = [(f"agg_x.{n}", q) for n, q in self.agg_x.sites()]
        if self.agg_dx is not None:
            out += [(f"agg_dx.{n}", q) for n, q in self.agg_dx.sites()]
        return out + [("update", self.update)]


class SMPPropagation(nn.Module):
    def __init__(self, steps: int, params: SMPParams, plan: SitePlan):
        super().__init__()
        if params.mode not in PROP_MODES:
            raise ValueError(f"unknown propagation {params.mode!r}: expected one of {PROP_MODES}")
        if params.grad not in GRAD_MODES:
            raise ValueError(f"unknown SMP gradient {params.grad!r}: expected one of {GRAD_MODES}")
        self.params = params
        self.steps = nn.ModuleList(PropStep(plan, params.mode == "smp", k == steps - 1) for k in range(steps))

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        """Every step's sites, step by step, in forward order (see :class:`PropStep`)."""
        return [(f"steps.{k}.{n}", q) for k, step in enumerate(self.steps) for n, q in step.sites()]

    def forward(self, h: torch.Tensor, op: GraphOperator, trace: list | None = None) -> torch.Tensor:
        def aggregate(k: int, which: str, t: torch.Tensor) -> torch.Tensor:
            step = self.steps[k]
            return (step.agg_x if which == "x" else step.agg_dx)(t, op)

        return smp_propagate(
            h, len(self.steps), self.params, aggregate,
            lambda k, t: self.steps[k].update(t),
            lambda t: dirichlet_energy(t, op), op.num_entries, trace,
        )
