import collections
import io
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from qgnn_cli.data.planetoid import load_planetoid, planetoid_dir
from qgnn_cli.data.safe_pickle import RestrictedUnpickler, load_restricted
from qgnn_cli.errors import DataError
from tests.conftest import requires_pyg

EXPECTED = {  # nodes, directed edges, features, classes, train, val, test (shared/datasets/README.md)
    "cora": (2708, 10556, 1433, 7, 140, 500, 1000),
    "citeseer": (3327, 9104, 3703, 6, 120, 500, 1000),
    "pubmed": (19717, 88648, 500, 3, 60, 500, 1000),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_match_the_readme(shared_datasets, name):
    g = load_planetoid(planetoid_dir(shared_datasets, name), name)
    masks = (g.train_mask, g.val_mask, g.test_mask)
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes, *(int(m.sum()) for m in masks)) == EXPECTED[name]
    assert not (g.train_mask & g.test_mask).any() and not (g.val_mask & g.test_mask).any()
    rows = g.adj.row_index()
    assert not bool((rows == g.adj.indices).any())  # self-loops removed


def test_citeseer_padding_rows(shared_datasets):
    g = load_planetoid(planetoid_dir(shared_datasets, "citeseer"), "citeseer")
    zero_rows = (g.x.abs().sum(1) == 0).nonzero().view(-1)
    # The 15 ids missing from test.index get zero features and label 0 (as in PyG), outside every split.
    assert len(zero_rows) == 15
    assert g.y[zero_rows].eq(0).all()
    assert not (g.train_mask | g.val_mask | g.test_mask)[zero_rows].any()
    assert int((g.adj.degrees() == 0).sum()) == 48


@requires_pyg
@pytest.mark.parametrize("name", ["Cora", "CiteSeer", "PubMed"])
def test_identical_to_pyg(shared_datasets, tmp_path, name):
    from torch_geometric.datasets import Planetoid

    shutil.copytree(shared_datasets / "planetoid" / name / "raw", tmp_path / name / "raw")
    ref = Planetoid(str(tmp_path), name)[0]
    ours = load_planetoid(tmp_path / name / "raw", name.lower())
    assert torch.equal(ours.x, ref.x)
    assert torch.equal(ours.y, ref.y)
    for m in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(ours, m), getattr(ref, m))
    # Our row is the target, column the source; compare as sorted [source, target] pairs.
    n = ours.num_nodes
    ours_keys = torch.sort(ours.adj.indices * n + ours.adj.row_index()).values
    ref_keys = torch.sort(ref.edge_index[0] * n + ref.edge_index[1]).values
    assert torch.equal(ours_keys, ref_keys)


def _copy_cora(shared_datasets, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(shared_datasets / "planetoid" / "Cora" / "raw", raw)
    return raw


class _RunsShell:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_with_forbidden_global_is_refused_without_running_it(shared_datasets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = _copy_cora(shared_datasets, tmp_path)
    (raw / "ind.cora.x").write_bytes(pickle.dumps(_RunsShell(), protocol=2))
    with pytest.raises(DataError, match=r"ind\.cora\.x: refused.*forbidden global '(posix|os)\.system'"):
        load_planetoid(raw, "cora")
    assert not (tmp_path / "pwned").exists()


def test_restricted_unpickler_allows_the_planetoid_globals_only():
    ok = pickle.dumps(collections.defaultdict(list, {0: [1, 2]}), protocol=2)
    assert RestrictedUnpickler(io.BytesIO(ok)).load() == {0: [1, 2]}
    # Python 3 pickles numpy bytes through _codecs.encode, which the Planetoid files never use.
    with pytest.raises(pickle.UnpicklingError, match="forbidden global '_codecs.encode'"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(np.arange(3), protocol=2))).load()


def test_truncated_pickle(shared_datasets, tmp_path):
    raw = _copy_cora(shared_datasets, tmp_path)
    data = (raw / "ind.cora.allx").read_bytes()
    (raw / "ind.cora.allx").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"ind\.cora\.allx: truncated or corrupt pickle") as info:
        load_planetoid(raw, "cora")
    assert "\n" not in str(info.value)


def test_missing_file(shared_datasets, tmp_path):
    raw = _copy_cora(shared_datasets, tmp_path)
    (raw / "ind.cora.graph").unlink()
    with pytest.raises(DataError, match=r"ind\.cora\.graph: file not found"):
        load_planetoid(raw, "cora")


def test_graph_with_node_out_of_range(shared_datasets, tmp_path):
    raw = _copy_cora(shared_datasets, tmp_path)
    graph = load_restricted(raw / "ind.cora.graph")
    graph[0] = graph[0] + [5000]
    (raw / "ind.cora.graph").write_bytes(pickle.dumps(dict(graph), protocol=2))
    with pytest.raises(DataError, match=r"ind\.cora\.graph: edge \d+ has destination node 5000, outside \[0, 2708\)"):
        load_planetoid(raw, "cora")


def test_wrong_object_in_pickle(shared_datasets, tmp_path):
    raw = _copy_cora(shared_datasets, tmp_path)
    (raw / "ind.cora.ty").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DataError, match=r"ind\.cora\.ty: expected a 2-D matrix, got list"):
        load_planetoid(raw, "cora")
