"""Unpickling the Planetoid files without running arbitrary code.

The Planetoid ``ind.*`` files are Python-2 pickles. A plain ``pickle.load`` would import and call any
global a file names, so a tampered file could run code. This unpickler resolves only the handful of
globals the genuine files use (listed in shared/datasets/README.md) and refuses everything else.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from qgnn_cli.errors import DataError

# numpy 2 moved numpy.core to numpy._core; the files name the old path.
_reconstruct = (getattr(np, "_core", None) or np.core).multiarray._reconstruct

# (module, name) as written in the file -> the object it stands for today.
_ALLOWED = {
    ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
    ("scipy.sparse", "csr_matrix"): scipy.sparse.csr_matrix,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "defaultdict"): collections.defaultdict,
    ("__builtin__", "list"): list,  # Python 2 spelling
    ("builtins", "list"): list,
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` knows only :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(f"forbidden global '{module}.{name}'") from None


def load_restricted(path: Path):
    """Unpickle ``path`` (latin1, as Python 2 wrote it); any failure is a one-line :class:`DataError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except ForbiddenGlobal as exc:
        raise DataError(f"{path}: refused, the pickle references a {exc}") from None
    except Exception as exc:  # noqa: BLE001 - truncated/garbled pickles raise many types
        raise DataError(
            f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None
