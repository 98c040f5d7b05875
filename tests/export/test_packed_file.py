"""A packed model's file: round trip, and every corrupted, truncated, tampered or future-version file refused."""

from __future__ import annotations

import hashlib
import struct

import pytest
import torch

from qgnn_cli.errors import ModelFileError
from qgnn_cli.export import FORMAT_VERSION, PackedModel, export_model, pack_model, read_artifact, write_artifact


@pytest.fixture
def exported(quantized, tmp_path):
    model, config = quantized("gcn", 2)
    path = tmp_path / "m.qgnn"
    export_model(model, config, path)
    return path, model, config


def test_round_trip_keeps_every_tensor_and_grid(exported):
    path, model, config = exported
    tensors, meta = pack_model(model, config.to_dict())
    loaded, loaded_meta = read_artifact(path)
    assert loaded_meta == meta
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], tensors[k]) and loaded[k].dtype == tensors[k].dtype for k in tensors)
    assert loaded["lin_in.weight"].dtype == torch.int32  # packed codes, 16 per word at 2 bits
    assert [s[0] for s in meta["sites"]] == [n for n, _ in model.sites()]
    assert loaded["site_scales"].tolist() == [q.grid()[1] for _, q in model.sites()]
    assert meta["config"]["model"] == "gcn" and meta["bits"]["weights"] == [2]


def test_int2_artefact_is_much_smaller_than_fp32_weights(quantized, tmp_path):
    model, config = quantized("smp", 2)
    info = export_model(model, config, tmp_path / "m.qgnn")
    assert info["fp32_weight_bytes"] / info["file_bytes"] > 8


def _rewrite(path, mutate):
    """Apply ``mutate(blob)`` to the body and recompute the checksum: a deliberate, well-formed forgery."""
    blob = bytearray(path.read_bytes()[:-32])
    mutate(blob)
    path.write_bytes(bytes(blob) + hashlib.sha256(bytes(blob)).digest())


def test_flipped_payload_byte_refused(exported):
    path = exported[0]
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x10
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum"):
        PackedModel.load(path)


@pytest.mark.parametrize("keep", [0, 16, 200, -33, -1])
def test_truncated_file_refused(exported, keep):
    path = exported[0]
    blob = path.read_bytes()
    path.write_bytes(blob[:keep] if keep >= 0 else blob[:len(blob) + keep])
    with pytest.raises(ModelFileError, match="truncated|checksum|header"):
        PackedModel.load(path)


def test_future_version_refused_even_with_a_valid_checksum(exported):
    path = exported[0]
    _rewrite(path, lambda b: struct.pack_into("<I", b, 8, FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="format version"):
        PackedModel.load(path)


def test_pickle_refused(tmp_path):
    path = tmp_path / "evil.qgnn"
    torch.save({"x": 1}, path)
    with pytest.raises(ModelFileError, match="magic"):
        PackedModel.load(path)


def _forge(path, tensors, meta):
    write_artifact(path, tensors, meta)
    return path


@pytest.mark.parametrize("tamper,match", [
    (lambda t, m: m.update(kind="something-else"), "not a packed model"),
    (lambda t, m: t.pop("layers.0.bias"), "layers.0.bias"),
    (lambda t, m: t.__setitem__("lin_in.weight", t["lin_in.weight"][:, :-1].contiguous()), "lin_in.weight"),
    (lambda t, m: t.__setitem__("lin_out.weight", t["lin_out.weight"].float()), "lin_out.weight"),
    (lambda t, m: t["site_scales"].__setitem__(3, -1.0), "invalid grid"),
    (lambda t, m: m["sites"][0].__setitem__(1, 3), "invalid grid"),
    (lambda t, m: m["sites"][0].__setitem__(2, 99), "invalid grid"),
    (lambda t, m: m["sites"][0].pop(), "invalid grid"),
    (lambda t, m: t.pop("site_scales"), "site_scales"),
    (lambda t, m: (m["sites"].pop(), t.__setitem__("site_scales", t["site_scales"][:-1].clone())), "missing"),
    (lambda t, m: m["config"].pop("layers"), "inconsistent"),
    (lambda t, m: m.update(num_features=7), "disagree"),
])
def test_tampered_content_refused(exported, tmp_path, tamper, match):
    path, model, config = exported
    tensors, meta = read_artifact(path)
    tamper(tensors, meta)
    with pytest.raises(ModelFileError, match=match):
        PackedModel.load(_forge(tmp_path / "forged.qgnn", tensors, meta))
