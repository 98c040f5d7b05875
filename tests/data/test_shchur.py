import io
import zipfile

import numpy as np
import pytest
import torch

from qgnn_cli.data.shchur import SHCHUR_FILES, load_shchur
from qgnn_cli.errors import DataError
from tests.conftest import requires_pyg


def _zip(shared_datasets, name):
    return shared_datasets / "gnn_benchmark" / SHCHUR_FILES[name][0]


@pytest.fixture(scope="module")
def computers(shared_datasets):
    return load_shchur(_zip(shared_datasets, "amazon-computers"), "amazon-computers")


def test_amazon_computers_counts(computers):
    g = computers
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (13752, 491722, 767, 10)
    assert int((g.adj.degrees() == 0).sum()) == 281
    assert int(torch.count_nonzero(g.x)) == 3_675_081
    assert g.train_mask is None  # no split is shipped


@pytest.mark.slow
def test_coauthor_physics_counts_and_binarised_features(shared_datasets):
    g = load_shchur(_zip(shared_datasets, "coauthor-physics"), "coauthor-physics")
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (34493, 495924, 8415, 5)
    # Keyword counts are set to 1, as PyG does: every nonzero is a one.
    assert int(torch.count_nonzero(g.x)) == int((g.x == 1).sum()) == 1_137_311


@requires_pyg
def test_amazon_identical_to_pyg(shared_datasets, tmp_path, computers):
    from torch_geometric.datasets import Amazon

    raw = tmp_path / "Computers" / "raw"
    raw.mkdir(parents=True)
    with zipfile.ZipFile(_zip(shared_datasets, "amazon-computers")) as z:
        z.extract(SHCHUR_FILES["amazon-computers"][1], raw)
    ref = Amazon(str(tmp_path), "Computers")[0]
    assert torch.equal(computers.x, ref.x) and torch.equal(computers.y, ref.y)
    n = computers.num_nodes
    ours = torch.sort(computers.adj.indices * n + computers.adj.row_index()).values
    theirs = torch.sort(ref.edge_index[0] * n + ref.edge_index[1]).values
    assert torch.equal(ours, theirs)


def _tiny_shchur_zip(path, member="amazon_electronics_computers.npz", drop=(), **overrides):
    adj = {"adj_data": np.ones(3, np.float32), "adj_indices": np.array([1, 2, 0], np.int32),
           "adj_indptr": np.array([0, 1, 2, 3], np.int32), "adj_shape": np.array([3, 3])}
    attr = {"attr_data": np.array([2.0, 5.0], np.float32), "attr_indices": np.array([0, 1], np.int32),
            "attr_indptr": np.array([0, 1, 1, 2], np.int32), "attr_shape": np.array([3, 2])}
    arrays = {**adj, **attr, "labels": np.array([0, 1, 1]),
              "class_names": np.array([{"not": "plain data"}, None], dtype=object), **overrides}
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in arrays.items() if k not in drop})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, buf.getvalue())
    return path


def test_tiny_file_with_object_class_names_loads_without_pickle(tmp_path):
    g = load_shchur(_tiny_shchur_zip(tmp_path / "a.zip"), "amazon-computers")
    assert g.num_edges == 6  # 0->1, 1->2, 2->0 made undirected
    assert torch.equal(g.x, torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))


def test_truncated_zip(shared_datasets, tmp_path):
    broken = tmp_path / "amazon-computers.zip"
    broken.write_bytes(_zip(shared_datasets, "amazon-computers").read_bytes()[:100_000])
    with pytest.raises(DataError, match=r"amazon-computers\.zip: truncated or corrupt zip"):
        load_shchur(broken, "amazon-computers")


def test_corrupt_member(tmp_path):
    path = _tiny_shchur_zip(tmp_path / "a.zip")
    data = bytearray(path.read_bytes())
    data[60:90] = bytes(30)  # inside the compressed member: CRC or inflate fails
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"a\.zip: truncated or corrupt zip"):
        load_shchur(path, "amazon-computers")


def test_wrong_member_name(tmp_path):
    path = _tiny_shchur_zip(tmp_path / "a.zip", member="other.npz")
    with pytest.raises(DataError, match=r"a\.zip: no member 'amazon_electronics_computers\.npz'"):
        load_shchur(path, "amazon-computers")


def test_missing_key(tmp_path):
    path = _tiny_shchur_zip(tmp_path / "a.zip", drop=("labels",))
    with pytest.raises(DataError, match=r"a\.zip:amazon_electronics_computers\.npz: missing key 'labels'"):
        load_shchur(path, "amazon-computers")


def test_edge_out_of_range(tmp_path):
    path = _tiny_shchur_zip(tmp_path / "a.zip", adj_indices=np.array([1, 2, 7], np.int32))
    with pytest.raises(DataError, match=r"npz: 'adj_\*': edge 2 has destination node 7, outside \[0, 3\)"):
        load_shchur(path, "amazon-computers")
