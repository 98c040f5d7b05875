"""End-to-end inference benchmark: the same model at FP32 (plain PyTorch, PyG) and packed INT8/INT4/INT2.

:func:`run_inference_bench` builds the model once (FP32 weights; for timing it need not be trained),
derives each packed variant by post-training calibration on the graph and an in-memory export, then
times every variant interleaved in one process (``timing.time_interleaved``: warm-up, rounds, medians).
Each variant also gets one instrumented pass (time per stage: GEMM, aggregation, re-quantization,
other), its peak resident memory (``memory.peak_memory``), its model size, and the bytes per edge its
aggregations move, from which the speedup the bytes alone would allow (the ceiling) follows.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from qgnn_cli.bench.fp32 import a_hat_sparse, fp32_forward, fp32_prealloc_forward
from qgnn_cli.bench.memory import peak_memory
from qgnn_cli.bench.pyg import pyg_available, pyg_forward
from qgnn_cli.bench.timing import time_interleaved
from qgnn_cli.data import Graph
from qgnn_cli.errors import ConfigError
from qgnn_cli.export import PackedGraph, PackedModel, pack_model, write_artifact
from qgnn_cli.export.ptq import calibrate, quantized_config
from qgnn_cli.export.siteops import STAGES, StageClock
from qgnn_cli.kernels import amx_enabled, selected_isa, words_per_row
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import TrainConfig, model_from_config, node_features, save_model

BASELINES = ("fp32", "fp32_prealloc", "pyg")
PACKED_BITS = (8, 4, 2)
LINE = 64  # bytes per cache line: a random gather touches at least one
# SMP's multiplier grows by eta_lambda * alpha_th * |E| per step while the energy is under its budget
# (METHOD.md §4): with the FP32 default alpha_th (0.1) that is 22 per step on a 2M-node graph of 22M
# entries, and the constraint step 2 eta lambda A(dX) turns anti-smoothing. The untrained model's energy
# then explodes (measured at 200k nodes, K = 32: E_k 1e-6 -> 1e8 by step 22); with lambda unbounded below
# it overflowed to inf/NaN, in FP32 too, and PTQ calibration got NaN ranges. The bench caps that growth
# for every variant; Cora (0.013 per step) and PubMed (0.11) keep the default.
MAX_LAMBDA_STEP = 0.25


@dataclass
class BenchSpec:
    model: str = "gcn"
    layers: int = 2
    hidden: int = 128
    bits: tuple[int, ...] = PACKED_BITS
    reps: int = 5
    warmup: int = 1
    pyg: bool = True
    seed: int = 0


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "isa": selected_isa(),
            "gemm_units": "amx-int8" if selected_isa() == "avx512" and amx_enabled() else "simd",
            "torch": torch.__version__, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _file_bytes(write) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        write(path)
        return path.stat().st_size


def _prop_width(kind: str, spec: BenchSpec, num_classes: int) -> int:
    return spec.hidden if kind == "gcn" else num_classes


def _aggregations(kind: str, layers: int, prop: str) -> int:
    return layers if kind == "gcn" else layers * (2 if prop == "smp" else 1)


def bytes_per_edge(width: int, bits: int | None) -> dict:
    """What one edge of one aggregation reads: the neighbour's feature row and its column index."""
    row = width * 4 if bits is None else words_per_row(width, bits) * 4
    index = 8 if bits is None else 4  # torch's int64 CSR vs the kernels' int32 columns
    return {"feature_bytes_per_edge": row, "index_bytes_per_edge": index, "bytes_per_edge": row + index,
            "cache_lines_per_edge": max(1, math.ceil(row / LINE))}


def bench_alpha_th(config: TrainConfig, num_entries: int) -> float:
    """The SMP alpha_th the bench runs every variant with: the config's, capped by ``MAX_LAMBDA_STEP``."""
    resolved = config.resolved()
    return min(resolved.alpha_th, MAX_LAMBDA_STEP / (resolved.eta_lambda * max(num_entries, 1)))


