import shutil

import pytest

from qgnn_cli.data import list_datasets, load_graph
from qgnn_cli.data.registry import DATA_ROOT_ENV, DATASET_NAMES
from qgnn_cli.errors import DataError


@pytest.fixture(autouse=True)
def no_env_root(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)


def test_cora_without_a_root_is_the_embedded_copy():
    g = load_graph("cora")
    assert g.meta["format"] == "embedded" and g.num_nodes == 2708


def test_named_dataset_from_argument_and_from_env(shared_datasets, monkeypatch):
    assert load_graph("Cora", shared_datasets).meta["format"] == "planetoid"
    monkeypatch.setenv(DATA_ROOT_ENV, str(shared_datasets))
    g = load_graph("texas")
    assert (g.num_nodes, g.num_edges, g.meta["format"]) == (183, 2 * 279, "platonov")


def test_cora_falls_back_to_embedded_when_root_lacks_it(tmp_path):
    assert load_graph("cora", tmp_path).meta["format"] == "embedded"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown dataset 'coraa'; known: cora, citeseer, pubmed, .*tolokers") as info:
        load_graph("coraa")
    assert "\n" not in str(info.value)


def test_named_dataset_needs_a_root():
    with pytest.raises(DataError, match="'pubmed' needs a data root: pass --data-root or set \\$QGNN_DATA"):
        load_graph("pubmed")


def test_missing_data_root(tmp_path):
    with pytest.raises(DataError, match=r"data root .*nowhere not found"):
        load_graph("actor", tmp_path / "nowhere")


def test_dataset_missing_under_root(tmp_path):
    with pytest.raises(DataError, match=r"'tolokers' not found: expected .*heterophilous_graphs/tolokers\.npz"):
        load_graph("tolokers", tmp_path)


def test_missing_generic_file(tmp_path):
    with pytest.raises(DataError, match=r"absent\.npz: file not found"):
        load_graph(str(tmp_path / "absent.npz"))


def test_list_datasets_reports_locations(shared_datasets, tmp_path):
    (tmp_path / "heterophilous_graphs").mkdir()
    shutil.copy(shared_datasets / "heterophilous_graphs" / "cornell.npz", tmp_path / "heterophilous_graphs")
    infos = {d.name: d for d in list_datasets(tmp_path)}
    assert tuple(infos) == DATASET_NAMES and len(DATASET_NAMES) == 14
    assert infos["cora"].location == "embedded"
    assert infos["cornell"].found and infos["cornell"].location.endswith("cornell.npz")
    assert not infos["citeseer"].found and infos["citeseer"].format == "planetoid"
    assert all(d.found for d in list_datasets(shared_datasets))
