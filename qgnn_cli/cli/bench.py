"""`qgnn bench`: end-to-end inference of one model at FP32 (PyTorch, PyG) and packed INT8/INT4/INT2."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from qgnn_cli.bench.inference import PACKED_BITS, BenchSpec, run_inference_bench
from qgnn_cli.bench.report import ceiling_lines, markdown, save_section, table
from qgnn_cli.cli.output import console, err_console, print_json
from qgnn_cli.data import load_graph, synthetic_power_law
from qgnn_cli.errors import ConfigError

DEFAULT_RESULTS = Path("benchmarks/RESULTS.md")


def _bits(text: str) -> tuple[int, ...]:
    try:
        bits = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--bits expects a comma-separated list such as 8,4,2, got {text!r}") from None
    if not bits or any(b not in PACKED_BITS for b in bits):
        raise ConfigError(f"--bits must be drawn from {PACKED_BITS}, got {text!r}")
    return bits


def bench(
    dataset: str | None = typer.Option(None, "--dataset", help="A dataset name or .npz path."),
    synthetic: int | None = typer.Option(None, "--synthetic", help="Instead: a synthetic power-law graph of NODES nodes."),
    avg_degree: float = typer.Option(10.0, "--avg-degree", help="Mean directed edges per node of the synthetic graph."),
    features: int | None = typer.Option(None, "--features", help="Synthetic input features (default: --width)."),
    classes: int = typer.Option(16, "--classes", help="Synthetic classes (the SMP model's propagation width)."),
    model: str = typer.Option("gcn", "--model", help="gcn | smp."),
    width: int = typer.Option(128, "--width", help="Hidden width."),
    depth: int = typer.Option(2, "--depth", help="GCN layers, or SMP propagation steps K."),
    bits: str = typer.Option("8,4,2", "--bits", help="Packed bit widths to run."),
    reps: int = typer.Option(5, "--reps", help="Interleaved timing rounds (medians reported)."),
    warmup: int = typer.Option(1, "--warmup", help="Warm-up calls per variant."),
    pyg: bool = typer.Option(True, "--pyg/--no-pyg", help="Include PyG GCNConv/APPNP when installed."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda (the CUDA packed-kernel benchmark)."),
    data_root: Path | None = typer.Option(None, "--data-root", envvar="QGNN_DATA", help="Dataset folder."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic graph and the weights."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    save: bool = typer.Option(False, "--save", help="Append this run to benchmarks/RESULTS.md (inference section)."),
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="The file --save writes."),
) -> None:
    """Time one model's inference: FP32 as written, FP32 preallocated, PyG, packed INT8/INT4/INT2."""
    command = "qgnn " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "qgnn bench"
    if (dataset is None) == (synthetic is None):
        raise ConfigError("give exactly one of --dataset NAME or --synthetic NODES")
    if reps < 1 or warmup < 0 or width < 1 or depth < 1:
        raise ConfigError("--reps, --width and --depth must be >= 1 and --warmup >= 0")
    bit_list = _bits(bits)
    if model not in ("gcn", "smp"):
        raise ConfigError(f"unknown model {model!r}: expected gcn or smp")
    if device == "cuda":
        _bench_cuda(synthetic or 2_000_000, avg_degree, width, bit_list, reps, warmup, seed, json_out, save, results)
        return
    if device != "cpu":
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    say = (lambda msg: None) if json_out else (lambda msg: err_console.print(f"[dim]{msg}[/]"))
    if synthetic is not None:
        say(f"building a synthetic graph: {synthetic:,} nodes, mean degree {avg_degree:g}")
        try:
            graph = synthetic_power_law(synthetic, avg_degree, features or width, classes, seed)
        except ValueError as exc:
            raise ConfigError(f"--synthetic: {exc}") from None
    else:
        graph = load_graph(dataset, data_root)
    spec = BenchSpec(model=model, layers=depth, hidden=width, bits=bit_list, reps=reps, warmup=warmup, pyg=pyg,
                     seed=seed)
    result = run_inference_bench(graph, spec, normalize_features=synthetic is None, progress=say)
    result["command"] = command
    if save:
        save_section(results, markdown(result, command))
    if json_out:
        print_json(result)
        return
    console.print(table(result))
    for line in ceiling_lines(result):
        console.print(line, highlight=False)
    if save:
        console.print(f"recorded in {results}")


def _bench_cuda(nodes, avg_degree, width, bit_list, reps, warmup, seed, json_out, save, results) -> None:
    from qgnn_cli.bench.cuda import bench_cuda_spmm, results_markdown

    result = bench_cuda_spmm(nodes, avg_degree, width, bit_list, reps, warmup=warmup, seed=seed)
    if save:
        save_section(results, results_markdown(result))
    if json_out:
        print_json(result)
        return
    console.print(results_markdown(result), highlight=False)
