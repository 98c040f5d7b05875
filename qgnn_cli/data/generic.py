"""The generic user format: one ``.npz`` (loaded with ``allow_pickle=False``). See docs/DATA.md.

Keys: ``edges`` int (E, 2) or (2, E) as [source, destination]; ``features`` float (N, F), or the CSR
parts ``features_data``/``features_indices``/``features_indptr``/``features_shape``; ``labels`` int (N,);
optional ``num_classes`` (default max label + 1); optional ``train_mask``/``val_mask``/``test_mask``
bool (N,) or (S, N); optional ``undirected`` (default true: reverse edges are added).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qgnn_cli.data.edges import csr_from_edges
from qgnn_cli.data.graph import Graph, validated
from qgnn_cli.data.npz import open_npz, read_array, read_sparse
from qgnn_cli.errors import DataError

MASK_KEYS = ("train_mask", "val_mask", "test_mask")


def _features(f, where: str) -> np.ndarray:
    if "features" in f.files:
        x = read_array(f, "features", where)
        if x.ndim != 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"{where}: key 'features' is {x.dtype} {x.shape}, expected numbers (N, F)")
        return x.astype(np.float32)
    if "features_data" not in f.files:
        raise DataError(f"{where}: missing key 'features' (or 'features_data' etc. for sparse features)")
    rows, cols, values, shape = read_sparse(f, "features", where)
    x = np.zeros(shape, dtype=np.float32)
    np.add.at(x, (rows, cols), values)  # duplicate entries add up, as in scipy
    return x


def _edges(f, where: str) -> tuple[np.ndarray, np.ndarray]:
    edges = read_array(f, "edges", where)
    if edges.ndim != 2 or 2 not in edges.shape or not np.issubdtype(edges.dtype, np.integer):
        raise DataError(f"{where}: key 'edges' is {edges.dtype} {edges.shape}, expected int (E, 2) or (2, E)")
    if edges.shape[1] == 2:  # (E, 2); a (2, 2) array is read this way too
        return edges[:, 0], edges[:, 1]
    return edges[0], edges[1]


def _labels(f, n: int, where: str) -> tuple[np.ndarray, int]:
    labels = read_array(f, "labels", where)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: key 'labels' is {labels.dtype} {labels.shape}, expected int ({n},)")
    if n and labels.min() < 0:
        bad = int(np.argmax(labels < 0))
        raise DataError(f"{where}: label {int(labels[bad])} of node {bad} is negative")
    num_classes = _scalar(f, "num_classes", where, int)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if n else 0
    if n and labels.max() >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DataError(f"{where}: label {int(labels[bad])} of node {bad} is >= num_classes={num_classes}")
    return labels.astype(np.int64), num_classes


def _scalar(f, key: str, where: str, kind: type) -> int | bool | None:
    value = read_array(f, key, where, required=False)
    if value is None:
        return None
    if value.size != 1 or not (np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_):
        raise DataError(f"{where}: key '{key}' is {value.dtype} {value.shape}, expected one integer or bool")
    return kind(value.reshape(()))


def _mask(f, key: str, n: int, where: str) -> torch.Tensor | None:
    m = read_array(f, key, where, required=False)
    if m is None:
        return None
    if m.dtype != np.bool_ or m.ndim not in (1, 2) or m.shape[-1] != n:
        raise DataError(f"{where}: key '{key}' is {m.dtype} {m.shape}, expected bool ({n},) or (S, {n})")
    return torch.from_numpy(m)


def load_generic(path: Path) -> Graph:
    where = str(path)
    with open_npz(path, where) as f:
        x = _features(f, where)
        n = x.shape[0]
        src, dst = _edges(f, where)
        labels, num_classes = _labels(f, n, where)
        if not np.isfinite(x).all():
            bad = int(np.argmax(~np.isfinite(x).all(axis=1)))
            raise DataError(f"{where}: key 'features' holds NaN or Inf (first at node {bad})")
        masks = [_mask(f, k, n, where) for k in MASK_KEYS]
        undirected = _scalar(f, "undirected", where, bool)
    graph = Graph(
        name=path.stem,
        adj=csr_from_edges(src, dst, n, symmetrize=undirected is not False, where=f"{where}: 'edges'"),
        x=torch.from_numpy(x),
        y=torch.from_numpy(labels),
        num_classes=num_classes,
        train_mask=masks[0],
        val_mask=masks[1],
        test_mask=masks[2],
        meta={"format": "generic", "source": where},
    )
    return validated(graph, where)
