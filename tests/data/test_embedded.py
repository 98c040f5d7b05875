import hashlib
import importlib.util

import numpy as np
import pytest
import torch

from qgnn_cli.data.embedded import EMBEDDED_CORA, load_compact, load_embedded_cora
from qgnn_cli.data.planetoid import load_planetoid, planetoid_dir
from qgnn_cli.errors import DataError
from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("make_embedded_cora", REPO / "scripts" / "make_embedded_cora.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_identical_to_the_raw_files(shared_datasets):
    embedded = load_embedded_cora()
    raw = load_planetoid(planetoid_dir(shared_datasets, "cora"), "cora")
    for field in ("x", "y", "train_mask", "val_mask", "test_mask"):
        a, b = getattr(embedded, field), getattr(raw, field)
        assert a.dtype == b.dtype and torch.equal(a, b), field
    assert torch.equal(embedded.adj.indptr, raw.adj.indptr)
    assert torch.equal(embedded.adj.indices, raw.adj.indices)
    assert embedded.adj.indptr.dtype == embedded.adj.indices.dtype == torch.int64
    assert embedded.num_classes == raw.num_classes == 7


def test_records_the_sha256_of_its_sources(shared_datasets):
    recorded = load_embedded_cora().meta["source_sha256"]
    assert recorded == _script().SOURCE_SHA256
    raw = planetoid_dir(shared_datasets, "cora")
    for name, digest in recorded.items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == digest


def test_is_compact():
    assert EMBEDDED_CORA.stat().st_size < 150_000
    with np.load(EMBEDDED_CORA) as f:
        assert f["adj_indices"].dtype == np.uint16 and f["x_indices"].dtype == np.uint16


def test_corrupt_file(tmp_path):
    broken = tmp_path / "cora.npz"
    broken.write_bytes(EMBEDDED_CORA.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cora\.npz: "):
        load_compact(broken, "cora")
