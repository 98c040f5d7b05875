"""The compact Cora file shipped inside the package (``embedded/cora.npz``).

Written by ``scripts/make_embedded_cora.py`` from the Planetoid raw files through
:func:`load_planetoid`, so loading it gives exactly the tensors the raw files give. Compact because
Cora's features are binary: only the positions of the ones are stored, with the smallest unsigned
integer type that holds each array, and the archive is deflate-compressed. It also records the
sha256 of the source files it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qgnn_cli.data.graph import CSR, Graph, validated
from qgnn_cli.data.npz import open_npz, read_array
from qgnn_cli.data.splits import index_mask

EMBEDDED_CORA = Path(__file__).parent / "embedded" / "cora.npz"
_KEYS = ("adj_indptr", "adj_indices", "x_indptr", "x_indices", "x_shape", "y", "num_classes",
         "train_index", "val_index", "test_index")


def _smallest_uint(a: np.ndarray) -> np.ndarray:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if a.size == 0 or int(a.max()) <= np.iinfo(dtype).max:
            return a.astype(dtype)
    return a.astype(np.int64)


def write_compact(graph: Graph, path: Path, sources: dict[str, str]) -> None:
    """Save a graph with binary features and (N,) masks; ``sources`` maps file name -> sha256."""
    x = graph.x.numpy()
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("write_compact stores binary features only")
    rows, cols = np.nonzero(x)
    x_indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=x.shape[0]), out=x_indptr[1:])
    arrays = {
        "adj_indptr": graph.adj.indptr.numpy(),
        "adj_indices": graph.adj.indices.numpy(),
        "x_indptr": x_indptr,
        "x_indices": cols,
        "x_shape": np.array(x.shape),
        "y": graph.y.numpy(),
        "num_classes": np.array(graph.num_classes),
        "train_index": graph.train_mask.nonzero().view(-1).numpy(),
        "val_index": graph.val_mask.nonzero().view(-1).numpy(),
        "test_index": graph.test_mask.nonzero().view(-1).numpy(),
    }
    np.savez_compressed(
        path,
        **{k: _smallest_uint(v) for k, v in arrays.items()},
        source_files=np.array(list(sources)),
        source_sha256=np.array(list(sources.values())),
    )


def load_compact(path: Path, name: str) -> Graph:
    """Read a file written by :func:`write_compact` back into a validated :class:`Graph`."""
    with open_npz(path, str(path)) as f:
        a = {k: read_array(f, k, str(path)).astype(np.int64) for k in _KEYS}
        sources = dict(zip(read_array(f, "source_files", str(path)).tolist(),
                           read_array(f, "source_sha256", str(path)).tolist()))
    n, num_features = (int(v) for v in a["x_shape"])
    x = torch.zeros(n, num_features)
    rows = torch.repeat_interleave(torch.arange(n), torch.from_numpy(np.diff(a["x_indptr"])))
    x[rows, torch.from_numpy(a["x_indices"])] = 1.0

    graph = Graph(
        name=name,
        adj=CSR(torch.from_numpy(a["adj_indptr"]), torch.from_numpy(a["adj_indices"]), None, n),
        x=x,
        y=torch.from_numpy(a["y"]),
        num_classes=int(a["num_classes"]),
        train_mask=index_mask(a["train_index"], n),
        val_mask=index_mask(a["val_index"], n),
        test_mask=index_mask(a["test_index"], n),
        meta={"format": "embedded", "source": str(path), "source_sha256": sources},
    )
    return validated(graph, str(path))


def load_embedded_cora() -> Graph:
    return load_compact(EMBEDDED_CORA, "cora")
