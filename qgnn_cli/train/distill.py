"""Knowledge distillation: a trained model's class probabilities on every node as a second target.

At 2 bits the student's arg-max moves with every rounding, and 20 labels per class give it little to
hold on to; the teacher (usually the FP32 run of the same seed) gives a soft target on all nodes.
Only the loss changes: the student's sites, kernels and export are those of any other run.

The teacher must have been trained on the very split the student trains on, or its targets would carry
the labels of the student's validation and test nodes: model files record a digest of their masks,
and a teacher of another split is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from qgnn_cli.data import Graph, split_digest
from qgnn_cli.errors import ConfigError
from qgnn_cli.nn import GraphOperator, maybe_sparse
from qgnn_cli.train.config import TrainConfig
from qgnn_cli.train.model_file import load_model_file


def teacher_file(teacher: str | Path, seed: int) -> Path:
    """The model file for the run of ``seed``: ``teacher`` itself, or ``teacher/runs/seed-<S>/model.pt``
    when it is the output folder of a ``qgnn train`` (one teacher per seed, so per split)."""
    path = Path(teacher)
    if path.is_dir():
        path = path / "runs" / f"seed-{seed}" / "model.pt"
        if not path.is_file():
            raise ConfigError(f"--teacher {teacher}: no run for seed {seed} ({path} is missing); train the teacher "
                              "with the same --seed and --runs")
    elif not path.is_file():
        raise ConfigError(f"--teacher {teacher}: no such model file or training folder")
    return path


def teacher_log_probs(config: TrainConfig, graph: Graph, seed: int) -> torch.Tensor:
    """The teacher's log-probabilities on every node of ``graph`` (whose masks are this run's split)."""
    from qgnn_cli.train.loop import node_features  # here: the loop imports this module

    path = teacher_file(config.teacher, seed)
    with torch.random.fork_rng(devices=[]):  # building the teacher must not move the student's random stream
        model, tconfig, extra = load_model_file(path)
    if (extra["num_features"], extra["num_classes"]) != (graph.num_features, graph.num_classes):
        raise ConfigError(f"--teacher {path}: trained on {extra['num_features']} features / {extra['num_classes']} "
                          f"classes, this graph has {graph.num_features} / {graph.num_classes}")
    if "split" not in extra:
        raise ConfigError(f"--teacher {path}: the file does not record the split it trained on (it was not written "
                          "by `qgnn train`), so distilling from it could leak test labels; use a training run's model")
    if extra["split"] != split_digest(graph):
        tseed = extra.get("metrics", {}).get("seed", tconfig.seed)
        raise ConfigError(f"--teacher {path}: trained on another split (--split {tconfig.split}, seed {tseed}) than "
                          f"this run (--split {config.split}, seed {seed}); its targets would carry the labels of "
                          "this run's validation and test nodes. Train the teacher with the same --split and --seed")
    with torch.no_grad():
        return model(maybe_sparse(node_features(graph, tconfig)), GraphOperator.from_adj(graph.adj)).detach()


def distillation_loss(log_probs: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, averaged over nodes, times T^2 (Hinton et al.) so its
    gradient keeps its size as T changes. Both inputs are log-probabilities (a softmax of them divided by
    T equals that of the logits divided by T)."""
    t = temperature
    return F.kl_div(F.log_softmax(log_probs / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