def run_inference_bench(graph: Graph, spec: BenchSpec, *, normalize_features: bool = True,
                        progress=None) -> dict:
    if spec.model not in ("gcn", "smp"):
        raise ConfigError(f"unknown model {spec.model!r}: expected gcn or smp")
    for b in spec.bits:
        if b not in PACKED_BITS:
            raise ConfigError(f"packed bit widths are {PACKED_BITS}, got {b}")
    say = progress or (lambda msg: None)
    torch.manual_seed(spec.seed)
    config = TrainConfig(model=spec.model, layers=spec.layers, hidden=spec.hidden, bits=32, dataset=graph.name,
                         normalize_features=normalize_features).validated()
    op = GraphOperator.from_adj(graph.adj)
    if spec.model == "smp":
        config = dataclasses.replace(config, alpha_th=bench_alpha_th(config, op.num_entries)).validated()
    model = model_from_config(config, graph.num_features, graph.num_classes).eval()
    x = node_features(graph, config).contiguous()
    fp32_model_bytes = _file_bytes(lambda p: save_model(p, model, config, graph.num_features, graph.num_classes))

    say("calibrating and packing the quantized variants")
    packed: dict[str, PackedModel] = {}
    sizes: dict[str, int] = {}
    for bits in spec.bits:
        qconfig = quantized_config(config, bits)
        qmodel = model_from_config(qconfig, graph.num_features, graph.num_classes)
        qmodel.load_state_dict(model.state_dict())
        calibrate(qmodel, x, op)
        tensors, meta = pack_model(qmodel, qconfig.to_dict())
        sizes[f"int{bits}"] = _file_bytes(lambda p: write_artifact(p, tensors, meta))
        packed[f"int{bits}"] = PackedModel(tensors, meta, f"int{bits}")
        del qmodel
    del op
    pg = PackedGraph.of(graph)
    a_hat = a_hat_sparse(graph.adj)
    energy = "identity"

    variants = {
        "fp32": fp32_forward(model, spec.model, a_hat),
        "fp32_prealloc": fp32_prealloc_forward(model, spec.model, a_hat, graph.num_nodes),
    }
    if spec.pyg and pyg_available():
        variants["pyg"] = pyg_forward(model, spec.model, a_hat)
    calls = {name: (lambda f=f: f(x)) for name, f in variants.items()}
    for name, pm in packed.items():
        calls[name] = lambda pm=pm: pm.forward(pg, x, energy=energy)

    # The first warm-up call of each variant also measures its peak memory (one-time tables included).
    say(f"warm-up with peak memory: {', '.join(calls)}")
    peaks = {name: peak_memory(fn) for name, fn in calls.items()} if spec.warmup else {}
    say(f"timing: {spec.reps} interleaved rounds")
    timings = time_interleaved(calls, reps=spec.reps, warmup=max(spec.warmup - 1, 0))

    say("stage split")
    width = _prop_width(spec.model, spec, graph.num_classes)
    fp32_bytes = bytes_per_edge(width, None)
    results: dict[str, dict] = {}
    for name, fn in calls.items():
        t = timings[name]
        row = {"median_s": t.median, "min_s": t.spread[0], "max_s": t.spread[1], "runs_s": t.seconds}
        bits = None if name in BASELINES else int(name[3:])
        row.update(bytes_per_edge(width, bits))
        row["byte_ceiling_vs_fp32"] = fp32_bytes["bytes_per_edge"] / row["bytes_per_edge"]
        row["feature_byte_ratio_vs_fp32"] = fp32_bytes["feature_bytes_per_edge"] / row["feature_bytes_per_edge"]
        row["cache_line_ceiling_vs_fp32"] = fp32_bytes["cache_lines_per_edge"] / row["cache_lines_per_edge"]
        row["model_bytes"] = sizes.get(name, fp32_model_bytes)
        row["model_size_ratio_vs_fp32_file"] = fp32_model_bytes / row["model_bytes"]
        if bits is not None:
            clock = StageClock()
            packed[name].forward(pg, x, energy=energy, clock=clock)
            total = sum(clock.seconds.values())
            row["stages_s"] = dict(clock.seconds)
            row["stage_share"] = {k: (v / total if total else 0.0) for k, v in clock.seconds.items()}
        row["peak_memory_bytes"] = peaks[name] if name in peaks else peak_memory(fn)
        results[name] = row
    for name, row in results.items():
        for base in BASELINES:
            if base in results:
                row[f"speedup_vs_{base}"] = results[base]["median_s"] / row["median_s"]

    nnz = pg.num_entries
    return {
        "graph": {"name": graph.name, "nodes": graph.num_nodes, "edges": graph.num_edges,
                  "entries_a_plus_i": nnz, "avg_degree": nnz / max(graph.num_nodes, 1),
                  "features": graph.num_features, "classes": graph.num_classes},
        "model": {"kind": spec.model, "layers": spec.layers, "hidden": spec.hidden,
                  "propagation_width": width, "aggregations": _aggregations(spec.model, spec.layers, "smp"),
                  "smp_energy": "identity ||dX||^2 - <dX, A dX> (all variants)" if spec.model == "smp" else None,
                  "smp_alpha_th": config.resolved().alpha_th if spec.model == "smp" else None},
        "reps": spec.reps, "warmup": spec.warmup,
        "machine": machine_info(),
        "stages": list(STAGES),
        "baselines": [b for b in BASELINES if b in results],
        "variants": results,
    }
