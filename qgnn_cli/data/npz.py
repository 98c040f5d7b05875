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
