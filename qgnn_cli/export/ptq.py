"""Post-training quantization: a full-precision model's weights in a quantized model of the same shape.

The baseline that shows what QAT buys: copy the FP32 weights into a model built with quantizer sites
(``bits``, ``bt``, per-group overrides), calibrate every site's range on the graph with one
training-mode forward with dropout off (the sites' first batch: running min/max and the alpha grid
search, ``quant/qlr.py``), and optionally fine-tune a few epochs with QAT (``train_model`` on the
calibrated model: train/loop.py's protocol, best validation kept).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import torch
from torch import nn

from qgnn_cli.data import Graph
from qgnn_cli.errors import ConfigError
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import TrainConfig, model_from_config, node_features, train_model
from qgnn_cli.train.metrics import accuracy


def quantized_config(config: TrainConfig, bits: int, bt: str = "none", site_bits: dict | None = None) -> TrainConfig:
    """The FP32 model's (resolved) config with the quantization settings replaced, validated."""
    base = config.resolved()
    # Not the FP32 run's teacher or warm start: a fine-tune is plain QAT from the calibrated model.
    return dataclasses.replace(base, bits=bits, bt=bt, site_bits=dict(site_bits or {}), teacher=None,
                               init_from=None).validated()


@contextmanager
def _no_dropout(model: nn.Module):
    holders = [m for m in model.modules() if isinstance(getattr(m, "dropout", None), float)]
    saved = [m.dropout for m in holders]
    for m in holders:
        m.dropout = 0.0
    try:
        yield
    finally:
        for m, p in zip(holders, saved):
            m.dropout = p


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, op: GraphOperator) -> nn.Module:
    """Set every enabled site's range from one dropout-free training-mode forward; model left in eval."""
    for _, q in model.sites():
        q.initialized.fill_(False)
    model.train()
    with _no_dropout(model):
        model(x, op)
    return model.eval()


def post_training_quantize(fp32_model: nn.Module, fp32_config: TrainConfig, graph: Graph, bits: int,
                           bt: str = "none", site_bits: dict | None = None, finetune_epochs: int = 0,
                           seed: int = 0) -> tuple[nn.Module, TrainConfig, dict]:
    """``(quantized model in eval mode, its config, numbers)``; ``graph`` carries the split to use."""
    if finetune_epochs < 0:
        raise ConfigError(f"--finetune-epochs must be >= 0, got {finetune_epochs}")
    if graph.y is None or graph.train_mask is None:
        raise ConfigError(f"{graph.name}: post-training quantization needs labels and a split")
    config = quantized_config(fp32_config, bits, bt, site_bits)
    x = node_features(graph, config)
    op = GraphOperator.from_adj(graph.adj)
    model = model_from_config(config, graph.num_features, graph.num_classes)
    try:
        model.load_state_dict(fp32_model.state_dict())
    except RuntimeError as exc:
        raise ConfigError(f"the FP32 model does not fit the graph or config: {exc}") from None
    torch.manual_seed(seed)
    calibrate(model, x, op)
    fp32_model.eval()
    with torch.no_grad():
        fp32_out, ptq_out = fp32_model(x, op), model(x, op)
    numbers = {"fp32_test_acc": accuracy(fp32_out, graph.y, graph.test_mask),
               "ptq_test_acc": accuracy(ptq_out, graph.y, graph.test_mask),
               "ptq_val_acc": accuracy(ptq_out, graph.y, graph.val_mask)}
    if finetune_epochs:
        result, model = train_model(dataclasses.replace(config, epochs=finetune_epochs), graph, seed=seed, model=model)
        numbers.update({"finetune_epochs": finetune_epochs, "finetune_best_epoch": result["best_epoch"],
                        "finetuned_test_acc": result["test_acc"], "finetuned_val_acc": result["best_val_acc"]})
    return model.eval(), config, numbers
