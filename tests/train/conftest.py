"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest

from qgnn_cli.train import TrainConfig, run_training
from tests.train.small_runs import GRAPH, SMALL


@pytest.fixture(scope="module")
def fp32_runs(tmp_path_factory):
    """An FP32 training folder of seeds 0 and 1 on GRAPH's split (a teacher, or a run to start from)."""
    out = tmp_path_factory.mktemp("fp32")
    run_training(TrainConfig(**SMALL), out, graph=GRAPH)
    return out
