"""Named datasets: where each lives under the data root, and :func:`load_graph`, the one entry point.

The data root is the ``data_root`` argument, else the environment variable ``QGNN_DATA``; its layout
is the one of shared/datasets (``planetoid/``, ``gnn_benchmark/``, ``heterophilous_graphs/``). Cora
needs no root: without one (or without the Cora files under it) the copy shipped in the package is
used. Anything that is not a known name is treated as a path to a file in the generic format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qgnn_cli.data.embedded import EMBEDDED_CORA, load_embedded_cora
from qgnn_cli.data.generic import load_generic
from qgnn_cli.data.graph import Graph
from qgnn_cli.data.planetoid import PLANETOID_FOLDERS, load_planetoid, planetoid_dir
from qgnn_cli.data.platonov import load_platonov, platonov_file
from qgnn_cli.data.shchur import SHCHUR_FILES, load_shchur
from qgnn_cli.errors import DataError

DATA_ROOT_ENV = "QGNN_DATA"

_DESCRIPTIONS = {
    "cora": "citation graph, binary bag of words, 7 classes (Planetoid public split)",
    "citeseer": "citation graph, binary bag of words, 6 classes (Planetoid public split)",
    "pubmed": "citation graph, TF-IDF features, 3 classes (Planetoid public split)",
    "amazon-computers": "co-purchase graph, binary reviews bag of words, 10 classes (no split)",
    "coauthor-physics": "co-authorship graph, binary keywords, 5 classes (no split)",
    "chameleon": "Wikipedia page graph, heterophilous, 5 classes (10 splits)",
    "chameleon-filtered": "chameleon without duplicate nodes (10 splits)",
    "squirrel": "Wikipedia page graph, heterophilous, 5 classes (10 splits)",
    "squirrel-filtered": "squirrel without duplicate nodes (10 splits)",
    "actor": "actor co-occurrence graph, heterophilous, 5 classes (10 splits)",
    "cornell": "WebKB web pages, heterophilous, 5 classes (10 splits)",
    "texas": "WebKB web pages, heterophilous, 5 classes (10 splits)",
    "wisconsin": "WebKB web pages, heterophilous, 5 classes (10 splits)",
    "tolokers": "Toloka crowd-worker graph, 2 imbalanced classes (10 splits)",
}
DATASET_NAMES = tuple(_DESCRIPTIONS)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    format: str  # planetoid | shchur | platonov
    description: str
    location: str | None  # the file or folder found, "embedded", or None when missing

    @property
    def found(self) -> bool:
        return self.location is not None


def _format(name: str) -> str:
    if name in PLANETOID_FOLDERS:
        return "planetoid"
    return "shchur" if name in SHCHUR_FILES else "platonov"


def _expected_path(root: Path, name: str) -> Path:
    fmt = _format(name)
    if fmt == "planetoid":
        return planetoid_dir(root, name)
    if fmt == "shchur":
        return root / "gnn_benchmark" / SHCHUR_FILES[name][0]
    return platonov_file(root, name)


def resolve_data_root(data_root: str | os.PathLike | None) -> Path | None:
    """``data_root``, else ``$QGNN_DATA``, else ``None``."""
    root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV) or None
    return Path(root).expanduser() if root is not None else None


def _locate(name: str, root: Path | None) -> str | None:
    path = _expected_path(root, name) if root is not None else None
    if path is not None and path.exists():
        return str(path)
    if name == "cora" and EMBEDDED_CORA.exists():
        return "embedded"
    return None


def list_datasets(data_root: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """Every known dataset, with where it would be loaded from (``location`` None: missing)."""
    root = resolve_data_root(data_root)
    return [DatasetInfo(n, _format(n), _DESCRIPTIONS[n], _locate(n, root)) for n in DATASET_NAMES]


def load_graph(name_or_path: str, data_root: str | os.PathLike | None = None) -> Graph:
    """Load a named dataset or a generic ``.npz`` file as a validated :class:`Graph`."""
    name = str(name_or_path).lower()
    if name not in _DESCRIPTIONS:
        path = Path(name_or_path).expanduser()
        if path.suffix == ".npz" or os.sep in str(name_or_path) or path.exists():
            if not path.is_file():
                raise DataError(f"{path}: file not found")
            return load_generic(path)
        raise DataError(f"unknown dataset '{name_or_path}'; known: {', '.join(DATASET_NAMES)} (or a path to an .npz file)")
    root = resolve_data_root(data_root)
    if root is not None and not root.is_dir() and name != "cora":
        raise DataError(f"data root {root} not found (from --data-root or ${DATA_ROOT_ENV})")
    location = _locate(name, root)
    if location is None:
        if root is None:
            raise DataError(f"dataset '{name}' needs a data root: pass --data-root or set ${DATA_ROOT_ENV}")
        raise DataError(f"dataset '{name}' not found: expected {_expected_path(root, name)}")
    if location == "embedded":
        return load_embedded_cora()
    fmt = _format(name)
    if fmt == "planetoid":
        return load_planetoid(Path(location), name)
    if fmt == "shchur":
        return load_shchur(Path(location), name)
    return load_platonov(Path(location), name)
