"""What SMP's multiplier does at the paper's constants: lambda and the change energy, step by step.

    python benchmarks/smp_multiplier.py --dataset cora --configs FP32,INT8,INT4,INT2,INT2-BT* --seed 0
    python benchmarks/smp_multiplier.py --dataset pubmed --configs INT2 --alpha-th 1.0   # another budget

For each config of accuracy.py, one run is trained with that benchmark's protocol (the random split
of the seed, 200 epochs, one torch thread: the same bits as its log's run of that seed). Its
best-validation model then runs two forwards that record, after every propagation step k, the
multiplier lambda_k and the change energy E_k = tr(dX^T L dX) (nn/smp.py, ``update_multipliers``;
the budget is alpha_th * |E|): an eval forward (clean ranges: what the packed export computes) and a
training-mode forward (dropout and batch ranges, as in a training step; no update is taken). Prints
Markdown tables; not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # accuracy.py, in this process and in the workers


def trace_one(task: dict) -> dict:
    """Train one config's run of the seed; the (lambda, E_k) trace of an eval and a training forward."""
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from accuracy import CONFIGS

    from qgnn_cli.nn import GraphOperator, maybe_sparse
    from qgnn_cli.quant.calibrate import clean_ranges
    from qgnn_cli.train import TrainConfig
    from qgnn_cli.train.loop import load_dataset, node_features, split_for_run, train_model

    fields = {**CONFIGS[task["config"]], "dataset": task["dataset"], "data_root": task["data_root"],
              "layers": task["layers"], "seed": task["seed"], "split": "random", "epochs": task["epochs"], "runs": 1}
    if task["alpha_th"] is not None:
        fields["alpha_th"] = task["alpha_th"]
    config = TrainConfig.from_dict(fields).validated().resolved()
    graph = split_for_run(load_dataset(config), config, 0)
    result, model = train_model(config, graph, seed=task["seed"])
    x, op = maybe_sparse(node_features(graph, config)), GraphOperator.from_adj(graph.adj)
    traces = {}
    with torch.no_grad():
        traces["eval"] = []
        with clean_ranges(model, config.eval_ranges == "clean"):
            model(x, op, traces["eval"])
        model.train()
        torch.manual_seed(task["seed"])
        traces["train"] = []
        model(x, op, traces["train"])
    return {**task, "budget": config.alpha_th * op.num_entries, "alpha_th": config.alpha_th,
            "val": result["best_val_acc"], "test": result["test_acc"], "best_epoch": result["best_epoch"],
            "traces": traces}


def table(rows: list[dict], mode: str) -> list[str]:
    head = "| step k | " + " | ".join(r["config"] for r in rows) + " |"
    lines = [head, "|" + "---|" * (len(rows) + 1),
             "| budget alpha_th * \\|E\\| | " + " | ".join(f"{r['budget']:.4g} ({r['alpha_th']:g})" for r in rows) + " |"]
    for k in range(len(rows[0]["traces"][mode])):
        cells = []
        for r in rows:
            lam, _s, e = r["traces"][mode][k]
            cells.append(f"{lam:.3g} / {e:.3g}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--configs", type=lambda s: s.split(","), default=["FP32", "INT8", "INT4", "INT2", "INT2-BT*"])
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--alpha-th", type=float, default=None, help="every config's alpha_th (default: its own)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-root", default=os.environ.get("QGNN_DATA", str(HERE.parents[1] / "shared" / "datasets")))
    args = p.parse_args(argv)
    from accuracy import CONFIGS

    for c in args.configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c}: expected one of {', '.join(CONFIGS)}")
    tasks = [{"dataset": args.dataset, "config": c, "layers": args.layers, "seed": args.seed, "epochs": args.epochs,
              "alpha_th": args.alpha_th, "data_root": args.data_root} for c in args.configs]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(trace_one, tasks))
    print(f"{args.dataset}, K={args.layers}, seed {args.seed}: lambda_k / E_k after each step")
    print("runs (best validation epoch: val / test %): " + "; ".join(
        f"{r['config']} epoch {r['best_epoch']}: {100 * r['val']:.1f} / {100 * r['test']:.1f}" for r in rows))
    for mode, what in (("eval", "eval forward (clean ranges)"), ("train", "training-mode forward (dropout, batch ranges)")):
        print(f"\n{what}:\n")
        print("\n".join(table(rows, mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
