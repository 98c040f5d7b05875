"""Warm start (--init-from): the weights it copies, and the runs it refuses (as a teacher's)."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.errors import ConfigError
from qgnn_cli.train import TrainConfig, load_model, run_training
from tests.train.small_runs import GRAPH, SMALL

pytestmark = pytest.mark.usefixtures("one_thread")


def weights(path) -> dict:
    model = load_model(path)[0]
    return {n: p.detach() for n, p in model.named_parameters() if not n.endswith("alpha")}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_frozen_warm_start_keeps_the_source_weights_of_its_seed(tmp_path, fp32_runs, seed):
    # At learning rate 0 nothing moves the copied weights, so the 2-bit run ends with its seed's FP32 ones.
    run_training(TrainConfig(**SMALL, bits=2, lr=0.0, init_from=str(fp32_runs)), tmp_path, graph=GRAPH)
    got = weights(tmp_path / "runs" / f"seed-{seed}" / "model.pt")
    source = weights(fp32_runs / "runs" / f"seed-{seed}" / "model.pt")
    assert got.keys() == source.keys() and all(torch.equal(got[n], source[n]) for n in got)
    other = weights(fp32_runs / "runs" / f"seed-{1 - seed}" / "model.pt")
    assert not all(torch.equal(got[n], other[n]) for n in got)


def test_a_source_of_another_split_or_shape_is_refused(fp32_runs):
    moved = GRAPH.with_masks(GRAPH.train_mask.roll(1), GRAPH.val_mask.roll(1), GRAPH.test_mask.roll(1))
    with pytest.raises(ConfigError, match="--init-from .* trained on another split"):
        run_training(TrainConfig(**SMALL, bits=2, init_from=str(fp32_runs)), graph=moved)
    with pytest.raises(ConfigError, match="does not have this run's weights .* same --model, --layers and --hidden"):
        run_training(TrainConfig(**{**SMALL, "hidden": 16}, bits=2, init_from=str(fp32_runs)), graph=GRAPH)
    with pytest.raises(ConfigError, match="--init-from .*no run for seed 2"):
        run_training(TrainConfig(**{**SMALL, "runs": 3}, bits=2, init_from=str(fp32_runs)), graph=GRAPH)
