"""The Platonov et al. heterophilous-graph npz (chameleon, squirrel, actor, ..., tolokers).

``<root>/heterophilous_graphs/<name>.npz`` with ``node_features``, ``node_labels``, ``edges`` (E, 2)
listing each undirected edge once, and ten stored splits ``{train,val,test}_masks`` (10, N). Reverse
edges are added, as PyG and DGL users do; :func:`select_split` picks one of the ten splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qgnn_cli.data.edges import csr_from_edges
from qgnn_cli.data.graph import Graph, validated
from qgnn_cli.data.npz import open_npz, read_array
from qgnn_cli.errors import DataError

PLATONOV_NAMES = ("chameleon", "chameleon-filtered", "squirrel", "squirrel-filtered",
                  "actor", "cornell", "texas", "wisconsin", "tolokers")


def platonov_file(root: Path, name: str) -> Path:
    return root / "heterophilous_graphs" / f"{name.replace('-', '_')}.npz"


def load_platonov(path: Path, name: str) -> Graph:
    where = str(path)
    with open_npz(path, where) as f:
        x = read_array(f, "node_features", where)
        y = read_array(f, "node_labels", where)
        edges = read_array(f, "edges", where)
        masks = [read_array(f, k, where) for k in ("train_masks", "val_masks", "test_masks")]
    n = len(x)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise DataError(f"{where}: key 'edges' has shape {edges.shape}, expected (E, 2)")
    for key, m in zip(("train_masks", "val_masks", "test_masks"), masks):
        if m.ndim != 2 or m.shape[1] != n or m.dtype != np.bool_:
            raise DataError(f"{where}: key '{key}' is {m.dtype} {m.shape}, expected bool (S, {n})")
    graph = Graph(
        name=name,
        adj=csr_from_edges(edges[:, 0], edges[:, 1], n, symmetrize=True, where=f"{where}: 'edges'"),
        x=torch.from_numpy(np.asarray(x, dtype=np.float32)),
        y=torch.from_numpy(y.astype(np.int64)),
        num_classes=int(y.max()) + 1 if n else 0,
        train_mask=torch.from_numpy(masks[0]),
        val_mask=torch.from_numpy(masks[1]),
        test_mask=torch.from_numpy(masks[2]),
        meta={"format": "platonov", "source": where},
    )
    return validated(graph, where)
