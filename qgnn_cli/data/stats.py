"""Summary numbers of a graph, as reported by ``qgnn data show``."""

from __future__ import annotations

import torch

from qgnn_cli.data.graph import Graph
from qgnn_cli.data.splits import num_stored_splits


def _split_sizes(graph: Graph) -> dict[str, int] | None:
    if graph.train_mask is None:
        return None
    # For (S, N) masks the sizes of the first split are shown (the others are alike).
    return {
        name: int((m if m.dim() == 1 else m[0]).sum())
        for name, m in (("train", graph.train_mask), ("val", graph.val_mask), ("test", graph.test_mask))
        if m is not None
    }


def graph_stats(graph: Graph) -> dict:
    """Nodes, directed edges, features, classes, isolated nodes, homophily, split sizes, density."""
    adj = graph.adj
    in_deg = adj.degrees()
    out_deg = torch.bincount(adj.indices, minlength=graph.num_nodes)
    rows = adj.row_index()
    transposed = torch.sort(adj.indices * graph.num_nodes + rows).values
    symmetric = bool(torch.equal(transposed, rows * graph.num_nodes + adj.indices))
    homophily = None
    if graph.y is not None and adj.nnz:
        homophily = round(float((graph.y[rows] == graph.y[adj.indices]).float().mean()), 4)
    cells = graph.num_nodes * graph.num_features
    return {
        "name": graph.name,
        "format": graph.meta.get("format"),
        "source": graph.meta.get("source"),
        "nodes": graph.num_nodes,
        "directed_edges": graph.num_edges,
        "symmetric": symmetric,
        "features": graph.num_features,
        "classes": graph.num_classes,
        "isolated_nodes": int(((in_deg == 0) & (out_deg == 0)).sum()),
        "max_degree": int(in_deg.max()) if graph.num_nodes else 0,
        "mean_degree": round(graph.num_edges / graph.num_nodes, 3) if graph.num_nodes else 0.0,
        "edge_homophily": homophily,
        "stored_splits": num_stored_splits(graph),
        "split_sizes": _split_sizes(graph),
        "feature_density": round(int(torch.count_nonzero(graph.x)) / cells, 6) if cells else 0.0,
    }
