"""The PyG FP32 peer of a qgnn model: ``GCNConv`` layers (for ``gcn``) or ``APPNP`` (for ``smp``).

Same weights as the qgnn model; normalisation precomputed once (``normalize=False`` on the ``A_hat``
sparse tensor, which is what ``cached=True`` keeps after the first call), so PyG runs its sparse-matrix
path (``torch.sparse.mm``) rather than a per-edge gather/scatter. APPNP is the SMP model without its
constraint step (the propagation PyG offers); K and teleport (eta) are the model's.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def pyg_available() -> bool:
    return importlib.util.find_spec("torch_geometric") is not None


def pyg_forward(model: nn.Module, kind: str, a_hat: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    from torch_geometric.nn import APPNP, GCNConv

    def linear(path: str) -> nn.Linear:
        src = model.get_submodule(path)
        lin = nn.Linear(src.weight.shape[1], src.weight.shape[0], bias=src.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(src.weight)
            if src.bias is not None:
                lin.bias.copy_(src.bias)
        return lin.eval()

    if kind == "gcn":
        lin_in, lin_out = linear("lin_in"), linear("lin_out")
        convs = []
        for i, layer in enumerate(model.layers):
            hidden = layer.lin.weight.shape[0]
            conv = GCNConv(hidden, hidden, normalize=False, bias=True).eval()
            with torch.no_grad():
                conv.lin.weight.copy_(layer.lin.weight)
                conv.bias.copy_(layer.bias)
            convs.append(conv)

        @torch.no_grad()
        def gcn(x: torch.Tensor) -> torch.Tensor:
            h = F.relu(lin_in(x))
            for conv in convs:
                h = F.relu(conv(h, a_hat))
            return F.log_softmax(lin_out(h), dim=-1)

        return gcn

    lin1, lin2 = linear("mlp.lin1"), linear("mlp.lin2")
    p = model.prop.params
    prop = APPNP(K=len(model.prop.steps), alpha=p.eta, normalize=False).eval()

    @torch.no_grad()
    def appnp(x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(prop(lin2(F.relu(lin1(x))), a_hat), dim=-1)

    return appnp
