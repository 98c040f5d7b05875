"""Packed inference of the paper's model: the quantized MLP, then K SMP steps on the packed kernels.

The MLP runs on :class:`~qgnn_cli.export.runtime.PackedModel`'s GEMM path; the propagation runs
``nn.smp.smp_propagate``, the very loop training uses, with packed aggregations plugged in, so the
multiplier updates and every site follow training's eval forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qgnn_cli.export.graph import PackedGraph
from qgnn_cli.export.siteops import requant
from qgnn_cli.nn.energy import dirichlet_energy
from qgnn_cli.nn.smp import smp_propagate


def forward_smp(model, g: PackedGraph, x: torch.Tensor, clock, energy: str) -> torch.Tensor:
    """The propagated class scores (float32, before log-softmax) of ``model`` (a ``PackedModel``)."""
    if model.relu_map is not None:
        h = model._linear("mlp.lin2", None, clock, codes=model._linear("mlp.lin1", x, clock, to_next=model.relu_map))
    else:
        z = model._linear("mlp.lin1", x, clock)
        with clock("other"):
            z = F.relu(z, inplace=True)
        h = model._linear("mlp.lin2", z, clock)
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

    return smp_propagate(h, model.layers, model.smp_params, aggregate, update, energy_fn, g.num_entries)
