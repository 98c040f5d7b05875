"""`qgnn quantize MODEL --bits B -o out.pt`: post-training quantization of a full-precision model."""

from __future__ import annotations

from pathlib import Path

import typer

from qgnn_cli.cli.output import console, key_value_table, print_json
from qgnn_cli.data import load_graph, split_digest
from qgnn_cli.errors import ConfigError
from qgnn_cli.export.ptq import post_training_quantize
from qgnn_cli.train import save_model, split_for_run, trained_split
from qgnn_cli.train.model_file import load_model_file


def _site_bits(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        group, _, bits = item.partition("=")
        try:
            out[group.strip()] = int(bits)
        except ValueError:
            raise ConfigError(f"--site-bits expects GROUP=BITS, got {item!r}") from None
    return out


def quantize(
    model_path: Path = typer.Argument(..., help="A full-precision model.pt (from `qgnn train --bits 32`)."),
    bits: int = typer.Option(..., "--bits", help="Bit width of every site: 8, 4, 2 or 1."),
    bt: str = typer.Option("none", "--bt", help="INT2 truncation: none | bt | bt*."),
    site_bits: list[str] = typer.Option([], "--site-bits", help="Per-group override GROUP=BITS (repeatable)."),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="Short QAT fine-tune after calibration."),
    out: Path = typer.Option(..., "-o", "--out", help="The quantized model.pt to write."),
    dataset: str | None = typer.Option(None, "--dataset", help="Calibration graph (default: the model's)."),
    data_root: Path | None = typer.Option(None, "--data-root", envvar="QGNN_DATA", help="Dataset folder."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Calibrate quantizer ranges on the graph (dropout off), optionally fine-tune; the PTQ baseline."""
    fp32, config, extra = load_model_file(model_path)
    if dataset is None:
        graph = trained_split(load_graph(config.dataset, data_root), config.resolved(), extra.get("split"))
    else:
        config.dataset = dataset
        graph = split_for_run(load_graph(dataset, data_root), config.resolved(), 0)
    if graph.y is None:
        raise ConfigError(f"{graph.name} has no labels to calibrate and report on")
    model, qconfig, numbers = post_training_quantize(fp32, config, graph, bits, bt, _site_bits(site_bits),
                                                     finetune_epochs, seed=config.seed)
    save_model(out, model, qconfig, graph.num_features, graph.num_classes, numbers, split=split_digest(graph))
    result = {"model": str(out), "source": str(model_path), "bits": bits, "bt": bt, "dataset": graph.name, **numbers}
    if json_out:
        print_json(result)
        return
    console.print(key_value_table(f"post-training quantization to {bits} bits", {
        k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in result.items()}))
