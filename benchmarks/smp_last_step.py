"""Cost of the last SMP step's float results in the packed runtime (one process, interleaved).

    python benchmarks/smp_last_step.py [--nodes 200000] [--layers 10] [--reps 7]

A calibrated INT2 model of the paper's (hidden 128, 16 classes, a synthetic power-law graph, mean
degree 10) runs as trained (the last step's A(X) and A(dX) off, so they pass between the fused step
kernels in float32) and with those two sites given the previous step's grids (every step quantized,
as before the change). Same kernels, same other grids: the difference is what the float results cost.
Prints the median and every round, in ms; not a test.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from qgnn_cli.bench.timing import time_interleaved  # noqa: E402
from qgnn_cli.data import synthetic_power_law  # noqa: E402
from qgnn_cli.export import PackedGraph, PackedModel, pack_model  # noqa: E402
from qgnn_cli.export.ptq import calibrate, quantized_config  # noqa: E402
from qgnn_cli.nn import GraphOperator  # noqa: E402
from qgnn_cli.train import TrainConfig, model_from_config, node_features  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=200_000)
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args(argv)
    k = args.layers
    graph = synthetic_power_law(args.nodes, 10.0, 128, 16, seed=0)
    torch.manual_seed(0)
    config = quantized_config(TrainConfig(model="smp", layers=k, hidden=128, bits=32).validated(), 2)
    model = model_from_config(config, graph.num_features, graph.num_classes)
    x = node_features(graph, config).contiguous()
    calibrate(model, x, GraphOperator.from_adj(graph.adj))
    as_trained = PackedModel(*pack_model(model, config.to_dict()))
    quantized = copy.copy(as_trained)
    quantized.grids = dict(as_trained.grids)
    for agg in ("agg_x", "agg_dx"):
        quantized.grids[f"prop.steps.{k - 1}.{agg}.output"] = as_trained.grids[f"prop.steps.{k - 2}.{agg}.output"]
    g = PackedGraph.of(graph)
    calls = {"last step's results float (as trained)": lambda: as_trained.forward(g, x, energy="identity"),
             "last step's results quantized": lambda: quantized.forward(g, x, energy="identity")}
    for name, t in time_interleaved(calls, reps=args.reps, warmup=1).items():
        print(f"{name}: {1000 * t.median:.1f} ms  [{' '.join(f'{1000 * s:.0f}' for s in t.seconds)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
