from __future__ import annotations

import time

import pytest
import torch

from qgnn_cli.bench.memory import peak_memory
from qgnn_cli.bench.timing import time_interleaved


def test_interleaved_runs_every_variant_in_rounds():
    order = []
    timings = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, reps=3, warmup=1)
    assert order == ["a", "b"] + ["a", "b"] * 3  # warm-ups first, then interleaved rounds
    assert all(len(t.seconds) == 3 for t in timings.values())


def test_median_reflects_the_slower_variant():
    timings = time_interleaved({"fast": lambda: None, "slow": lambda: time.sleep(0.01)}, reps=3, warmup=0)
    assert timings["slow"].median > timings["fast"].median
    assert timings["slow"].median >= 0.009


def test_reps_must_be_positive():
    with pytest.raises(ValueError):
        time_interleaved({"a": lambda: None}, reps=0)


def test_peak_memory_sees_a_large_allocation():
    def allocate():
        x = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
        time.sleep(0.02)
        return float(x.sum())

    assert peak_memory(allocate) >= 32 * 1024 * 1024
