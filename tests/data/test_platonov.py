import shutil

import numpy as np
import pytest
import torch

from qgnn_cli.data.platonov import PLATONOV_NAMES, load_platonov, platonov_file
from qgnn_cli.errors import DataError
from tests.conftest import requires_pyg

# nodes, undirected edges, features, classes, train/val/test of split 0 (datasets README; in the
# filtered files the split sizes vary a little from split to split).
EXPECTED = {
    "actor": (7600, 26659, 932, 5, (3648, 2432, 1520)),
    "chameleon": (2277, 31371, 2325, 5, (1092, 729, 456)),
    "chameleon-filtered": (890, 8854, 2325, 5, (409, 287, 194)),
    "squirrel": (5201, 198353, 2089, 5, (2496, 1664, 1041)),
    "squirrel-filtered": (2223, 46998, 2089, 5, (1053, 718, 452)),
    "cornell": (183, 277, 1703, 5, (87, 59, 37)),
    "texas": (183, 279, 1703, 5, (87, 59, 37)),
    "wisconsin": (251, 450, 1703, 5, (120, 80, 51)),
    "tolokers": (11758, 519000, 10, 2, (5879, 2939, 2940)),
}


@pytest.mark.parametrize("name", PLATONOV_NAMES)
def test_counts_match_the_readme(shared_datasets, name):
    g = load_platonov(platonov_file(shared_datasets, name), name)
    nodes, edges, features, classes, split = EXPECTED[name]
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (nodes, 2 * edges, features, classes)
    assert g.train_mask.shape == (10, nodes)
    assert tuple(int(m[0].sum()) for m in (g.train_mask, g.val_mask, g.test_mask)) == split
    assert not (g.train_mask & g.test_mask).any() and not (g.val_mask & g.test_mask).any()


def test_reverse_edges_are_added(shared_datasets):
    path = platonov_file(shared_datasets, "texas")
    g = load_platonov(path, "texas")
    with np.load(path) as f:
        src, dst = f["edges"][:, 0], f["edges"][:, 1]
    n = g.num_nodes
    keys = set((g.adj.indices * n + g.adj.row_index()).tolist())  # source * n + target
    assert keys == set((src * n + dst).tolist()) | set((dst * n + src).tolist())


@requires_pyg
def test_tolokers_identical_to_pyg(shared_datasets, tmp_path):
    from torch_geometric.datasets import HeterophilousGraphDataset

    (tmp_path / "tolokers" / "raw").mkdir(parents=True)
    shutil.copy(platonov_file(shared_datasets, "tolokers"), tmp_path / "tolokers" / "raw")
    ref = HeterophilousGraphDataset(str(tmp_path), "Tolokers")[0]
    ours = load_platonov(platonov_file(shared_datasets, "tolokers"), "tolokers")
    assert torch.equal(ours.x, ref.x) and torch.equal(ours.y, ref.y)
    assert torch.equal(ours.train_mask, ref.train_mask.t()) and torch.equal(ours.test_mask, ref.test_mask.t())
    n = ours.num_nodes
    assert torch.equal(
        torch.sort(ours.adj.indices * n + ours.adj.row_index()).values,
        torch.sort(ref.edge_index[0] * n + ref.edge_index[1]).values,
    )


def _tiny(path, drop=(), **overrides):
    arrays = {
        "node_features": np.eye(4, 3, dtype=np.float32),
        "node_labels": np.array([0, 1, 0, 1]),
        "edges": np.array([[0, 1], [1, 2], [2, 3]]),
        "train_masks": np.array([[1, 0, 0, 0], [0, 1, 0, 0]], bool),
        "val_masks": np.array([[0, 1, 0, 0], [1, 0, 0, 0]], bool),
        "test_masks": np.array([[0, 0, 1, 1], [0, 0, 1, 1]], bool),
        **overrides,
    }
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


def test_tiny_file(tmp_path):
    g = load_platonov(_tiny(tmp_path / "t.npz"), "t")
    assert g.num_edges == 6 and g.train_mask.shape == (2, 4)


@pytest.mark.parametrize(
    "overrides, drop, message",
    [
        ({"edges": np.array([[0, 1], [1, 9]])}, (), r"t\.npz: 'edges': edge 1 has destination node 9, outside \[0, 4\)"),
        ({"edges": np.array([[0, 1], [-1, 2]])}, (), r"t\.npz: 'edges': edge 1 has source node -1"),
        ({"edges": np.array([0, 1, 2])}, (), r"t\.npz: key 'edges' has shape \(3,\), expected \(E, 2\)"),
        ({}, ("node_labels",), r"t\.npz: missing key 'node_labels'"),
        ({"val_masks": np.ones((2, 5), bool)}, (), r"t\.npz: key 'val_masks' is bool \(2, 5\), expected bool \(S, 4\)"),
        ({"node_labels": np.array([0, 1, -1, 1])}, (), r"t\.npz: t: labels out of range \[-1, 1\]"),
        (
            {"node_features": np.array([[0.0], [1.0], [np.nan], [0.0]], np.float32)},
            (),
            r"t\.npz: t: features contain NaN or Inf \(first at node 2\)",
        ),
    ],
)
def test_bad_files(tmp_path, overrides, drop, message):
    path = _tiny(tmp_path / "t.npz", drop=drop, **overrides)
    with pytest.raises(DataError, match=message) as info:
        load_platonov(path, "t")
    assert "\n" not in str(info.value)


def test_truncated_file(shared_datasets, tmp_path):
    broken = tmp_path / "cornell.npz"
    broken.write_bytes(platonov_file(shared_datasets, "cornell").read_bytes()[:20_000])
    with pytest.raises(DataError, match=r"cornell\.npz: (not a readable npz archive|key '\w+' is truncated)"):
        load_platonov(broken, "cornell")


def test_features_are_float32_tensors(shared_datasets):
    g = load_platonov(platonov_file(shared_datasets, "wisconsin"), "wisconsin")
    assert g.x.dtype == torch.float32 and g.y.dtype == torch.int64
