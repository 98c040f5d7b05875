"""The small graph and run settings the distillation and warm-start tests share."""

from __future__ import annotations

from tests.nn.graphs import ring_graph

GRAPH = ring_graph(60, 20, features=12, classes=3)
SMALL = dict(hidden=8, layers=4, epochs=6, checkpoint_every=2, lr_step=2, runs=2)
