"""Full-batch training: one run per seed, checkpoints, resume, and the summary over runs.

Protocol (METHOD.md §5): Adam with two parameter groups (the quantizers' alphas at ``lr_alpha``
without weight decay; everything else at ``lr`` with ``weight_decay``, times ``lr_gamma`` every
``lr_step`` epochs), NLL loss on the training nodes plus the model's penalty (the deep GCN's
Lagrangian term) and, with a teacher, the distillation term (train/distill.py), and the test
accuracy reported at the epoch of best validation accuracy. Each epoch's evaluation also sets the
quantizers' frozen ranges from its own dropout-free tensors (``eval_ranges="clean"``,
quant/calibrate.py). With ``init_from`` the weights start from another run's (train/source_run.py).
The saved model is the best-validation one, ranges included, so its predictions are the reported ones.

Files under ``out`` (when given)::

    out/runs/seed-<S>/checkpoint.pt   every ``checkpoint_every`` epochs (atomic), for ``resume``
    out/runs/seed-<S>/model.pt        the run's best-validation model (train/model_file.py)
    out/runs/seed-<S>/result.json     the run's numbers and per-epoch history; marks it complete
    out/model.pt                      the model of the run with the best validation accuracy
    out/metrics.json                  config, every run's numbers, mean ± std
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from qgnn_cli.data import Graph, apply_split, load_graph, split_digest
from qgnn_cli.errors import ConfigError, DataError
from qgnn_cli.finite import all_finite
from qgnn_cli.nn import GraphOperator, maybe_sparse
from qgnn_cli.quant import clean_ranges
from qgnn_cli.train.checkpoint import load_checkpoint, save_checkpoint
from qgnn_cli.train.config import TrainConfig
from qgnn_cli.train.distill import distillation_loss, teacher_log_probs
from qgnn_cli.train.metrics import accuracy, summarize
from qgnn_cli.train.model_file import model_from_config, save_model
from qgnn_cli.train.source_run import init_from_run

EpochCallback = Callable[[int, dict], None]


# -- data ------------------------------------------------------------------------------------------
def load_dataset(config: TrainConfig) -> Graph:
    graph = load_graph(config.dataset, config.data_root)
    if graph.y is None:
        raise DataError(f"{graph.name}: the graph has no labels, so there is nothing to train on")
    return graph


def split_for_run(graph: Graph, config: TrainConfig, run: int) -> Graph:
    """Run ``run``'s split, the one of its seed (``config.seed + run``): a fresh random split per seed, or
    the stored one (of several, the seed's turn). A run's model file records that seed, so the file's
    config alone gives its split back (``split_for_run(graph, saved_config, 0)``)."""
    return apply_split(graph, config.split, config.seed + run)


def trained_split(graph: Graph, config: TrainConfig, digest: str | None) -> Graph:
    """``graph`` with the masks the model of a file (its ``config``) trained on, checked against the split
    ``digest`` the file records (if any): another split's test nodes would hold its training nodes."""
    g = split_for_run(graph, config, 0)
    if digest is not None and split_digest(g) != digest:
        raise ConfigError(f"{graph.name}: the model file's --split {config.split} and seed {config.seed} do not give the "
                          "masks it records having trained on (files of an older qgnn record the first seed of a "
                          "multi-run training, not the run's own): retrain it, or give `qgnn eval` --split and --seed")
    return g


def node_features(graph: Graph, config: TrainConfig) -> torch.Tensor:
    """Rows scaled to unit L1 norm (PyG's NormalizeFeatures for the non-negative features it is meant
    for, as the authors' code uses; the absolute value keeps signed features finite), or the raw ones."""
    if not config.normalize_features:
        return graph.x
    return graph.x / graph.x.abs().sum(dim=1, keepdim=True).clamp(min=1e-12)


# -- one run ---------------------------------------------------------------------------------------
def _optimizer(model: torch.nn.Module, config: TrainConfig):
    alphas = [p for n, p in model.named_parameters() if n.endswith("alpha")]
    others = [p for n, p in model.named_parameters() if not n.endswith("alpha")]
    # foreach: one call per update op over all tensors instead of a python loop over them. A quantized
    # model has a scalar alpha per site (K=64: 326), so the per-tensor loop cost more than the weights'
    # update; on CPU the foreach ops run the same per-tensor kernels, so the result is the same bits.
    opt = torch.optim.Adam([
        {"params": others, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": alphas, "lr": config.lr_alpha, "weight_decay": 0.0},
    ], foreach=True)
    decay = lambda epoch: config.lr_gamma ** (epoch // config.lr_step)  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [decay, lambda epoch: 1.0])
    return opt, sched


def _same_config(saved: dict, config: TrainConfig) -> None:
    current = config.resolved().to_dict()
    for key in sorted(set(saved) | set(current)):
        if key != "runs" and saved.get(key) != current.get(key):
            raise ConfigError(
                f"the checkpoint was written with {key}={saved.get(key)!r}, this run has {current.get(key)!r}:"
                " resume with the same options or use another --out"
            )


def _finite(loss: torch.Tensor, model: torch.nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return all_finite(loss) and all(all_finite(g) for g in grads)


def train_model(config: TrainConfig, graph: Graph, *, seed: int | None = None, run_dir: Path | None = None,
                resume: bool = False, on_epoch: EpochCallback | None = None, run: int = 0,
                model: torch.nn.Module | None = None) -> tuple[dict, torch.nn.Module]:
    """Train one model on ``graph`` (masks already chosen); returns (result, best-validation model).
    ``model``: train that one (a calibrated PTQ model, export/ptq.py) instead of a new one of ``config``."""
    config = config.resolved()
    seed = config.seed if seed is None else seed
    torch.manual_seed(seed)
    op = GraphOperator.from_adj(graph.adj)
    x, y = maybe_sparse(node_features(graph, config)), graph.y
    train_mask, val_mask, test_mask = graph.train_mask, graph.val_mask, graph.test_mask
    if model is None:
        model = model_from_config(config, graph.num_features, graph.num_classes)
        if config.init_from is not None:
            init_from_run(model, config.init_from, graph, seed)
    teacher = teacher_log_probs(config, graph, seed) if config.teacher is not None else None
    opt, sched = _optimizer(model, config)

    start, history = 0, []
    best = {"best_val_acc": -1.0, "test_acc": 0.0, "best_epoch": -1}
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        _same_config(state["config"], config)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, history, best, best_state = state["epoch"], state["history"], state["best"], state["best_state"]

    diverged = None
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        out = model(x, op)
        loss = F.nll_loss(out[train_mask], y[train_mask]) + model.penalty()
        if teacher is not None:
            loss = loss + config.kd_weight * distillation_loss(out, teacher, config.kd_temperature)
        loss.backward()
        if not _finite(loss, model):  # diverged: a step would put NaN/Inf into the weights
            diverged = epoch
            break
        opt.step()
        model.ascent()
        sched.step()
        epoch_time = time.perf_counter() - t0

        model.eval()
        with torch.no_grad(), clean_ranges(model, config.eval_ranges == "clean"):
            out = model(x, op)
        row = {"epoch": epoch, "loss": float(loss.detach()), "epoch_time_s": epoch_time,
               "train_acc": accuracy(out, y, train_mask), "val_acc": accuracy(out, y, val_mask),
               "test_acc": accuracy(out, y, test_mask)}
        history.append(row)
        if row["val_acc"] > best["best_val_acc"]:
            best = {"best_val_acc": row["val_acc"], "test_acc": row["test_acc"], "best_epoch": epoch}
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if ckpt_path is not None and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs):
            save_checkpoint(ckpt_path, {
                "config": config.to_dict(), "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                "best": best, "best_state": best_state, "history": history,
            })
        if on_epoch is not None:
            on_epoch(run, {**row, "best_val_acc": best["best_val_acc"], "test_at_best": best["test_acc"],
                           "best_epoch": best["best_epoch"], "epochs": config.epochs, "seed": seed})

    model.load_state_dict(best_state)
    model.eval()
    # The first epoch also runs the quantizers' range search: leave it out of the per-epoch time.
    times = [h["epoch_time_s"] for h in history[1:]] or [h["epoch_time_s"] for h in history] or [0.0]
    result = {"seed": seed, **best, "final_test_acc": history[-1]["test_acc"] if history else 0.0,
              "epoch_time_s": sorted(times)[len(times) // 2], "diverged_epoch": diverged, "history": history}
    return result, model


# -- several runs ----------------------------------------------------------------------------------
def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def run_training(config: TrainConfig, out: str | Path | None = None, *, resume: bool = False,
                 on_epoch: EpochCallback | None = None, graph: Graph | None = None) -> dict:
    """Train ``config.runs`` models (seeds ``seed .. seed + runs - 1``); returns the metrics dict.

    With ``resume``, completed runs under ``out`` are read back and the interrupted one continues
    from its checkpoint.
    """
    config = config.validated().resolved()
    if resume and out is None:
        raise ConfigError("--resume needs --out (the folder of the run to continue)")
    graph = graph if graph is not None else load_dataset(config)
    if graph.y is None:
        raise DataError(f"{graph.name}: the graph has no labels, so there is nothing to train on")
    out = Path(out) if out is not None else None
    results = []
    for run in range(config.runs):
        seed = config.seed + run
        run_dir = out / "runs" / f"seed-{seed}" if out is not None else None
        done = run_dir / "result.json" if run_dir is not None else None
        if resume and done is not None and done.exists():
            results.append(json.loads(done.read_text()))
            continue
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        g = split_for_run(graph, config, run)
        result, model = train_model(config, g, seed=seed, run_dir=run_dir, resume=resume, on_epoch=on_epoch, run=run)
        if run_dir is not None:
            headline = {k: v for k, v in result.items() if k != "history"}
            # The run's own seed in the file's config: its split, and what eval/quantize/export rebuild.
            run_config = dataclasses.replace(config, seed=seed, runs=1)
            save_model(run_dir / "model.pt", model, run_config, g.num_features, g.num_classes, headline,
                       split=split_digest(g))
            _write_json(done, result)
        results.append(result)

    metrics = {
        "config": config.to_dict(),
        "dataset": {"name": graph.name, "nodes": graph.num_nodes, "edges": graph.num_edges,
                    "features": graph.num_features, "classes": graph.num_classes},
        "runs": [{k: v for k, v in r.items() if k != "history"} for r in results],
        "summary": summarize(results),
    }
    if out is not None:
        best_run = max(range(len(results)), key=lambda i: results[i]["best_val_acc"])
        best_model = out / "runs" / f"seed-{results[best_run]['seed']}" / "model.pt"
        tmp = out / f".model.pt.tmp-{os.getpid()}"
        shutil.copyfile(best_model, tmp)
        os.replace(tmp, out / "model.pt")
        metrics["model_seed"] = results[best_run]["seed"]
        _write_json(out / "metrics.json", metrics)
    return metrics
