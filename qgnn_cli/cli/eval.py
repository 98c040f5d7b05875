"""`qgnn eval MODEL --dataset NAME`: accuracy of a packed artefact (.qgnn) or a model.pt on a graph."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer

from qgnn_cli.cli.output import console, key_value_table, print_json
from qgnn_cli.data import apply_split, load_graph
from qgnn_cli.errors import DataError
from qgnn_cli.export import PackedModel
from qgnn_cli.export.pack_model import model_shape
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import TrainConfig, node_features, trained_split
from qgnn_cli.train.model_file import load_model_file
from qgnn_cli.train.metrics import accuracy


def _masks(graph) -> dict:
    return {name: getattr(graph, f"{name}_mask") for name in ("train", "val", "test")
            if getattr(graph, f"{name}_mask", None) is not None}


def evaluate(
    model_path: Path = typer.Argument(..., help="A .qgnn artefact (packed inference) or a model.pt (PyTorch)."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset name or .npz path (default: the model's)."),
    data_root: Path | None = typer.Option(None, "--data-root", envvar="QGNN_DATA", help="Dataset folder."),
    split: str | None = typer.Option(None, "--split", help="public | random | N (default: the split the model trained on)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of --split random, or which stored split public takes (default: the model's)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Run the whole forward pass and report accuracy per split (packed kernels for a .qgnn file)."""
    packed = model_path.suffix != ".pt"
    if packed:
        runner = PackedModel.load(model_path)
        config, digest = TrainConfig.from_dict(runner.config), runner.meta.get("split")
    else:
        model, config, extra = load_model_file(model_path)
        digest = extra.get("split")
    config = config.resolved()
    graph = load_graph(dataset or config.dataset, data_root)
    if split is None and seed is None and dataset is None:  # its own split, checked against the file
        graph = trained_split(graph, config, digest)
    else:
        graph = apply_split(graph, split or config.split, config.seed if seed is None else seed)
    start = time.perf_counter()
    if packed:
        out = runner.forward(graph)
    else:
        op = GraphOperator.from_adj(graph.adj)
        x = node_features(graph, config)
        num_features = model_shape(model)[0]
        if x.shape[1] != num_features:
            raise DataError(f"{model_path} was built for {num_features} input features, the graph has {x.shape[1]}")
        with torch.no_grad():
            out = model(x, op)
    seconds = time.perf_counter() - start
    result = {"model": str(model_path), "runtime": "packed" if packed else "pytorch", "dataset": graph.name,
              "nodes": graph.num_nodes, "forward_s": seconds}
    if graph.y is not None:
        result.update({f"{k}_acc": accuracy(out, graph.y, m) for k, m in _masks(graph).items()})
    if json_out:
        print_json(result)
        return
    console.print(key_value_table(f"eval {model_path.name} on {graph.name}", {
        k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in result.items()}))
