"""An outside reference: our FP32 GCN layer and APPNP propagation against torch_geometric's."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.nn import GraphOperator, QGCNLayer, SitePlan, SMPParams, SMPPropagation
from tests.conftest import requires_pyg
from tests.nn.graphs import ring_graph

pytestmark = [requires_pyg, pytest.mark.usefixtures("one_thread")]


def edge_index(g):
    return torch.stack([g.adj.indices, g.adj.row_index()])  # [source, target]: row i aggregates from j


def test_fp32_gcn_layer_equals_gcnconv(seeded):
    from torch_geometric.nn import GCNConv

    g = ring_graph(30, 8, features=6)
    op = GraphOperator.from_adj(g.adj)
    ours = QGCNLayer(6, SitePlan())
    with torch.no_grad():
        ours.bias.normal_(generator=seeded)
    theirs = GCNConv(6, 6)
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.lin.weight)
        theirs.bias.copy_(ours.bias)
    torch.testing.assert_close(ours.conv(g.x, op), theirs(g.x, edge_index(g)))


def test_appnp_propagation_equals_pyg_appnp(seeded):
    from torch_geometric.nn import APPNP

    g = ring_graph(30, 8)
    op = GraphOperator.from_adj(g.adj)
    h = torch.randn(30, 4, generator=seeded)
    ours = SMPPropagation(10, SMPParams(mode="appnp"), SitePlan())
    torch.testing.assert_close(ours(h, op), APPNP(K=10, alpha=0.1)(h, edge_index(g)))
