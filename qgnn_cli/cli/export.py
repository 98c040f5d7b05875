"""`qgnn export MODEL -o model.qgnn`: a quantized model.pt to a bit-packed artefact, with its size."""

from __future__ import annotations

from pathlib import Path

import typer

from qgnn_cli.cli.output import console, key_value_table, print_json
from qgnn_cli.errors import ConfigError
from qgnn_cli.export import export_model
from qgnn_cli.train.model_file import load_model_file


def export(
    model_path: Path = typer.Argument(..., help="A model.pt written by `qgnn train` or `qgnn quantize`."),
    out: Path = typer.Option(..., "-o", "--out", help="The .qgnn file to write."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Pack weights as b-bit codes with every site's scale and zero point; header with version and checksum."""
    model, config, extra = load_model_file(model_path)
    if not config.quantized:
        raise ConfigError(f"{model_path} is a full-precision model: quantize it first (`qgnn quantize`)")
    info = export_model(model, config, out, split=extra.get("split"))
    model_bytes = model_path.stat().st_size
    info.update({
        "model_file": str(model_path), "model_file_bytes": model_bytes,
        "smaller_than_model_file": model_bytes / info["file_bytes"],
        "smaller_than_fp32_weights": info["fp32_weight_bytes"] / info["file_bytes"],
    })
    if json_out:
        print_json(info)
        return
    rows = {
        "artefact": f"{out} ({info['file_bytes']:,} bytes)",
        "model file": f"{model_path} ({model_bytes:,} bytes)",
        "FP32 weights": f"{info['fp32_weight_bytes']:,} bytes",
        "size vs model file": f"{info['smaller_than_model_file']:.1f}x smaller",
        "size vs FP32 weights": f"{info['smaller_than_fp32_weights']:.1f}x smaller",
        "bits (weights / activations)": f"{info['bits']['weights']} / {info['bits']['activations']}",
    }
    console.print(key_value_table(f"exported {info['model']} model", rows))
