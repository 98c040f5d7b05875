"""tr(X^T L X) equals the per-edge sum formula; the change energy of constant features is zero."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.data import gcn_norm
from qgnn_cli.nn import GraphOperator, dirichlet_energy
from tests.nn.graphs import ring_graph

pytestmark = pytest.mark.usefixtures("one_thread")


def test_energy_equals_per_edge_sum(seeded):
    g = ring_graph(15, 5)
    op = GraphOperator.from_adj(g.adj)
    x = torch.randn(15, 4, generator=seeded, dtype=torch.float32)
    deg = 1.0 + g.adj.degrees().double()  # A + I
    xd = x.double()
    rows, cols = g.adj.row_index(), g.adj.indices
    per_edge = 0.5 * sum(
        float(((xd[i] / deg[i].sqrt() - xd[j] / deg[j].sqrt()) ** 2).sum()) for i, j in zip(rows.tolist(), cols.tolist())
    )
    lap = torch.eye(15, dtype=torch.float64) - gcn_norm(g.adj).to_torch_sparse().to_dense().double()
    assert abs(float(torch.trace(xd.T @ lap @ xd)) - per_edge) < 1e-5 * per_edge  # A_hat is float32
    assert abs(float(dirichlet_energy(x, op)) - per_edge) < 1e-4 * max(1.0, per_edge)


def test_energy_vanishes_on_the_smooth_vector():
    g = ring_graph(10, 2)
    op = GraphOperator.from_adj(g.adj)
    x = (1.0 / op.dinv).unsqueeze(1).repeat(1, 3)  # D^1/2 1 spans L's null space
    assert abs(float(dirichlet_energy(x, op))) < 1e-4
