"""The Planetoid raw format (Cora, CiteSeer, PubMed): ``<root>/planetoid/<Name>/raw/ind.<name>.*``.

Reproduces ``torch_geometric.io.read_planetoid_data`` exactly: node order
``vstack(allx, tx)`` with the test rows moved to the ids in ``test.index``, CiteSeer's missing test
ids padded with zero rows (label 0, as PyG does), self-loops and duplicate edges removed, and the
public split (train = labelled rows of ``x``, the next 500 validation, ``test.index`` test). The
edge lists are already symmetric, so, like PyG, no reverse edges are added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qgnn_cli.data.edges import csr_from_edges
from qgnn_cli.data.graph import Graph, validated
from qgnn_cli.data.safe_pickle import load_restricted
from qgnn_cli.data.splits import index_mask
from qgnn_cli.errors import DataError

# Folder name under planetoid/ for each dataset name.
PLANETOID_FOLDERS = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
NUM_VAL = 500


def planetoid_dir(root: Path, name: str) -> Path:
    return root / "planetoid" / PLANETOID_FOLDERS[name] / "raw"


def _matrix(obj, path: Path) -> np.ndarray:
    """A pickled feature or one-hot label matrix as a dense 2-D array."""
    dense = obj.toarray() if hasattr(obj, "toarray") else obj
    if not isinstance(dense, np.ndarray) or dense.ndim != 2:
        raise DataError(f"{path}: expected a 2-D matrix, got {type(obj).__name__}")
    return dense


def _read_test_index(path: Path) -> np.ndarray:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    try:
        return np.array([int(line) for line in text.split()], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{path}: not a list of node ids ({exc})") from None


def _edges_from_dict(graph: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(graph, dict):
        raise DataError(f"{path}: expected a dict of adjacency lists, got {type(graph).__name__}")
    try:
        heads = np.fromiter(graph.keys(), dtype=np.int64, count=len(graph))
        lengths = np.fromiter((len(v) for v in graph.values()), dtype=np.int64, count=len(graph))
        tails = np.fromiter(
            (j for v in graph.values() for j in v), dtype=np.int64, count=int(lengths.sum())
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: adjacency lists must hold integer node ids ({exc})") from None
    # PyG reads key -> value as source -> target.
    return np.repeat(heads, lengths), tails


def load_planetoid(folder: Path, name: str) -> Graph:
    """Load ``ind.<name>.*`` from ``folder`` (the ``raw/`` directory)."""
    prefix = name.lower()
    path = {s: folder / f"ind.{prefix}.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph")}
    x, tx, allx, y, ty, ally = (
        _matrix(load_restricted(path[s]), path[s]) for s in ("x", "tx", "allx", "y", "ty", "ally")
    )
    adjacency = load_restricted(path["graph"])
    test_index = _read_test_index(folder / f"ind.{prefix}.test.index")
    if len(test_index) != len(tx) and prefix != "citeseer":
        raise DataError(f"{folder}: {len(test_index)} test ids but {len(tx)} test rows")
    if test_index.size == 0 or test_index.min() < len(allx):
        raise DataError(f"{folder}: test.index is empty or holds ids below the {len(allx)} training rows")
    sorted_test = np.sort(test_index)

    if prefix == "citeseer":
        # Some test ids are isolated nodes missing from tx/ty: pad them with zero rows.
        span = int(test_index.max() - test_index.min()) + 1
        tx_ext = np.zeros((span, tx.shape[1]), dtype=tx.dtype)
        tx_ext[sorted_test - test_index.min()] = tx
        ty_ext = np.zeros((span, ty.shape[1]), dtype=ty.dtype)
        ty_ext[sorted_test - test_index.min()] = ty
        tx, ty = tx_ext, ty_ext

    features = np.concatenate([allx, tx]).astype(np.float32)
    if test_index.max() >= len(features):
        raise DataError(f"{folder}: test id {int(test_index.max())} beyond the {len(features)} nodes")
    features[test_index] = features[sorted_test]
    labels = np.concatenate([ally, ty]).argmax(axis=1)
    labels[test_index] = labels[sorted_test]
    n = len(labels)
    if features.shape[0] != n:
        raise DataError(f"{folder}: {features.shape[0]} feature rows but {n} label rows")

    src, dst = _edges_from_dict(adjacency, path["graph"])
    adj = csr_from_edges(src, dst, n, symmetrize=False, where=str(path["graph"]))

    graph = Graph(
        name=prefix,
        adj=adj,
        x=torch.from_numpy(features),
        y=torch.from_numpy(labels.astype(np.int64)),
        num_classes=int(ally.shape[1]),
        train_mask=index_mask(np.arange(len(y)), n),
        val_mask=index_mask(np.arange(len(y), len(y) + NUM_VAL), n),
        test_mask=index_mask(test_index, n),
        meta={"format": "planetoid", "source": str(folder)},
    )
    return validated(graph, str(folder))
