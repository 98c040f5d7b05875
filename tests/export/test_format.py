"""The .qgnn container: round trip, and every corrupted-file case refused with a clear error."""

from __future__ import annotations

import struct

import pytest
import torch

from qgnn_cli.errors import ModelFileError
from qgnn_cli.export.format import FORMAT_VERSION, MAGIC, read_artifact, write_artifact


@pytest.fixture
def artifact(tmp_path, seeded):
    tensors = {
        "w": torch.randint(-(2**31), 2**31 - 1, (7, 3), dtype=torch.int32, generator=seeded),
        "scale": torch.rand(5, generator=seeded),
        "indptr": torch.arange(4, dtype=torch.int64),
        "codes": torch.randint(0, 255, (9,), dtype=torch.uint8, generator=seeded),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    path = tmp_path / "m.qgnn"
    write_artifact(path, tensors, {"model": "smp", "bits": 2})
    return path, tensors


def test_round_trip(artifact):
    path, tensors = artifact
    loaded, meta = read_artifact(path)
    assert meta == {"model": "smp", "bits": 2}
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)


def test_refuses_a_flipped_byte(artifact):
    path, _ = artifact
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_artifact(path)


@pytest.mark.parametrize("keep", [0, 10, 30, -1])
def test_refuses_a_truncated_file(artifact, keep):
    path, _ = artifact
    blob = path.read_bytes()
    path.write_bytes(blob[: keep if keep >= 0 else len(blob) - 1])
    with pytest.raises(ModelFileError, match="truncated|checksum"):
        read_artifact(path)


def test_refuses_another_file_type(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="bad magic"):
        read_artifact(path)


def test_refuses_a_future_version(artifact):
    path, _ = artifact
    blob = bytearray(path.read_bytes())
    struct.pack_into("<I", blob, len(MAGIC), FORMAT_VERSION + 1)
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="upgrade qgnn"):
        read_artifact(path)


def test_refuses_a_tampered_header_even_with_a_fixed_checksum(artifact):
    """A header edited to point a tensor outside the payload is caught by the bounds check."""
    import hashlib

    path, _ = artifact
    blob = path.read_bytes()[:-32]
    body = blob.replace(b'"nbytes": 32', b'"nbytes": 99', 1)
    assert body != blob
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(ModelFileError, match="does not match|outside"):
        read_artifact(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        read_artifact(tmp_path / "absent.qgnn")
    with pytest.raises(ModelFileError, match="directory"):
        read_artifact(tmp_path)
