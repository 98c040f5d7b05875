"""Building a model from a config, and the model file ``model.pt``.

The file is ``torch.save`` of plain containers and tensors only::

    {"format": "qgnn-model", "version": 2,
     "config": TrainConfig.to_dict() (resolved),
     "state_dict": the model's state dict (parameters and quantizer buffers),
     "extra": {"num_features", "num_classes", "dataset",
               "sites": [{"name", "bits", "scale", "zero", "mult", "skew"}, ...] in forward order,
               "metrics": the run's headline numbers,
               "split": digest of the train/val/test masks (files written by training only)}}

and is read back with ``torch.load(..., weights_only=True)``. ``sites`` repeats what the quantizer
buffers already determine (``QLRQuantizer.grid()`` in eval mode), so an exporter can read the grids
without building the model; BT* skews are in it too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qgnn_cli.errors import ConfigError, ModelFileError
from qgnn_cli.nn import SitePlan, SMPParams, build_model
from qgnn_cli.train.checkpoint import atomic_save
from qgnn_cli.train.config import TrainConfig

MODEL_FORMAT = "qgnn-model"
# 2: the class scores stay float (the last SMP step's aggregated results, nn/smp.py; the GCN's lin_out
# output, nn/gcn.py); a version-1 state dict would load into those sites silently and predict
# differently, so version-1 files are refused.
MODEL_VERSION = 2


def model_from_config(config: TrainConfig, num_features: int, num_classes: int) -> nn.Module:
    c = config.resolved()
    smp = SMPParams(mu=c.mu, eta=c.eta, eta_s=c.eta_s, eta_lambda=c.eta_lambda, alpha_th=c.alpha_th,
                    lambda_init=c.lambda_init, s_init=c.s_init, mode=c.prop, grad=c.smp_grad)
    return build_model(c.model, num_features, num_classes, layers=c.layers, hidden=c.hidden, dropout=c.dropout,
                       plan=SitePlan(c.bits, c.bt, dict(c.site_bits)), smp=smp, constraint=c.constraint,
                       lambda_lr=c.gcn_lambda_lr)


def site_grids(model: nn.Module) -> list[dict]:
    """Every site's eval-mode grid, in forward order (sites never reached in training are skipped)."""
    out = []
    for name, q in model.sites():
        if q.enabled and not bool(q.initialized):
            continue
        bits, scale, zero, mult, skew = q.grid()
        out.append({"name": name, "bits": bits, "scale": scale, "zero": zero, "mult": mult, "skew": skew})
    return out


def save_model(path: Path, model: nn.Module, config: TrainConfig, num_features: int, num_classes: int,
               metrics: dict | None = None, split: str | None = None) -> None:
    """Write ``model.pt``; ``split`` is the :func:`~qgnn_cli.data.split_digest` of the masks it trained on
    (what a distillation run checks its own split against)."""
    was_training = model.training
    model.eval()
    extra = {"num_features": num_features, "num_classes": num_classes, "dataset": config.dataset,
             "sites": site_grids(model), "metrics": dict(metrics or {})}
    if split is not None:
        extra["split"] = split
    model.train(was_training)
    atomic_save({"format": MODEL_FORMAT, "version": MODEL_VERSION, "config": config.resolved().to_dict(),
                 "state_dict": model.state_dict(), "extra": extra}, Path(path))


def load_model(path: str | Path) -> tuple[nn.Module, TrainConfig]:
    """Read ``model.pt`` (no arbitrary unpickling); the model comes back in eval mode."""
    model, config, _ = load_model_file(path)
    return model, config


def load_model_file(path: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """:func:`load_model`, with the file's ``extra`` (sizes, dataset, site grids, the run's metrics)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, tampered or foreign files all land here
        raise ModelFileError(f"{path}: not a readable qgnn model file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a qgnn model file (format {data.get('format') if isinstance(data, dict) else None!r})")
    if data.get("version") != MODEL_VERSION:
        raise ModelFileError(f"{path}: model file version {data.get('version')}, this qgnn reads {MODEL_VERSION}: "
                             "retrain the model with this qgnn")
    try:
        config = TrainConfig.from_dict(data["config"])
        extra = data["extra"]
        model = model_from_config(config, int(extra["num_features"]), int(extra["num_classes"]))
        model.load_state_dict(data["state_dict"])
    except (ConfigError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: inconsistent model file ({type(exc).__name__}: {exc})") from None
    return model.eval(), config, extra
