"""SparseFeatures' products: their weight gradients do not depend on the thread count or the run."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.nn import SparseFeatures


def _sparse(generator: torch.Generator, rows: int = 3000, cols: int = 700, integer: bool = False) -> SparseFeatures:
    # large enough (~40k nonzeros x 16 outputs) for the CPU kernels to split the work across threads
    keep = torch.rand(rows, cols, generator=generator) < 0.02
    x = torch.zeros(rows, cols)
    values = torch.rand(int(keep.sum()), generator=generator)
    x[keep] = torch.floor(values * 4) if integer else values
    return SparseFeatures.from_dense(x)


@pytest.mark.parametrize("path", ["matmul_t", "matmul_t_codes"])
def test_weight_gradient_is_the_same_every_run_and_at_any_thread_count(path, two_threads, seeded):
    """Two threads once gave a different weight gradient on every call (the gather's backward added with
    atomics), so training with the CLI's threads was not reproducible from its seed."""
    x = _sparse(seeded, integer=path == "matmul_t_codes")
    w0 = torch.randn(16, x.shape[1], generator=seeded)
    if path == "matmul_t_codes":
        w0 = torch.round(w0)
    upstream = torch.randn(x.shape[0], 16, generator=seeded)

    def grad() -> torch.Tensor:
        w = w0.clone().requires_grad_(True)
        out = x.matmul_t(w) if path == "matmul_t" else x.matmul_t_codes(w, 16.0)
        out.backward(upstream)
        return w.grad

    grads = [grad() for _ in range(5)]
    torch.set_num_threads(1)
    one_thread = grad()
    for g in grads:
        assert torch.equal(g, one_thread)
