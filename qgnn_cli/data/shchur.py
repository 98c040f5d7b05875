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
from qgnn_cli.data.npz import open_npz, read_array, read_sparse
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


def load_shchur(zip_path: Path, name: str) -> Graph:
    _, member = SHCHUR_FILES[name]
    where = f"{zip_path}:{member}"
    with open_npz(io.BytesIO(_read_member(zip_path, member)), where) as f:
        # Adjacency columns are checked below, per edge; feature columns here.
        adj_rows, adj_cols, _, adj_shape = read_sparse(f, "adj", where, check_columns=False)
        attr_rows, attr_cols, attr_values, attr_shape = read_sparse(f, "attr", where)
        labels = read_array(f, "labels", where).astype(np.int64)
    n = attr_shape[0]
    if adj_shape != (n, n) or labels.shape != (n,):
        raise DataError(f"{where}: adjacency {adj_shape}, features {attr_shape}, labels {labels.shape} disagree")
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
