"""Shared fixtures and the one place where device- and package-dependent skips are declared."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("QGNN_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))

HAS_PYG = importlib.util.find_spec("torch_geometric") is not None
HAS_CUDA = torch.cuda.is_available()

requires_pyg = pytest.mark.skipif(not HAS_PYG, reason="torch_geometric is not installed (pip install -e .[pyg])")
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The read-only dataset folder beside the checkout; tests that need it fail if it is missing."""
    if not (SHARED_DATASETS / "planetoid").is_dir():
        raise RuntimeError(
            f"shared datasets not found at {SHARED_DATASETS}; set QGNN_SHARED_DATASETS to the folder"
        )
    return SHARED_DATASETS


def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One intra-op thread, restored afterwards: for tests on small tensors, where a second OpenMP
    thread only adds synchronisation (and, on a shared machine, waits for a busy core)."""
    yield from _threads(1)


@pytest.fixture
def two_threads():
    """Two intra-op threads, restored afterwards: for tests of what must not depend on the thread count."""
    yield from _threads(2)


@pytest.fixture
def seeded() -> torch.Generator:
    """A fresh generator per test, seeded from pytest's random order so inputs vary between tests."""
    return torch.Generator().manual_seed(torch.seed() % 2**31)
