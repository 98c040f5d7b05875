import torch

from qgnn_cli.data import CSR, Graph, graph_stats, load_graph


def test_cora_stats():
    s = graph_stats(load_graph("cora"))
    assert (s["nodes"], s["directed_edges"], s["features"], s["classes"]) == (2708, 10556, 1433, 7)
    assert s["symmetric"] and s["isolated_nodes"] == 0 and s["max_degree"] == 168
    assert s["edge_homophily"] == 0.81
    assert s["feature_density"] == round(49216 / (2708 * 1433), 6)
    assert s["split_sizes"] == {"train": 140, "val": 500, "test": 1000} and s["stored_splits"] == 1


def test_directed_graph_with_isolated_node():
    # Edges 0 -> 1 and 1 -> 2 (stored in rows 1 and 2); node 3 touches nothing.
    adj = CSR(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 1]), None, 4)
    g = Graph("toy", adj, torch.tensor([[1.0], [0.0], [0.0], [2.0]]), torch.tensor([0, 0, 1, 1]), 2)
    s = graph_stats(g)
    assert not s["symmetric"]
    assert s["isolated_nodes"] == 1
    assert s["edge_homophily"] == 0.5
    assert s["feature_density"] == 0.5
    assert s["split_sizes"] is None and s["stored_splits"] == 0
