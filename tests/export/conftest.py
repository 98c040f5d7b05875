"""Tiny trained models on the embedded Cora, shared by the export tests (module-scoped: trained once)."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.export.ptq import post_training_quantize
from qgnn_cli.train import TrainConfig, load_dataset, split_for_run, train_model

# Few epochs at a high learning rate: the parity, not the accuracy, is tested; predictions just must
# not collapse to one class.
FP32 = {"smp": dict(model="smp", layers=4), "gcn": dict(model="gcn", layers=2)}
COMMON = dict(bits=32, epochs=15, hidden=16, lr=0.05, dropout=0.2)


@pytest.fixture(scope="session")
def cora():
    config = TrainConfig(**COMMON, **FP32["smp"])
    return split_for_run(load_dataset(config), config.resolved(), 0)


@pytest.fixture(scope="session")
def fp32_models(cora):
    """``{"smp": (model, config), "gcn": (model, config)}`` trained in FP32."""
    torch.manual_seed(0)
    out = {}
    for name, extra in FP32.items():
        config = TrainConfig(**COMMON, **extra)
        _, model = train_model(config, cora)
        out[name] = (model, config)
    return out


@pytest.fixture(scope="session")
def gcn_hidden20(cora):
    """An FP32 GCN whose hidden width (20) leaves padding codes in packed rows."""
    config = TrainConfig(model="gcn", layers=2, bits=32, epochs=10, hidden=20, lr=0.05, dropout=0.2)
    return train_model(config, cora)[1], config


@pytest.fixture(scope="session")
def quantized(cora, fp32_models):
    """A function ``(model name, bits, bt) -> (quantized model, config)``, cached."""
    cache = {}

    def make(name: str, bits: int, bt: str = "none"):
        key = (name, bits, bt)
        if key not in cache:
            model, config = fp32_models[name]
            qmodel, qconfig, _ = post_training_quantize(model, config, cora, bits, bt)
            cache[key] = (qmodel, qconfig)
        return cache[key]

    return make
