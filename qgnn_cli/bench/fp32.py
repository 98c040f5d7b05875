"""The FP32 baselines: the same model written in plain PyTorch, as a user writes it and with preallocated outputs.

Both read the FP32 weights of a qgnn model (``smp`` or ``gcn``) and run the eval forward with
``A_hat = D^-1/2 (A + I) D^-1/2`` as an int64 ``torch.sparse_csr`` tensor (what PyG and most user code
build):

* ``fp32``: ``torch.sparse.mm`` + ``torch.nn.functional.linear``, fresh outputs every call;
* ``fp32_prealloc``: ``torch.addmm(out, A, X, beta=0, out=out)`` / ``torch.addmm(bias, X, W.T, out=)``
  into buffers allocated once (KERNELS.md's fairest "best FP32 torch").

SMP's Dirichlet energy is computed as ``||dX||^2 - <dX, A_hat dX>`` from the ``A_hat dX`` the step
computes anyway (the same identity the packed runtime uses with ``energy="identity"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from qgnn_cli.data import CSR, gcn_norm
from qgnn_cli.nn.smp import update_multipliers


def a_hat_sparse(adj: CSR) -> torch.Tensor:
    """``A_hat`` (self-loops added, symmetric normalisation) as a float32 int64-indexed sparse CSR tensor."""
    norm = gcn_norm(adj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(norm.indptr, norm.indices, norm.values, (adj.num_nodes, adj.num_nodes))


def _weights(model: nn.Module, path: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    lin = model.get_submodule(path)
    bias = lin.bias.detach().clone() if lin.bias is not None else None
    return lin.weight.detach().clone(), bias


def _spmm(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse.mm(a, x)


def _smp_constants(params) -> tuple[float, float]:
    return 1.0 - (1.0 + params.mu) * params.eta, params.mu * params.eta


def fp32_forward(model: nn.Module, kind: str, a_hat: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> log-probs`` in plain PyTorch, fresh outputs (the ``fp32`` variant)."""
    if kind == "gcn":
        w_in, b_in = _weights(model, "lin_in")
        layers = [(_weights(model, f"layers.{i}.lin")[0], model.layers[i].bias.detach().clone())
                  for i in range(len(model.layers))]
        w_out, b_out = _weights(model, "lin_out")

        @torch.no_grad()
        def gcn(x: torch.Tensor) -> torch.Tensor:
            h = F.relu(F.linear(x, w_in, b_in))
            for w, b in layers:
                h = F.relu(_spmm(a_hat, F.linear(h, w)) + b)
            return F.log_softmax(F.linear(h, w_out, b_out), dim=-1)

        return gcn

    w1, b1 = _weights(model, "mlp.lin1")
    w2, b2 = _weights(model, "mlp.lin2")
    p, steps = model.prop.params, len(model.prop.steps)
    keep, smooth = _smp_constants(p)
    budget = p.alpha_th * a_hat._nnz()

    @torch.no_grad()
    def smp(x: torch.Tensor) -> torch.Tensor:
        h = F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)
        z, lam, s = h, p.lambda_init, p.s_init
        for _ in range(steps):
            half = keep * z + smooth * _spmm(a_hat, z) + p.eta * h
            if p.mode == "appnp":
                z = half
                continue
            dx = half - z
            adx = _spmm(a_hat, dx)
            z = half - (2 * p.eta * lam) * (dx - adx) if p.grad == "exact" else half + (2 * p.eta * lam) * adx
            energy = float((dx * dx).sum() - (dx * adx).sum())
            lam, s = update_multipliers(lam, s, energy, p, budget)
        return F.log_softmax(z, dim=-1)

    return smp


def fp32_prealloc_forward(model: nn.Module, kind: str, a_hat: torch.Tensor, num_nodes: int
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same forward writing every product into buffers allocated once (the ``fp32_prealloc`` variant)."""
    if kind == "gcn":
        w_in, b_in = _weights(model, "lin_in")
        layers = [(_weights(model, f"layers.{i}.lin")[0].T.contiguous(), model.layers[i].bias.detach().clone())
                  for i in range(len(model.layers))]
        w_out, b_out = _weights(model, "lin_out")
        w_in_t, w_out_t = w_in.T.contiguous(), w_out.T.contiguous()
        hidden = w_in.shape[0]
        h = torch.empty(num_nodes, hidden)
        t = torch.empty(num_nodes, hidden)
        out = torch.empty(num_nodes, w_out.shape[0])

        @torch.no_grad()
        def gcn(x: torch.Tensor) -> torch.Tensor:
            torch.addmm(b_in, x, w_in_t, out=h).relu_()
            for w_t, b in layers:
                torch.mm(h, w_t, out=t)
                torch.addmm(h, a_hat, t, beta=0, out=h)
                h.add_(b).relu_()
            torch.addmm(b_out, h, w_out_t, out=out)
            return F.log_softmax(out, dim=-1)

        return gcn

    w1, b1 = _weights(model, "mlp.lin1")
    w2, b2 = _weights(model, "mlp.lin2")
    w1_t, w2_t = w1.T.contiguous(), w2.T.contiguous()
    p, steps = model.prop.params, len(model.prop.steps)
    keep, smooth = _smp_constants(p)
    budget = p.alpha_th * a_hat._nnz()
    classes = w2.shape[0]
    z1 = torch.empty(num_nodes, w1.shape[0])
    h, z, ax, dx, adx = (torch.empty(num_nodes, classes) for _ in range(5))

    @torch.no_grad()
    def smp(x: torch.Tensor) -> torch.Tensor:
        torch.addmm(b1, x, w1_t, out=z1).relu_()
        torch.addmm(b2, z1, w2_t, out=h)
        z.copy_(h)
        lam, s = p.lambda_init, p.s_init
        for _ in range(steps):
            torch.addmm(ax, a_hat, z, beta=0, out=ax)
            # half = keep * z + smooth * ax + eta * h, kept in ax; dx = half - z
            ax.mul_(smooth).add_(z, alpha=keep).add_(h, alpha=p.eta)
            if p.mode == "appnp":
                z.copy_(ax)
                continue
            torch.sub(ax, z, out=dx)
            torch.addmm(adx, a_hat, dx, beta=0, out=adx)
            energy = float(dx.pow(2).sum() - (dx * adx).sum())
            if p.grad == "exact":
                z.copy_(ax).sub_(dx, alpha=2 * p.eta * lam).add_(adx, alpha=2 * p.eta * lam)
            else:
                z.copy_(ax).add_(adx, alpha=2 * p.eta * lam)
            lam, s = update_multipliers(lam, s, energy, p, budget)
        return F.log_softmax(z, dim=-1)

    return smp
