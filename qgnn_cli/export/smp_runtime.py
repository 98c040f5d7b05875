"""Packed inference of the paper's model: the quantized MLP, then K SMP steps on the packed kernels.

The MLP runs on :class:`~qgnn_cli.export.runtime.PackedModel`'s GEMM path. The propagation stays in
packed codes from step to step: per step two fused ops, each an aggregation over A + I with the
elementwise work that consumes it (``kernels/smp.py``): ``qgnn::smp_delta`` (A(X), x_half, dx and dx's
aggregation input) and ``qgnn::smp_update`` (A(dX), the updated X on its site and the next step's
aggregation input). The last step's aggregated results and update are off (the quantized models' plan:
they are the float output), so there AX, A(dX) and X come out in float32. The ops follow
``nn.smp.smp_propagate``'s float32 arithmetic element for element and are clocked as "aggregation".
From the first step whose aggregation inputs or X are not codes (a site a user turned off), the steps
run ``smp_propagate`` itself with packed aggregations plugged in. Both call
``nn.smp.update_multipliers``, so the multipliers follow training's eval forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qgnn_cli.export.graph import PackedGraph
from qgnn_cli.export.siteops import Grid, dequant, requant
from qgnn_cli.kernels import smp_delta, smp_update
from qgnn_cli.nn.energy import dirichlet_energy
from qgnn_cli.nn.smp import smp_propagate, update_multipliers

_OFF = Grid(32, 1.0, 0)


def forward_smp(model, g: PackedGraph, x: torch.Tensor, clock, energy: str) -> torch.Tensor:
    """The propagated class scores (float32, before log-softmax) of ``model`` (a ``PackedModel``)."""
    steps = _packed_steps(model)
    if steps == 0:
        return _forward_float(model, g, x, clock, energy)
    return _forward_packed(model, g, x, clock, energy, steps)


def _site(model, k: int, name: str) -> Grid:
    return model.grids[f"prop.steps.{k}.{name}"]


def _packed_steps(model) -> int:
    """How many leading steps run on codes: a step needs its aggregations' inputs on and its X as codes
    (H's site for step 0, the previous update's after it); its aggregated results and update may be off
    (the last step's are), and then pass between the two ops in float32. See the module docstring."""
    which = ("agg_x", "agg_dx") if model.smp_params.mode == "smp" else ("agg_x",)
    for k in range(model.layers):
        x_site = model.grids["mlp.lin2.output"] if k == 0 else _site(model, k - 1, "update")
        if not (x_site.enabled and all(_site(model, k, f"{w}.input").enabled for w in which)):
            return k
    return model.layers


def _mlp(model, x: torch.Tensor, clock, to_next=None) -> torch.Tensor:
    """H: float values, or (``to_next``) the codes of ``mlp.lin2``'s output site."""
    if model.relu_handover is not None:
        codes = model._linear("mlp.lin1", x, clock, to_next=model.relu_handover)
        return model._linear("mlp.lin2", None, clock, codes=codes, to_next=to_next)
    z = model._linear("mlp.lin1", x, clock)
    with clock("other"):
        z = F.relu(z, inplace=True)
    return model._linear("mlp.lin2", z, clock, to_next=to_next)


def _grid(g: Grid) -> tuple:
    return (g.bits, g.scale, g.zero, g.mult, g.skew)


def _forward_packed(model, g: PackedGraph, x: torch.Tensor, clock, energy: str, packed: int) -> torch.Tensor:
    """The first ``packed`` steps on codes, the rest through :func:`_float_steps`."""
    p, steps, cols = model.smp_params, model.layers, model.num_classes
    h_grid = model.grids["mlp.lin2.output"]
    h = _mlp(model, x, clock, to_next=model.output_codes("mlp.lin2"))
    keep, smooth = 1.0 - (1.0 + p.mu) * p.eta, p.mu * p.eta  # as smp_propagate computes them
    lam, s = p.lambda_init, p.s_init
    budget = p.alpha_th * g.num_entries
    graph = (g.indptr, g.indices)
    with clock("requant"):  # the first aggregation's input: Q(H * D^-1/2)
        pre = _site(model, 0, "agg_x.input").pack(dequant(h, h_grid, cols).mul_(g.dinv_col))
    xc, x_grid = h, h_grid
    for k in range(packed):
        x_in, ax_grid, upd = _site(model, k, "agg_x.input"), _site(model, k, "agg_x.output"), _site(model, k, "update")
        nxt = _site(model, k + 1, "agg_x.input") if k + 1 < packed else _OFF
        delta = [_grid(x_in), _grid(ax_grid), _grid(x_grid), _grid(h_grid)]  # + dx's aggregation input
        step = [_grid(x_grid), _grid(ax_grid), _grid(h_grid), _grid(upd), _grid(nxt)]  # after A(dX)'s two
        if p.mode == "appnp":  # smp_delta for A(X) (its dx is not used), then the update
            with clock("aggregation"):
                ax, _, _, _ = smp_delta(*graph, pre, xc, h, g.dinv, cols, delta + [_grid(x_in)], keep, smooth, p.eta,
                                        check=False)
                out, pre, _ = smp_update(*graph, None, xc, ax, h, g.dinv, cols, [None, None, *step], keep, smooth,
                                         p.eta, 0.0, "appnp", check=False)
        else:
            dx_in, dx_out = _site(model, k, "agg_dx.input"), _site(model, k, "agg_dx.output")
            with clock("aggregation"):
                ax, dxc, dx, sq = smp_delta(*graph, pre, xc, h, g.dinv, cols, delta + [_grid(dx_in)], keep, smooth,
                                            p.eta, want_dx=energy == "exact", check=False)
                out, pre, cross = smp_update(*graph, dxc, xc, ax, h, g.dinv, cols, [_grid(dx_in), _grid(dx_out), *step],
                                             keep, smooth, p.eta, 2.0 * p.eta * lam, p.grad, check=False)
            with clock("other"):
                e_k = float(dirichlet_energy(dx, g)) if energy == "exact" else float(sq) - float(cross)
            lam, s = update_multipliers(lam, s, e_k, p, budget)
        xc, x_grid = out, upd
    if x_grid.enabled:  # the last packed step's update site is on: X is its codes' values
        with clock("requant"):
            xc = dequant(xc, x_grid, cols)
    if packed == steps:
        return xc
    with clock("requant"):
        h = dequant(h, h_grid, cols)
    return _float_steps(model, g, h, clock, energy, start=(packed, xc, lam, s))


def _forward_float(model, g: PackedGraph, x: torch.Tensor, clock, energy: str) -> torch.Tensor:
    """Every step in float between sites (:func:`_float_steps` from the MLP's output)."""
    return _float_steps(model, g, _mlp(model, x, clock), clock, energy)


def _float_steps(model, g: PackedGraph, h: torch.Tensor, clock, energy: str, start=None) -> torch.Tensor:
    """``smp_propagate`` from H's values (or from ``start``, see there) with packed aggregations."""
    last = {}

    def aggregate(k: int, which: str, t: torch.Tensor) -> torch.Tensor:
        out = model._aggregate(f"prop.steps.{k}.agg_{which}", t, g, clock)
        last[which] = out
        return out

    def update(k: int, t: torch.Tensor) -> torch.Tensor:
        with clock("requant"):
            return requant(t, model.grids[f"prop.steps.{k}.update"])

    def energy_fn(dx: torch.Tensor) -> torch.Tensor:
        with clock("other"):
            if energy == "exact":
                return dirichlet_energy(dx, g)  # g quacks like nn.GraphOperator here
            return (dx * dx).sum() - (dx * last["dx"]).sum()

    return smp_propagate(h, model.layers, model.smp_params, aggregate, update, energy_fn, g.num_entries,
                         start=start)
