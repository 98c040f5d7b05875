"""`qgnn train`: quantization-aware training. Parses options into a TrainConfig, calls
``qgnn_cli.train.run_training`` and shows a progress bar and the final table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qgnn_cli.cli.output import console
from qgnn_cli.errors import ConfigError
from qgnn_cli.train import TrainConfig, run_training
from qgnn_cli.train.metrics import fmt_pct


def _default(name: str, why: str = "") -> str:
    """``" (default X)."``: the TrainConfig default, so that --help cannot drift from the library."""
    return f" (default {getattr(TrainConfig, name)}{'; ' + why if why else ''})."


def _site_bits(items: list[str] | None) -> dict[str, int] | None:
    if not items:
        return None
    out = {}
    for item in items:
        group, sep, bits = item.partition("=")
        if not sep or not bits.strip().lstrip("-").isdigit():
            raise ConfigError(f"--site-bits expects GROUP=BITS (e.g. weight=8), got {item!r}")
        out[group.strip()] = int(bits)
    return out


def train(
    dataset: Optional[str] = typer.Argument(None, help="Dataset name (cora, citeseer, pubmed, ...) or a path to an .npz graph" + _default("dataset")),
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML file with any of these options (flags override it)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder with the datasets (default $QGNN_DATA; Cora is embedded)."),
    bits: Optional[int] = typer.Option(None, "--bits", help="Bit width of every site: 32 (off), 8, 4, 2 or 1" + _default("bits")),
    site_bits: Optional[list[str]] = typer.Option(None, "--site-bits", help="Per-group override GROUP=BITS; groups: input, weight, linear, agg, update. Repeatable."),
    bt: Optional[str] = typer.Option(None, "--bt", help="2-bit truncation: none, bt or bt*" + _default("bt")),
    model: Optional[str] = typer.Option(None, "--model", help="smp (the paper's) or gcn (deep quantized GCN stack)" + _default("model")),
    prop: Optional[str] = typer.Option(None, "--prop", help="smp, or appnp (no smoothness constraint; ablation)" + _default("prop")),
    smp_grad: Optional[str] = typer.Option(None, "--smp-grad", help="authors (A_hat dX) or exact (L dX) constraint step" + _default("smp_grad")),
    constraint: Optional[bool] = typer.Option(None, "--constraint/--no-constraint", help="gcn: bound each layer's change energy (BDMM; default on)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="K propagation steps (smp) or GCN depth (gcn)" + _default("layers")),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Hidden width" + _default("hidden")),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Full-batch training epochs" + _default("epochs")),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate of the weights" + _default("lr")),
    lr_alpha: Optional[float] = typer.Option(None, "--lr-alpha", help="Learning rate of the range multipliers" + _default("lr_alpha", "the paper's 1e-4 leaves them stuck")),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay of the weights (not of the range multipliers)" + _default("weight_decay")),
    lr_step: Optional[int] = typer.Option(None, "--lr-step", help="Decay the weight learning rate every this many epochs" + _default("lr_step")),
    lr_gamma: Optional[float] = typer.Option(None, "--lr-gamma", help="Factor of that decay" + _default("lr_gamma")),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout rate (default 0.8 FP32, 0.5 quantized)."),
    alpha_th: Optional[float] = typer.Option(None, "--alpha-th", help="Smoothness bound of SMP (default per bit width: 0.1 FP32, 1e-5 INT8/INT4, 1e-4 INT2, 0.2 BT, 0.01 BT*)."),
    eta_lambda: Optional[float] = typer.Option(None, "--eta-lambda", help="SMP: ascent rate of the multiplier lambda" + _default("eta_lambda")),
    mu: Optional[float] = typer.Option(None, "--mu", help="SMP: weight of the smoothness term" + _default("mu")),
    eta: Optional[float] = typer.Option(None, "--eta", help="SMP: step size of the descent step" + _default("eta")),
    eta_s: Optional[float] = typer.Option(None, "--eta-s", help="SMP: step size of the slack" + _default("eta_s")),
    gcn_lambda_lr: Optional[float] = typer.Option(None, "--gcn-lambda-lr", help="gcn: ascent rate of the per-layer multipliers" + _default("gcn_lambda_lr")),
    normalize_features: Optional[bool] = typer.Option(
        None, "--normalize-features/--raw-features",
        help="Scale feature rows to unit L1 norm (default, as the authors' code), or keep them raw: binary "
             "bag-of-words features (Cora, CiteSeer) are then exact at every bit width."),
    eval_ranges: Optional[str] = typer.Option(
        None, "--eval-ranges", help="Frozen quantizer ranges: clean (default: re-taken at every evaluation from the "
                                    "dropout-free forward) or ema (moving average of the training batches, as the paper)."),
    split: Optional[str] = typer.Option(None, "--split", help="public (the stored split; of several, number seed mod their count) or random (re-drawn per seed)" + _default("split")),
    teacher: Optional[str] = typer.Option(
        None, "--teacher", help="Distil from a trained run (its --out folder, one model per seed, or a model.pt) of the "
                                "same dataset, --split and --seed: its class probabilities on every node become a "
                                "second target. Typically the FP32 run for a 2-bit student."),
    init_from: Optional[str] = typer.Option(
        None, "--init-from", help="Start from the weights of a trained run (its --out folder, one model per seed, or a "
                                  "model.pt) of the same dataset, --split, --seed and model shape: QAT warm-started "
                                  "from the FP32 run instead of from random weights."),
    kd_weight: Optional[float] = typer.Option(None, "--kd-weight", help="Weight of the distillation term" + _default("kd_weight")),
    kd_temperature: Optional[float] = typer.Option(None, "--kd-temperature", help="Softmax temperature of the distillation term" + _default("kd_temperature")),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the weights, the dropout and a random split" + _default("seed")),
    runs: Optional[int] = typer.Option(None, "--runs", help="Seeds seed .. seed+runs-1; mean ± std reported" + _default("runs")),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="Write a checkpoint every this many epochs (with --out)" + _default("checkpoint_every")),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for model.pt, metrics.json and checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoints."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="CPU threads for torch (default: torch's). With 1, reruns are bit-identical in every "
                                "process; with more, some results depend on the process's memory layout."),
) -> None:
    """Quantization-aware training with learned ranges and smoothness-aware propagation."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    given = {
        "dataset": dataset, "data_root": data_root, "bits": bits, "site_bits": _site_bits(site_bits), "bt": bt,
        "model": model, "prop": prop, "smp_grad": smp_grad, "constraint": constraint, "layers": layers,
        "hidden": hidden, "epochs": epochs, "lr": lr, "lr_alpha": lr_alpha, "weight_decay": weight_decay,
        "lr_step": lr_step, "lr_gamma": lr_gamma, "dropout": dropout, "alpha_th": alpha_th,
        "eta_lambda": eta_lambda, "mu": mu, "eta": eta, "eta_s": eta_s, "gcn_lambda_lr": gcn_lambda_lr,
        "normalize_features": normalize_features, "eval_ranges": eval_ranges, "split": split, "teacher": teacher,
        "init_from": init_from,
        "kd_weight": kd_weight, "kd_temperature": kd_temperature, "seed": seed, "runs": runs,
        "checkpoint_every": checkpoint_every,
    }
    given = {k: v for k, v in given.items() if v is not None}
    config = TrainConfig.from_toml(config_file, given) if config_file else TrainConfig.from_dict(given)
    config = config.resolved()

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[int, int] = {}

        def on_epoch(run: int, row: dict) -> None:
            if run not in tasks:
                tasks[run] = progress.add_task(f"seed {row['seed']}", total=row["epochs"], status="")
            status = (f"loss {row['loss']:.3f}  val {100 * row['val_acc']:.1f}  test {100 * row['test_acc']:.1f}"
                      f"  best val {100 * row['best_val_acc']:.1f} -> test {100 * row['test_at_best']:.1f}")
            progress.update(tasks[run], completed=row["epoch"] + 1, status=status)

        metrics = run_training(config, out, resume=resume, on_epoch=on_epoch)

    table = Table(title=f"{config.dataset}: {config.model}, {config.layers} layers, bits {config.bits}"
                  + (f" ({config.bt})" if config.bt != "none" else ""), title_justify="left")
    for col in ("seed", "best epoch", "val acc", "test acc", "epoch time"):
        table.add_column(col, justify="right")
    for r in metrics["runs"]:
        table.add_row(str(r["seed"]), str(r["best_epoch"]), f"{100 * r['best_val_acc']:.1f}",
                      f"{100 * r['test_acc']:.1f}", f"{1000 * r['epoch_time_s']:.1f} ms")
    s = metrics["summary"]
    table.add_row("mean ± std", "", fmt_pct(s["best_val_acc"]), fmt_pct(s["test_acc"]),
                  f"{1000 * s['epoch_time_s']['mean']:.1f} ms", style="bold")
    console.print(table)
    if out is not None:
        console.print(f"model: {out / 'model.pt'}  metrics: {out / 'metrics.json'}")
