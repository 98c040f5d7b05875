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
four values, and Cora INT2-BT* lost 6 points to them). For the same reason the last step's two
aggregated results are off too: they only enter that float output (no kernel reads them as codes), and
at 2 bits their four levels tie class scores as well (Cora K=10, 5 seeds, quantized -> off: INT2-BT*
78.2 -> 79.8 %, INT2 77.6 -> 78.5 %; benchmarks/RESULTS.md). Every aggregation still quantizes the
rows entering it, so every step's sparse product runs on packed codes.
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

from qgnn_cli.nn import aggregate as _agg
from qgnn_cli.nn.aggregate import QAggregate
from qgnn_cli.nn.energy import dirichlet_energy
from qgnn_cli.nn.operator import GraphOperator
from qgnn_cli.nn.sites import SitePlan
from qgnn_cli.quant import QLRQuantizer, qlr
from qgnn_cli.quant.ste import site_backward, site_forward

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
    start: tuple[int, torch.Tensor, float, float] | None = None,
) -> torch.Tensor:
    """Run ``steps`` propagation steps from ``X^0 = h``.

    ``aggregate(k, "x" | "dx", t)`` is step k's ``A_hat @ t`` through that site pair, ``update(k, t)``
    step k's update quantizer, ``energy(dX)`` tr(dX^T L dX). ``trace``, when given, receives
    ``(lambda, s, E_k)`` after every step (for tests and diagnostics). ``start``: ``(k0, X^k0, lambda,
    s)`` to run only steps k0 .. steps-1 (the packed runtime, after the steps it ran on codes).
    """
    p = params
    keep, smooth = 1.0 - (1.0 + p.mu) * p.eta, p.mu * p.eta
    first, x, lam, s = start if start is not None else (0, h, p.lambda_init, p.s_init)
    budget = p.alpha_th * num_entries
    for k in range(first, steps):
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


class _FusedStep(torch.autograd.Function):
    """One training step of :func:`smp_propagate` (``mode="smp"``, ``grad="authors"``, quantized
    aggregations) in one autograd node, for the per-node overhead of the eleven it replaces (three of
    them python) that dominates a step on small graphs. Same ops, same order, so the same forward bits;
    the backward is what autograd runs for the unfused step, op for op, and hands the gradients of
    ``x`` back in the order autograd would add them: ``x`` is passed three times (its uses in
    ``dx = x_half - x``, ``A(X)`` and ``keep * x``) and ``h`` once, in the order of the unfused
    nodes' backward (latest first), so the sums into ``x``'s and ``h``'s gradient (``x`` is ``h`` at
    step 0) associate the same way. Returns ``(X^{k+1}, dX)``, ``dX`` without gradient (for E_k)."""

    @staticmethod
    def forward(ctx, x_sub, h, x_agg, x_keep, *args):
        (a_xi, a_xo, a_di, a_do, a_u, step, op, keep, smooth, eta, c2, skews) = args
        x = x_sub
        st_ax, ax = _agg.aggregate_forward(x, step.agg_x, op, *skews[0])
        x_half = keep * x + smooth * ax + eta * h
        dx = x_half - x
        st_adx, adx = _agg.aggregate_forward(dx, step.agg_dx, op, *skews[1])
        pre = x_half + c2 * adx
        st_u = None
        if skews[2] is not None:
            st_u, pre = site_forward(pre, a_u, step.update, None, True, skews[2])
        ctx.st = (st_ax, st_adx, st_u, keep, smooth, eta, c2)
        ctx.mark_non_differentiable(dx)
        return pre, dx

    @staticmethod
    def backward(ctx, grad, _grad_dx):
        st_ax, st_adx, st_u, keep, smooth, eta, c2 = ctx.st
        need = ctx.needs_input_grad
        ga_u = None
        if st_u is not None:
            grad, ga_u = site_backward(st_u, grad, None, True, need[8])
        g_dx, ga_di, ga_do = _agg.aggregate_backward(st_adx, grad * c2, True, need[6], need[7])
        g_half = grad + g_dx
        g_h = g_half * eta if need[1] else None
        g_x, ga_xi, ga_xo = _agg.aggregate_backward(st_ax, g_half * smooth, True, need[4], need[5])
        return (-g_dx, g_h, g_x, g_half * keep, ga_xi, ga_xo, ga_di, ga_do, ga_u) + (None,) * 7


class PropStep(nn.Module):
    """The quantizer sites of one step: A(X), A(dX) (SMP only) and the update."""

    def __init__(self, plan: SitePlan, with_dx: bool, last: bool):
        super().__init__()

        def result_site() -> QLRQuantizer:  # the last step's results are float output (module docstring)
            return QLRQuantizer() if last else plan.make("agg")

        self.agg_x = QAggregate(plan.make("agg"), result_site())
        self.agg_dx = QAggregate(plan.make("agg"), result_site()) if with_dx else None
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

    def _fused_skews(self) -> list | None:
        """Every step's (agg_x, agg_dx, update) skews where the whole propagation can run through
        :class:`_FusedStep` (training, smp with the authors' gradient, every aggregation's input
        quantized, every quantized site initialised), else None."""
        p = self.params
        if not (self.training and qlr.FUSED and p.mode == "smp" and p.grad == "authors"):
            return None
        out = []
        for step in self.steps:
            sx, sdx = _agg.fusable(step.agg_x), _agg.fusable(step.agg_dx)
            if sx is None or sdx is None:
                return None
            q = step.update
            if q.enabled:
                initialized, skew = q._python_state()
                if not initialized:
                    return None
            else:
                skew = None
            out.append((sx, sdx, skew))
        return out

    def _forward_fused(self, h: torch.Tensor, op: GraphOperator, skews: list, trace: list | None) -> torch.Tensor:
        """:func:`smp_propagate`'s loop with each step one :class:`_FusedStep` node."""
        p = self.params
        keep, smooth = 1.0 - (1.0 + p.mu) * p.eta, p.mu * p.eta
        lam, s = p.lambda_init, p.s_init
        budget = p.alpha_th * op.num_entries
        # the step's constant factors as 0-d float32 tensors: the same float32 products as the python
        # numbers (which an op casts to float32), without wrapping a number in a tensor on every use
        keep_t, smooth_t, eta_t = (torch.tensor(v, dtype=torch.float32) for v in (keep, smooth, p.eta))
        x = h
        for step, sk in zip(self.steps, skews):
            alphas = [q._parameters["alpha"] for q in (step.agg_x.input_q, step.agg_x.output_q,
                                                      step.agg_dx.input_q, step.agg_dx.output_q)]
            a_u = step.update._parameters["alpha"] if sk[2] is not None else None
            x, dx = _FusedStep.apply(x, h, x, x, *alphas, a_u, step, op, keep_t, smooth_t, eta_t,
                                     2.0 * p.eta * lam, sk)
            e_k = float(dirichlet_energy(dx, op))
            lam, s = update_multipliers(lam, s, e_k, p, budget)
            if trace is not None:
                trace.append((lam, s, e_k))
        return x

    def forward(self, h: torch.Tensor, op: GraphOperator, trace: list | None = None) -> torch.Tensor:
        skews = self._fused_skews()
        if skews is not None:
            return self._forward_fused(h, op, skews, trace)

        def aggregate(k: int, which: str, t: torch.Tensor) -> torch.Tensor:
            step = self.steps[k]
            return (step.agg_x if which == "x" else step.agg_dx)(t, op)

        return smp_propagate(
            h, len(self.steps), self.params, aggregate,
            lambda k, t: self.steps[k].update(t),
            lambda t: dirichlet_energy(t, op), op.num_entries, trace,
        )
