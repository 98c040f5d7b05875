"""Knowledge distillation: a trained model's class probabilities on every node as a second target.

At 2 bits the student's arg-max moves with every rounding, and 20 labels per class give it little to
hold on to; the teacher (usually the FP32 run of the same seed) gives a soft target on all nodes.
Only the loss changes: the student's sites, kernels and export are those of any other run.

The teacher is the run of the same seed and split (train/source_run.py checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qgnn_cli.data import Graph
from qgnn_cli.nn import GraphOperator, maybe_sparse
from qgnn_cli.train.config import TrainConfig
from qgnn_cli.train.source_run import load_source_run


def teacher_log_probs(config: TrainConfig, graph: Graph, seed: int) -> torch.Tensor:
    """The teacher's log-probabilities on every node of ``graph`` (whose masks are this run's split)."""
    from qgnn_cli.train.loop import node_features  # here: the loop imports this module

    model, tconfig = load_source_run(config.teacher, graph, seed, "--teacher")
    with torch.no_grad():
        return model(maybe_sparse(node_features(graph, tconfig)), GraphOperator.from_adj(graph.adj)).detach()


def distillation_loss(log_probs: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, averaged over nodes, times T^2 (Hinton et al.) so its
    gradient keeps its size as T changes. Both inputs are log-probabilities (a softmax of them divided by
    T equals that of the logits divided by T)."""
    t = temperature
    return F.kl_div(F.log_softmax(log_probs / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
