"""`qgnn info`: versions, the compiled extension, CPU features and the kernel path in use."""

from __future__ import annotations

import platform

import torch
import typer

from qgnn_cli import __version__
from qgnn_cli import kernels
from qgnn_cli.cli.output import console, key_value_table, print_json
from qgnn_cli.kernels.library import EXTENSION_ERROR


def system_info() -> dict:
    """Everything `qgnn info` reports, as a dict (callable from Python)."""
    features = kernels.cpu_features()
    return {
        "qgnn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "extension": "built" if kernels.extension_available() else f"not built ({EXTENSION_ERROR})",
        "kernel_path": kernels.selected_isa(),
        "supported_paths": kernels.supported_isas(),
        "gemm_amx_int8": kernels.amx_enabled(),
        "cpu_features": features,
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_kernels": _cuda_kernels_built(),
    }


def _cuda_kernels_built() -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("qgnn::pack", "CUDA")


def info(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show versions, whether the C++ extension is built, CPU features and the kernel path chosen."""
    data = system_info()
    if json_out:
        print_json(data)
        return
    rows = {k: v for k, v in data.items() if k != "cpu_features"}
    rows["supported_paths"] = ", ".join(data["supported_paths"]) or "-"
    present = [name for name, ok in data["cpu_features"].items() if ok]
    rows["cpu_features"] = ", ".join(present) or "none detected"
    console.print(key_value_table("qgnn", rows))
