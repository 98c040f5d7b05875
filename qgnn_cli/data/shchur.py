"""The Shchur et al. gnn-benchmark npz (Amazon Computers, Coauthor Physics), kept zipped.

``<root>/gnn_benchmark/<name>.zip`` holds one ``.npz`` member, read in memory. Matches
``torch_geometric.io.read_npz``: adjacency made undirected with self-loops removed, features set to 1
wherever positive (Coauthor stores keyword counts). ``class_names`` is never read: for Coauthor it is
an object array that would need pickle. No split is shipped.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from qgnn_cli.data.edges import csr_from_edges
from qgnn_cli.data.graph import Graph, validated
from qgnn_cli.data.npz import open_npz, read_array
from qgnn_cli.errors import DataError

# Dataset name -> (zip file under gnn_benchmark/, member inside it).
SHCHUR_FILES = {
    "amazon-computers": ("amazon-computers.zip", "amazon_electronics_computers.npz"),
    "coauthor-physics": ("coauthor-physics.zip", "ms_academic_phy.npz"),
}


def _read_member(zip_path: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(zip_path) as z:
            return z.read(member)
    except FileNotFoundError:
        raise DataError(f"{zip_path}: file not found") from None
    except KeyError:
        raise DataError(f"{zip_path}: no member '{member}' in the zip") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{zip_path}: truncated or corrupt zip ({exc})") from None


def _coo(f, prefix: str, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Rows, columns, values and shape of the CSR matrix stored as ``<prefix>_{data,indices,indptr,shape}``."""
    data, indices, indptr, shape = (
        read_array(f, f"{prefix}_{p}", where) for p in ("data", "indices", "indptr", "shape")
    )
    if shape.shape != (2,) or indptr.shape != (int(shape[0]) + 1,) or data.shape != indices.shape:
        raise DataError(f"{where}: '{prefix}_*' arrays disagree with {prefix}_shape={shape.tolist()}")
    counts = np.diff(indptr)
    if indptr[0] != 0 or indptr[-1] != len(indices) or (counts < 0).any():
        raise DataError(f"{where}: '{prefix}_indptr' is not a valid CSR row pointer")
    return np.repeat(np.arange(int(shape[0])), counts), indices, data, (int(shape[0]), int(shape[1]))


def load_shchur(zip_path: Path, name: str) -> Graph:
    _, member = SHCHUR_FILES[name]
    where = f"{zip_path}:{member}"
    with open_npz(io.BytesIO(_read_member(zip_path, member)), where) as f:
        adj_rows, adj_cols, _, adj_shape = _coo(f, "adj", where)
        attr_rows, attr_cols, attr_values, attr_shape = _coo(f, "attr", where)
        labels = read_array(f, "labels", where).astype(np.int64)
    n = attr_shape[0]
    if adj_shape != (n, n) or labels.shape != (n,):
        raise DataError(f"{where}: adjacency {adj_shape}, features {attr_shape}, labels {labels.shape} disagree")
    if attr_cols.size and not 0 <= attr_cols.min() <= attr_cols.max() < attr_shape[1]:
        raise DataError(f"{where}: 'attr_indices' holds feature columns outside [0, {attr_shape[1]})")
    x = np.zeros(attr_shape, dtype=np.float32)
    # PyG's x[x > 0] = 1: binary for Amazon already, keyword counts for Coauthor.
    x[attr_rows, attr_cols] = np.where(attr_values > 0, 1.0, attr_values)
    graph = Graph(
        name=name,
        adj=csr_from_edges(adj_rows, adj_cols, n, symmetrize=True, where=f"{where}: 'adj_*'"),
        x=torch.from_numpy(x),
        y=torch.from_numpy(labels),
        num_classes=int(labels.max()) + 1 if n else 0,
        meta={"format": "shchur", "source": where},
    )
    return validated(graph, where)
