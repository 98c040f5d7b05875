"""The ``.qgnn`` artefact: a header, packed tensors and a checksum; never unpickled.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic b"QGNNPACK"
    offset 8   uint32    format version (FORMAT_VERSION)
    offset 12  uint64    header length H
    offset 20  H bytes   header: UTF-8 JSON {"qgnn_version", "meta", "tensors": {name: {dtype, shape, offset, nbytes}}}
    ...        payload   tensor bytes, each starting at a multiple of 64 from the payload start
    end - 32   32 bytes  SHA-256 of every byte before it

Reading checks, in order: size, magic, version, checksum, header JSON, and that every tensor's dtype
is allowed and its bytes lie inside the payload with the size its shape implies. Any failure raises
:class:`~qgnn_cli.errors.ModelFileError` saying which check failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from qgnn_cli import __version__
from qgnn_cli.errors import ModelFileError

MAGIC = b"QGNNPACK"
FORMAT_VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sIQ")
_DIGEST = 32
_MAX_HEADER = 64 * 1024 * 1024
_DTYPES = {
    "float32": torch.float32,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def write_artifact(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> int:
    """Write tensors and a JSON-serialisable ``meta`` dict atomically; returns the file size."""
    table, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _NAMES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}; allowed: {sorted(_DTYPES)}")
        data = tensor.detach().cpu().contiguous().numpy().tobytes()
        pad = (-offset) % ALIGN
        chunks.append(b"\0" * pad)
        offset += pad
        table[name] = {"dtype": _NAMES[tensor.dtype], "shape": list(tensor.shape), "offset": offset, "nbytes": len(data)}
        chunks.append(data)
        offset += len(data)
    header = json.dumps({"qgnn_version": __version__, "meta": meta, "tensors": table}, sort_keys=True).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(chunks)
    blob = body + hashlib.sha256(body).digest()
    _atomic_write(Path(path), blob)
    return len(blob)


def read_artifact(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify an artefact; returns ``(tensors, meta)``."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, expected a .qgnn file") from None
    if len(blob) < _PREFIX.size + _DIGEST:
        raise ModelFileError(f"{path}: truncated ({len(blob)} bytes), not a complete .qgnn file")
    magic, version, header_len = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise ModelFileError(f"{path}: not a .qgnn artefact (bad magic bytes)")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in format version {version}, this qgnn {__version__} reads up to "
            f"{FORMAT_VERSION}; upgrade qgnn"
        )
    if version < 1:
        raise ModelFileError(f"{path}: invalid format version {version}")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelFileError(f"{path}: checksum mismatch: the file is corrupted, truncated or was modified")
    start = _PREFIX.size
    if header_len > min(_MAX_HEADER, len(body) - start):
        raise ModelFileError(f"{path}: header length {header_len} exceeds the file")
    try:
        header = json.loads(body[start : start + header_len].decode("utf-8"))
        table, meta = header["tensors"], header["meta"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: malformed header ({exc})") from None
    payload = memoryview(body)[start + header_len :]
    return {name: _tensor(path, name, entry, payload) for name, entry in table.items()}, meta


def _tensor(path: Path, name: str, entry: dict, payload: memoryview) -> torch.Tensor:
    try:
        dtype = _DTYPES[entry["dtype"]]
        shape = [int(s) for s in entry["shape"]]
        offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: tensor {name!r} has a malformed entry") from None
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) * itemsize != nbytes:
        raise ModelFileError(f"{path}: tensor {name!r} shape {shape} does not match its {nbytes} bytes")
    if offset < 0 or offset + nbytes > len(payload):
        raise ModelFileError(f"{path}: tensor {name!r} lies outside the file")
    array = np.frombuffer(payload[offset : offset + nbytes], dtype=_NAMES[dtype]).copy()
    return torch.from_numpy(array).reshape(shape)


def _atomic_write(path: Path, blob: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
