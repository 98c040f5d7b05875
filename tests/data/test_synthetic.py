import time

import pytest
import torch

from qgnn_cli.data import graph_stats, synthetic_power_law


def test_shape_degree_and_symmetry():
    g = synthetic_power_law(20_000, 12.0, 32, 4, seed=1)
    s = graph_stats(g)
    assert (s["nodes"], s["features"], s["classes"]) == (20_000, 32, 4)
    assert s["symmetric"]
    assert 11.0 < s["mean_degree"] < 12.5  # requested mean, minus the few loops and duplicates dropped
    assert s["max_degree"] > 8 * s["mean_degree"]  # heavy tail
    assert s["split_sizes"] == {"train": 80, "val": 500, "test": 1000}
    assert g.x.dtype == torch.float32 and g.adj.indices.dtype == torch.int64


def test_seeded():
    a, b, c = (synthetic_power_law(2000, 6.0, 8, 3, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.adj.indices, b.adj.indices) and torch.equal(a.x, b.x)
    assert torch.equal(a.train_mask, b.train_mask)
    assert not torch.equal(a.y, c.y)


def test_features_carry_class_signal():
    g = synthetic_power_law(5000, 4.0, 64, 5, seed=0)
    train = g.train_mask | g.val_mask
    means = torch.stack([g.x[train & (g.y == c)].mean(0) for c in range(5)])
    predicted = torch.cdist(g.x[g.test_mask], means).argmin(1)
    accuracy = float((predicted == g.y[g.test_mask]).float().mean())
    assert accuracy > 0.5  # chance is 0.2


def test_tiny_graph_still_gets_a_split():
    g = synthetic_power_law(50, 3.0, 4, 2, seed=0)
    assert int(g.train_mask.sum()) == 40 and int(g.val_mask.sum()) == 5 and int(g.test_mask.sum()) == 5


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        synthetic_power_law(1, 3.0, 4, 2)


@pytest.mark.slow
def test_two_million_nodes_twenty_million_edges_is_fast():
    start = time.perf_counter()
    g = synthetic_power_law(2_000_000, 10.0, 8, 4, seed=0)
    elapsed = time.perf_counter() - start
    assert 19_500_000 < g.num_edges < 20_500_000
    assert elapsed < 30, f"took {elapsed:.1f} s"
