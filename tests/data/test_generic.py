import numpy as np
import pytest
import scipy.sparse as sp
import torch

from qgnn_cli.data import load_graph
from qgnn_cli.errors import DataError

EDGES = np.array([[0, 1], [1, 2], [2, 0], [2, 3], [2, 3], [3, 3]])  # a duplicate and a self-loop
FEATURES = np.arange(12, dtype=np.float64).reshape(4, 3)
LABELS = np.array([0, 1, 1, 2])


def write(path, drop=(), **arrays):
    base = {"edges": EDGES, "features": FEATURES, "labels": LABELS}
    np.savez(path, **{k: v for k, v in {**base, **arrays}.items() if k not in drop})
    return str(path)


def pairs(g):
    """(source, target) pairs of the adjacency."""
    return set(zip(g.adj.indices.tolist(), g.adj.row_index().tolist()))


def test_minimal_file_is_undirected_by_default(tmp_path):
    g = load_graph(write(tmp_path / "g.npz"))
    assert (g.num_nodes, g.num_features, g.num_classes) == (4, 3, 3)
    assert pairs(g) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2), (2, 3), (3, 2)}
    assert g.x.dtype == torch.float32 and torch.equal(g.x, torch.from_numpy(FEATURES).float())
    assert g.train_mask is None and g.meta["format"] == "generic"


def test_directed_and_transposed_edges(tmp_path):
    g = load_graph(write(tmp_path / "g.npz", edges=EDGES.T, undirected=False))
    assert pairs(g) == {(0, 1), (1, 2), (2, 0), (2, 3)}


def test_sparse_features_masks_and_num_classes(tmp_path):
    csr = sp.csr_matrix(FEATURES)
    masks = np.zeros((2, 4), bool)
    masks[:, 0] = True
    path = write(
        tmp_path / "g.npz", drop=("features",), features_data=csr.data, features_indices=csr.indices,
        features_indptr=csr.indptr, features_shape=np.array(csr.shape), num_classes=5,
        train_mask=masks, val_mask=masks, test_mask=masks,
    )
    g = load_graph(path)
    assert torch.equal(g.x, torch.from_numpy(FEATURES).float())
    assert g.num_classes == 5 and g.train_mask.shape == (2, 4)


@pytest.mark.parametrize(
    "arrays, drop, message",
    [
        ({"edges": np.array([[0, 1], [1, 4]])}, (), r"'edges': edge 1 has destination node 4, outside \[0, 4\)"),
        ({"edges": np.array([[0, 1], [-2, 3]])}, (), r"'edges': edge 1 has source node -2"),
        ({"edges": np.zeros((3, 3), int)}, (), r"key 'edges' is int64 \(3, 3\), expected int \(E, 2\) or \(2, E\)"),
        ({"edges": np.zeros((3, 2))}, (), r"key 'edges' is float64 \(3, 2\)"),
        ({}, ("edges",), r"missing key 'edges' \(found: features, labels\)"),
        ({}, ("features",), r"missing key 'features'"),
        ({}, ("labels",), r"missing key 'labels'"),
        ({"features": np.array([[0.0], [np.inf], [1.0], [np.nan]])}, (), r"key 'features' holds NaN or Inf \(first at node 1\)"),
        ({"labels": np.array([0, 1, 5, 1]), "num_classes": 3}, (), r"label 5 of node 2 is >= num_classes=3"),
        ({"labels": np.array([0, -1, 0, 1])}, (), r"label -1 of node 1 is negative"),
        ({"labels": np.array([0, 1, 0])}, (), r"key 'labels' is int64 \(3,\), expected int \(4,\)"),
        ({"train_mask": np.ones(5, bool)}, (), r"key 'train_mask' is bool \(5,\), expected bool \(4,\) or \(S, 4\)"),
        ({"val_mask": np.ones(4, int)}, (), r"key 'val_mask' is int64 \(4,\)"),
        ({"features": np.ones(4)}, (), r"key 'features' is float64 \(4,\), expected numbers \(N, F\)"),
        ({"features": np.array([["a"], ["b"], ["c"], ["d"]])}, (), r"key 'features' is <U1 \(4, 1\)"),
        ({"undirected": np.array([True, False])}, (), r"key 'undirected' is bool \(2,\), expected one integer or bool"),
        ({"num_classes": np.array(2.5)}, (), r"key 'num_classes' is float64 \(\), expected one integer"),
    ],
)
def test_bad_files(tmp_path, arrays, drop, message):
    path = write(tmp_path / "bad.npz", drop=drop, **arrays)
    with pytest.raises(DataError, match=r"bad\.npz: " + message) as info:
        load_graph(path)
    assert "\n" not in str(info.value)


def test_pickled_object_array_is_refused(tmp_path):
    path = write(tmp_path / "bad.npz", labels=np.array([0, 1, 1, None], dtype=object))
    with pytest.raises(DataError, match=r"bad\.npz: key 'labels' is truncated or corrupt \(Object arrays cannot be loaded"):
        load_graph(path)


def test_truncated_and_non_npz_files(tmp_path):
    good = write(tmp_path / "good.npz")
    (tmp_path / "cut.npz").write_bytes(open(good, "rb").read()[:300])
    with pytest.raises(DataError, match=r"cut\.npz: (not a readable npz archive|key '\w+' is truncated)"):
        load_graph(str(tmp_path / "cut.npz"))
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"one\.npy: a single \.npy array"):
        load_graph(str(tmp_path / "one.npy"))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"text\.npz: not a readable npz archive"):
        load_graph(str(tmp_path / "text.npz"))


def test_sparse_feature_column_out_of_range(tmp_path):
    path = write(
        tmp_path / "bad.npz", drop=("features",), features_data=np.ones(2), features_indices=np.array([0, 3]),
        features_indptr=np.array([0, 1, 2, 2, 2]), features_shape=np.array([4, 3]),
    )
    with pytest.raises(DataError, match=r"bad\.npz: 'features_indices'\[1\] = 3 is outside \[0, 3\)"):
        load_graph(path)
