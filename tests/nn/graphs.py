"""Small hand-made graphs for the nn tests."""

from __future__ import annotations

import torch

from qgnn_cli.data import CSR, Graph


def ring_graph(n: int = 12, chords: int = 3, features: int = 6, classes: int = 3, seed: int = 0) -> Graph:
    """An undirected ring with a few chords (symmetric CSR, sorted rows, no self-loops)."""
    gen = torch.Generator().manual_seed(seed)
    edges = {(i, (i + 1) % n) for i in range(n)} | {(i, (i + 1 + 2 * i) % n) for i in range(chords)}
    pairs = sorted({(a, b) for a, b in edges if a != b} | {(b, a) for a, b in edges if a != b})
    rows = torch.tensor([a for a, _ in pairs])
    cols = torch.tensor([b for _, b in pairs])
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(rows, minlength=n), 0, out=indptr[1:])
    y = torch.arange(n) % classes
    train = torch.zeros(n, dtype=torch.bool)
    train[: 2 * classes] = True
    val, test = ~train, ~train
    x = torch.randn(n, features, generator=gen)
    return Graph("ring", CSR(indptr, cols, None, n), x, y, classes, train, val, test)
