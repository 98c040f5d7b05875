"""Post-training quantization: the calibrated model, and the fine-tune that continues it with QAT."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.errors import ConfigError
from qgnn_cli.export.ptq import post_training_quantize
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import node_features
from qgnn_cli.train.metrics import accuracy

pytestmark = pytest.mark.usefixtures("one_thread")


def predictions(model, config, graph):
    with torch.no_grad():
        return model(node_features(graph, config), GraphOperator.from_adj(graph.adj))


def test_the_calibrated_model_predicts_what_ptq_reports(cora, fp32_models):
    fp32, config = fp32_models["smp"]
    model, qconfig, numbers = post_training_quantize(fp32, config, cora, 2, "bt*")
    assert qconfig.bits == 2 and qconfig.bt == "bt*" and not model.training
    out = predictions(model, qconfig, cora)
    assert numbers["ptq_test_acc"] == accuracy(out, cora.y, cora.test_mask)
    assert numbers["ptq_val_acc"] == accuracy(out, cora.y, cora.val_mask)


def test_a_finetune_trains_the_calibrated_model_and_keeps_its_best_epoch(cora, fp32_models):
    fp32, config = fp32_models["smp"]
    calibrated, _, _ = post_training_quantize(fp32, config, cora, 2)
    model, qconfig, numbers = post_training_quantize(fp32, config, cora, 2, finetune_epochs=4)
    assert numbers["finetune_epochs"] == 4 and 0 <= numbers["finetune_best_epoch"] < 4
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, dict(calibrated.named_parameters())[n])]
    assert "mlp.lin1.weight" in moved
    out = predictions(model, qconfig, cora)  # the returned model is the best-validation one it reports
    assert numbers["finetuned_val_acc"] == accuracy(out, cora.y, cora.val_mask)
    assert numbers["finetuned_test_acc"] == accuracy(out, cora.y, cora.test_mask)


def test_bad_ptq_requests_are_clear_errors(cora, fp32_models):
    fp32, config = fp32_models["smp"]
    with pytest.raises(ConfigError, match="--finetune-epochs must be >= 0"):
        post_training_quantize(fp32, config, cora, 2, finetune_epochs=-1)
    with pytest.raises(ConfigError, match="needs --bits 2"):
        post_training_quantize(fp32, config, cora, 4, "bt*")
