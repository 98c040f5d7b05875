"""Reading ``.npz`` archives without pickle, turning every failure into a one-line DataError."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from qgnn_cli.errors import DataError


@contextmanager
def open_npz(source: Path | BinaryIO, where: str) -> Iterator[np.lib.npyio.NpzFile]:
    """``np.load(source, allow_pickle=False)`` as a context; ``where`` names the file in errors."""
    try:
        f = np.load(source, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{where}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where}: not a readable npz archive ({exc})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{where}: a single .npy array, not an npz archive of named arrays")
    with f:
        yield f


def read_array(f: np.lib.npyio.NpzFile, key: str, where: str, required: bool = True) -> np.ndarray | None:
    """The array stored under ``key`` (``None`` if absent and not ``required``)."""
    if key not in f.files:
        if required:
            raise DataError(f"{where}: missing key '{key}' (found: {', '.join(f.files) or 'none'})")
        return None
    try:
        return f[key]
    except Exception as exc:  # noqa: BLE001 - a damaged member fails in zlib, zipfile or numpy
        raise DataError(f"{where}: key '{key}' is truncated or corrupt ({exc})".replace("\n", " ")) from None


def read_sparse(
    f: np.lib.npyio.NpzFile, prefix: str, where: str, check_columns: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Rows, columns, values and shape of the CSR matrix stored as ``<prefix>_{data,indices,indptr,shape}``.

    The parts are checked here: scipy does not check column indices when it builds a CSR matrix,
    and a bad one later fails with a multi-line error or writes out of bounds. ``check_columns=False``
    leaves the column range to the caller (edge lists report the bad edge themselves).
    """
    data, indices, indptr, shape = (
        read_array(f, f"{prefix}_{p}", where) for p in ("data", "indices", "indptr", "shape")
    )
    if shape.shape != (2,) or indptr.shape != (int(shape[0]) + 1,) or data.shape != indices.shape:
        raise DataError(f"{where}: '{prefix}_*' arrays disagree with {prefix}_shape={shape.tolist()}")
    counts = np.diff(indptr)
    if indptr[0] != 0 or indptr[-1] != len(indices) or (counts < 0).any():
        raise DataError(f"{where}: '{prefix}_indptr' is not a valid CSR row pointer")
    if check_columns and indices.size and not 0 <= indices.min() <= indices.max() < shape[1]:
        bad = int(np.argmax((indices < 0) | (indices >= shape[1])))
        raise DataError(f"{where}: '{prefix}_indices'[{bad}] = {int(indices[bad])} is outside [0, {int(shape[1])})")
    rows = np.repeat(np.arange(int(shape[0])), counts)
    return rows, indices, data, (int(shape[0]), int(shape[1]))
