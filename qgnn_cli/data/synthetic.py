"""Synthetic power-law graphs for speed benchmarks at sizes no shipped dataset reaches.

Each node draws a lognormal number of neighbours (sigma = 1, heavy-tailed like citation and
co-purchase graphs) chosen uniformly at random; reverse edges are then added, so the graph is
undirected like the shipped ones and its degrees are heavy-tailed. ``avg_degree`` is the mean number
of directed edges per node (``num_edges / num_nodes``), before the few self-loops and duplicates
are dropped. Labels are uniform; features are Gaussian noise plus a per-class mean, so a model can
learn something. Masks come from :func:`random_split`. Everything is vectorised numpy with int64
edge arrays: 2M nodes / 20M edges build in seconds.
"""

from __future__ import annotations

import numpy as np
import torch

from qgnn_cli.data.edges import csr_from_edges
from qgnn_cli.data.graph import Graph, validated
from qgnn_cli.data.splits import random_split

_SIGMA = 1.0
_CLASS_SIGNAL = 0.5  # distance of the class means, relative to the unit noise
_ROWS_PER_BLOCK = 1 << 18  # features are filled in blocks to avoid an (N, F) temporary


def synthetic_power_law(
    num_nodes: int, avg_degree: float, num_features: int, num_classes: int, seed: int = 0
) -> Graph:
    if num_nodes < 2 or avg_degree <= 0 or num_features < 1 or num_classes < 1:
        raise ValueError("need num_nodes >= 2, avg_degree > 0, num_features >= 1, num_classes >= 1")
    rng = np.random.default_rng(seed)
    # Each node draws half the degree; the reverse edges supply the other half.
    mean_drawn = avg_degree / 2
    drawn = rng.lognormal(np.log(mean_drawn) - _SIGMA**2 / 2, _SIGMA, num_nodes)
    # Stochastic rounding keeps the mean; no node can have more neighbours than there are nodes.
    counts = np.minimum(np.floor(drawn + rng.random(num_nodes)).astype(np.int64), num_nodes - 1)
    src = np.repeat(np.arange(num_nodes, dtype=np.int64), counts)
    dst = rng.integers(0, num_nodes, src.size, dtype=np.int64)
    adj = csr_from_edges(src, dst, num_nodes, symmetrize=True, where="synthetic")
    del src, dst

    labels = rng.integers(0, num_classes, num_nodes)
    means = (_CLASS_SIGNAL * rng.standard_normal((num_classes, num_features))).astype(np.float32)
    x = np.empty((num_nodes, num_features), dtype=np.float32)
    for start in range(0, num_nodes, _ROWS_PER_BLOCK):
        block = slice(start, start + _ROWS_PER_BLOCK)
        x[block] = rng.standard_normal(x[block].shape, dtype=np.float32)
        x[block] += means[labels[block]]

    graph = Graph(
        name=f"synthetic-{num_nodes}-{avg_degree:g}",
        adj=adj,
        x=torch.from_numpy(x),
        y=torch.from_numpy(labels),
        num_classes=num_classes,
        meta={"format": "synthetic", "source": f"synthetic_power_law(seed={seed})"},
    )
    remaining = num_nodes - min(num_nodes, 20 * num_classes)
    num_val = min(500, remaining // 2)
    graph = random_split(graph, seed, num_val=num_val, num_test=min(1000, remaining - num_val))
    return validated(graph, graph.name)
