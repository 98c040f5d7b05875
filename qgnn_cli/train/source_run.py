"""A trained run that another run builds on: its class probabilities (``--teacher``, distill.py) or its
weights as the starting point (``--init-from``, a warm start of QAT from the FP32 run).

Either way the source is the model of the same seed, and it must have trained on the very split of the
run that reuses it: a model of another split has fitted the labels of this run's validation and test
nodes, and would pass them on. Model files record a digest of their masks; another split is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qgnn_cli.data import Graph, split_digest
from qgnn_cli.errors import ConfigError
from qgnn_cli.train.config import TrainConfig
from qgnn_cli.train.model_file import load_model_file


def source_file(source: str | Path, seed: int, option: str = "--teacher") -> Path:
    """The model file for the run of ``seed``: ``source`` itself, or ``source/runs/seed-<S>/model.pt``
    when it is the output folder of a ``qgnn train`` (one model per seed, so per split)."""
    path = Path(source)
    if path.is_dir():
        path = path / "runs" / f"seed-{seed}" / "model.pt"
        if not path.is_file():
            raise ConfigError(f"{option} {source}: no run for seed {seed} ({path} is missing); train it "
                              "with the same --seed and --runs")
    elif not path.is_file():
        raise ConfigError(f"{option} {source}: no such model file or training folder")
    return path


def load_source_run(source: str | Path, graph: Graph, seed: int, option: str) -> tuple[nn.Module, TrainConfig]:
    """The source run's model (eval mode) and config, checked against ``graph`` (whose masks are this
    run's split) and without moving the caller's random stream."""
    path = source_file(source, seed, option)
    with torch.random.fork_rng(devices=[]):
        model, config, extra = load_model_file(path)
    if (extra["num_features"], extra["num_classes"]) != (graph.num_features, graph.num_classes):
        raise ConfigError(f"{option} {path}: trained on {extra['num_features']} features / {extra['num_classes']} "
                          f"classes, this graph has {graph.num_features} / {graph.num_classes}")
    if "split" not in extra:
        raise ConfigError(f"{option} {path}: the file does not record the split it trained on (it was not written "
                          "by `qgnn train`), so reusing it could leak test labels; use a training run's model")
    if extra["split"] != split_digest(graph):
        raise ConfigError(f"{option} {path}: trained on another split (--split {config.split}, seed {config.seed}) "
                          f"than this run (seed {seed}); it has fitted the labels of this run's validation and test "
                          f"nodes. Train it with the same --split and --seed")
    return model, config


def init_from_run(model: nn.Module, source: str | Path, graph: Graph, seed: int) -> None:
    """Copy the source run's weights and biases (every parameter but the quantizers' alphas) into
    ``model``, which must have the same structure. The quantizer state is left alone: the sites take
    their ranges from the first batch, as in any run."""
    src, src_config = load_source_run(source, graph, seed, "--init-from")
    weights = {name: p for name, p in src.named_parameters() if not name.endswith("alpha")}
    own = dict(model.named_parameters())
    wrong = [n for n, p in weights.items() if n not in own or own[n].shape != p.shape]
    wrong += [n for n in own if n not in weights and not n.endswith("alpha")]
    if wrong:
        raise ConfigError(f"--init-from {source}: its model ({src_config.model}, {src_config.layers} layers, hidden "
                          f"{src_config.hidden}) does not have this run's weights (first mismatch: {wrong[0]}); "
                          "use a run of the same --model, --layers and --hidden")
    with torch.no_grad():
        for name, p in weights.items():
            own[name].copy_(p)
