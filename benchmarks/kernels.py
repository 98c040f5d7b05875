"""Packed CPU kernels against the FP32 baselines and the peer, in one process, variants interleaved.

SpMM (aggregation ``out = A @ X``, unweighted CSR) on graphs from Cora size to a synthetic power-law
graph of 2M nodes / 20M edges, at feature widths 16, 64, 128, 256:

* ``fp32 sparse.mm``: ``torch.sparse.mm(A, X)`` on an int64 CSR, as a user (or PyG) calls it;
* ``fp32 addmm``: ``torch.addmm(out, A, X, beta=0, out=out)`` into a preallocated output (the best
  FP32 torch; the stable baseline);
* ``fbgemm intB``: FBGEMM's row-wise n-bit embedding bag at the same bit width
  (``torch.ops.quantized.embedding_bag_{byte,4bit,2bit}_rowwise_offsets``, sum mode, int64 indices),
  the library a user would reach for instead;
* ``floor intB``: ``qgnn::gather_floor``, touch every neighbour's packed row and nothing else;
* ``qgnn intB->f32`` (``qgnn::spmm``) and ``qgnn intB->intB`` (``qgnn::spmm_requant``: re-quantised
  and packed in the epilogue, the form a propagation step feeds the next).

GEMM (``n x 128 @ 128 x 128``): ``torch.mm`` FP32 and bf16 into preallocated outputs, torch's int8
``quantized.linear`` with the oneDNN engine, and ``qgnn::gemm`` with INT2/INT4 activations and weights.

The packed ops are called through ``torch.ops.qgnn`` (inputs validated once, as the packed runtime
does). Every timed input is allocated with transparent huge pages requested (the packed ops ask for
them on their own outputs), so the FP32 baselines and the packed kernels see the same TLB behaviour.
Medians of ``--reps`` interleaved repetitions after one warm-up; bytes per second count the logical
traffic (neighbour rows, indices, index pointers, output). Writes its table to benchmarks/RESULTS.md
between the ``kernels`` markers unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from qgnn_cli import kernels
from qgnn_cli.kernels.rounding import qparams

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- BEGIN kernels -->", "<!-- END kernels -->"
FBGEMM = {8: "byte", 4: "4bit", 2: "2bit"}

_libc = ctypes.CDLL(None, use_errno=True)
_MADV_HUGEPAGE = 14


def huge_empty(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An untouched tensor whose pages are advised to be huge (a hint; ignored where unsupported)."""
    t = torch.empty(*shape, dtype=dtype)
    nbytes = t.numel() * t.element_size()
    huge = 2 << 20
    if sys.platform.startswith("linux") and nbytes >= 2 * huge:
        begin = (t.data_ptr() + huge - 1) // huge * huge
        end = (t.data_ptr() + nbytes) // huge * huge
        if end > begin:
            _libc.madvise(ctypes.c_void_p(begin), ctypes.c_size_t(end - begin), _MADV_HUGEPAGE)
    return t


def huge_copy(x: torch.Tensor) -> torch.Tensor:
    out = huge_empty(*x.shape, dtype=x.dtype)
    out.copy_(x)
    return out


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return (f"{model}, {os.cpu_count()} vCPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"qgnn ISA {kernels.selected_isa()}")


# --- graphs -------------------------------------------------------------------------------------


def load_graphs(quick: bool, only: list[str] | None = None) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, indptr int64, indices int64) per graph; ``only`` picks from cora, 100k, 200k, 2m."""
    from qgnn_cli.data.embedded import load_embedded_cora
    from qgnn_cli.data.synthetic import synthetic_power_law

    keys = only or (["cora", "100k"] if quick else ["cora", "200k", "2m"])
    out = []
    if "cora" in keys:
        cora = load_embedded_cora()
        out.append(("Cora", cora.adj.indptr, cora.adj.indices))
    sizes = {"100k": 100_000, "200k": 200_000, "2m": 2_000_000}
    for n, deg in [(sizes[key], 10.05) for key in keys if key in sizes]:
        g = synthetic_power_law(n, deg, 1, 2, seed=0)
        out.append((f"power-law {n // 1000}k", g.adj.indptr, g.adj.indices))
        del g
    return out


# --- timing -------------------------------------------------------------------------------------


def run_interleaved(variants: dict, reps: int) -> dict[str, float]:
    """Median seconds per variant: one warm-up round, then ``reps`` rounds, variants interleaved."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps + 1):
        for name, fn in variants.items():
            gc.collect()
            t0 = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - t0
            del result
            if rep:
                times[name].append(elapsed)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fmt_ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:,.0f}" if ms >= 100 else (f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}")


# --- SpMM -----------------------------------------------------------------------------------------


def spmm_case(name: str, indptr: torch.Tensor, indices64: torch.Tensor, width: int, reps: int) -> list[dict]:
    n = indptr.numel() - 1
    nnz = indices64.numel()
    gen = torch.Generator().manual_seed(width)
    x = huge_empty(n, width)
    for start in range(0, n, 1 << 18):  # fill in blocks: no (N, F) temporary
        x[start:start + (1 << 18)] = torch.randn(min(1 << 18, n - start), width, generator=gen)
    indices32 = huge_copy(indices64.to(torch.int32))
    indices64 = huge_copy(indices64)
    indptr = huge_copy(indptr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adj = torch.sparse_csr_tensor(indptr, indices64, torch.ones(nnz), (n, n))
    out = huge_empty(n, width)
    lo, hi = float(x.min()), float(x.max())

    variants: dict = {
        "fp32 sparse.mm": lambda: torch.sparse.mm(adj, x),
        "fp32 addmm": lambda: torch.addmm(out, adj, x, beta=0.0, out=out),
    }
    traffic: dict[str, int] = {
        "fp32 sparse.mm": nnz * (8 + 4 + 4 * width) + (n + 1) * 8 + n * width * 4,
        "fp32 addmm": nnz * (8 + 4 + 4 * width) + (n + 1) * 8 + n * width * 4,
    }
    for bits in (8, 4, 2):
        scale_t, zero_t = qparams(lo, hi, bits)
        scale, zero = float(scale_t), int(zero_t)
        packed = huge_copy(kernels.quantize_pack(x, bits, scale, zero))
        row_bytes = packed.shape[1] * 4
        qweight = getattr(torch.ops.quantized, f"embedding_bag_{FBGEMM[bits]}_prepack")(x)
        qweight = huge_copy(qweight)
        bag = getattr(torch.ops.quantized, f"embedding_bag_{FBGEMM[bits]}_rowwise_offsets")
        variants[f"fbgemm int{bits}"] = (
            lambda bag=bag, qw=qweight: bag(qw, indices64, indptr, False, 0, False, None, None, True))
        traffic[f"fbgemm int{bits}"] = nnz * (8 + qweight.shape[1]) + (n + 1) * 8 + n * width * 4
        variants[f"floor int{bits}"] = lambda p=packed: torch.ops.qgnn.gather_floor(indptr, indices32, p)
        traffic[f"floor int{bits}"] = nnz * (4 + row_bytes) + (n + 1) * 8 + n * 4
        variants[f"qgnn int{bits}->f32"] = (lambda p=packed, b=bits, s=scale, z=zero: torch.ops.qgnn.spmm(
            indptr, indices32, None, p, b, width, 1, s, z, None))
        traffic[f"qgnn int{bits}->f32"] = nnz * (4 + row_bytes) + (n + 1) * 8 + n * width * 4
        # The output grid: the range of the aggregate (max degree times the input range is far too
        # wide for a real model, but the kernel's work does not depend on the grid).
        variants[f"qgnn int{bits}->int{bits}"] = (lambda p=packed, b=bits, s=scale, z=zero: torch.ops.qgnn.spmm_requant(
            indptr, indices32, None, p, b, width, 1, s, z, None, b, 8.0 * (hi - lo) / (2**b - 1), 2 ** (b - 1), 1, 0))
        traffic[f"qgnn int{bits}->int{bits}"] = nnz * (4 + row_bytes) + (n + 1) * 8 + n * row_bytes
    medians = run_interleaved(variants, reps)
    rows = []
    for key, t in medians.items():
        bits = next((b for b in (8, 4, 2) if f"int{b}" in key), None)
        rows.append({
            "graph": name, "nodes": n, "edges": nnz, "width": width, "variant": key, "seconds": t,
            "vs_sparse_mm": medians["fp32 sparse.mm"] / t, "vs_addmm": medians["fp32 addmm"] / t,
            "vs_fbgemm": medians[f"fbgemm int{bits}"] / t if bits and key.startswith("qgnn") else None,
            "over_floor": t / medians[f"floor int{bits}"] if bits and key.startswith("qgnn") else None,
            "gbps": traffic[key] / t / 1e9,
        })
    return rows


# --- GEMM -----------------------------------------------------------------------------------------


def gemm_case(n: int, k: int, o: int, reps: int) -> list[dict]:
    gen = torch.Generator().manual_seed(7)
    x = huge_empty(n, k)
    for start in range(0, n, 1 << 18):
        x[start:start + (1 << 18)] = torch.randn(min(1 << 18, n - start), k, generator=gen)
    w = torch.randn(o, k, generator=gen) / k**0.5
    wt = w.t().contiguous()
    out = huge_empty(n, o)
    xb, wtb = huge_copy(x.to(torch.bfloat16)), wt.to(torch.bfloat16)
    outb = huge_empty(n, o, dtype=torch.bfloat16)
    variants: dict = {
        "fp32 torch.mm(out=)": lambda: torch.mm(x, wt, out=out),
        "bf16 torch.mm(out=)": lambda: torch.mm(xb, wtb, out=outb),
    }
    previous_engine = torch.backends.quantized.engine
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
        xs = float(x.abs().max()) / 127
        qx = torch.quantize_per_tensor(x, xs, 128, torch.quint8)
        qw = torch.quantize_per_tensor(w, float(w.abs().max()) / 127, 0, torch.qint8)
        packed_w = torch.ops.quantized.linear_prepack(qw, None)
        ys = float((x @ wt).abs().max()) / 127
        variants["int8 quantized.linear (oneDNN)"] = lambda: torch.ops.quantized.linear(qx, packed_w, ys, 128)
    lo, hi = float(x.min()), float(x.max())
    for bits in (8, 4, 2):  # 8: the int16 path of the AVX2 unit (8-bit weights)
        a_scale, a_zero = (float(v) for v in qparams(lo, hi, bits))
        a_packed = kernels.quantize_pack(x, bits, a_scale, int(a_zero))
        w_lo, w_hi = w.min(dim=1).values, w.max(dim=1).values
        w_scale, w_zero = qparams(w_lo, w_hi, bits)
        w_codes = torch.clamp(torch.round(w / w_scale[:, None]) + w_zero[:, None], 0, 2**bits - 1).to(torch.uint8)
        w_packed = kernels.pack(w_codes, bits)
        w_zero32 = w_zero.to(torch.int32)
        variants[f"qgnn gemm int{bits} -> f32"] = (lambda a=a_packed, b=bits, s=a_scale, z=int(a_zero), wp=w_packed,
                                                    ws=w_scale, wz=w_zero32: torch.ops.qgnn.gemm(
            a, b, k, 1, s, z, wp, b, 1, ws, wz, None))
        y_scale = 2 * float((x[:4096] @ wt).abs().max()) / (2**bits - 1)
        variants[f"qgnn gemm int{bits} -> int{bits}"] = (lambda a=a_packed, b=bits, s=a_scale, z=int(a_zero),
                                                          wp=w_packed, ws=w_scale, wz=w_zero32, ys=y_scale:
                                                          torch.ops.qgnn.gemm_requant(a, b, k, 1, s, z, wp, b, 1, ws, wz,
                                                                                      None, b, ys, 2 ** (b - 1), 1, 0))
    medians = run_interleaved(variants, reps)
    torch.backends.quantized.engine = previous_engine
    base = medians["fp32 torch.mm(out=)"]
    return [{"variant": key, "n": n, "seconds": t, "vs_mm": base / t,
             "gmacs": n * k * o / t / 1e9} for key, t in medians.items()]


# --- report ---------------------------------------------------------------------------------------


def spmm_table(rows: list[dict]) -> str:
    lines = ["| graph | F | variant | median ms | vs sparse.mm | vs addmm | vs FBGEMM | / floor | GB/s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        def opt(v, fmt="{:.2f}x"):
            return fmt.format(v) if v is not None else ""
        lines.append(
            f"| {r['graph']} ({r['nodes']:,} nodes, {r['edges']:,} edges) | {r['width']} | {r['variant']} | "
            f"{fmt_ms(r['seconds'])} | {r['vs_sparse_mm']:.2f}x | {r['vs_addmm']:.2f}x | {opt(r['vs_fbgemm'])} | "
            f"{opt(r['over_floor'])} | {r['gbps']:.1f} |")
    return "\n".join(lines)


def gemm_table(rows: list[dict]) -> str:
    lines = ["| n x 128 @ 128 x 128 | variant | median ms | vs FP32 torch.mm(out=) | GMAC/s |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| n = {r['n']:,} | {r['variant']} | {fmt_ms(r['seconds'])} | {r['vs_mm']:.2f}x | "
                     f"{r['gmacs']:.0f} |")
    return "\n".join(lines)


def targets_table(spmm_rows: list[dict], gemm_rows: list[dict]) -> str:
    """The issue's targets against this run: SpMM at F = 128 on the largest graph, and the GEMM."""
    lines = ["| target (issue 5) | variant | measured | met |", "|---|---|---:|:---:|"]
    if spmm_rows:
        largest = max(r["edges"] for r in spmm_rows)
        pick = {r["variant"]: r for r in spmm_rows if r["edges"] == largest and r["width"] == 128}
        for bits, vs_addmm, vs_fbgemm in ((2, 7.0, 5.0), (4, 5.0, 3.0)):
            for out in ("f32", f"int{bits}"):
                r = pick.get(f"qgnn int{bits}->{out}")
                if r is None:
                    continue
                name = f"qgnn int{bits}->{out}"
                lines.append(f"| INT{bits} >= {vs_addmm:g}x vs preallocated addmm | {name} | {r['vs_addmm']:.2f}x | "
                             f"{'yes' if r['vs_addmm'] >= vs_addmm else 'no'} |")
                lines.append(f"| INT{bits} >= {vs_fbgemm:g}x vs FBGEMM int{bits} | {name} | {r['vs_fbgemm']:.2f}x | "
                             f"{'yes' if r['vs_fbgemm'] >= vs_fbgemm else 'no'} |")
                lines.append(f"| within 1.4x of the gather floor | {name} | {r['over_floor']:.2f}x | "
                             f"{'yes' if r['over_floor'] <= 1.4 else 'no'} |")
    for r in gemm_rows:
        if r["variant"].startswith("qgnn"):
            lines.append(f"| GEMM >= 4x vs FP32 torch.mm(out=) | {r['variant']} | {r['vs_mm']:.2f}x | "
                         f"{'yes' if r['vs_mm'] >= 4 else 'no'} |")
    return "\n".join(lines)


def write_section(text: str) -> None:
    section = f"{BEGIN}\n{text.rstrip()}\n{END}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        current = head + section + tail
    else:
        current = current.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="Cora and a 100k-node graph, widths 16 and 128, n = 200k GEMM")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per variant (default 7, quick 3)")
    parser.add_argument("--widths", type=int, nargs="+", default=None, help="feature widths (default 16 64 128 256)")
    parser.add_argument("--graphs", nargs="+", choices=["cora", "100k", "200k", "2m"], default=None,
                        help="graphs (default cora 200k 2m; quick: cora 100k)")
    parser.add_argument("--gemm-rows", type=int, default=None, help="n of the GEMM (default 2,000,000)")
    parser.add_argument("--skip-gemm", action="store_true")
    parser.add_argument("--skip-spmm", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--note", default="", help="a line added under the tables (e.g. machine load)")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.quick else 7)
    widths = args.widths or ([16, 128] if args.quick else [16, 64, 128, 256])
    gemm_rows = args.gemm_rows or (200_000 if args.quick else 2_000_000)
    command = "python benchmarks/kernels.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {command}\n# {started}; {machine()}", flush=True)

    spmm_rows: list[dict] = []
    if not args.skip_spmm:
        for name, indptr, indices in load_graphs(args.quick, args.graphs):
            for width in widths:
                rows = spmm_case(name, indptr, indices, width, reps)
                spmm_rows += rows
                print(spmm_table(rows).split("\n", 2)[2], flush=True)
                gc.collect()
    gemm_rows_out: list[dict] = [] if args.skip_gemm else gemm_case(gemm_rows, 128, 128, reps)
    if gemm_rows_out:
        print(gemm_table(gemm_rows_out), flush=True)

    text = [f"## Packed CPU kernels (`benchmarks/kernels.py`)\n",
            f"Command: `{command}` — {started}.  ",
            f"Machine: {machine()}. Medians of {reps} interleaved repetitions in one process.",
            "The machine was shared with other developers' jobs during the run: absolute times move between runs;",
            "the ratios to the preallocated `addmm` and to the gather floor measured in the same run are the stable ones.",
            "`vs X` = X's median / this median (higher is faster); `/ floor` = this median / the gather floor at the",
            "same bit width (1.00x = the floor).\n"]
    if args.note:
        text.append(args.note + "\n")
    text += ["### Targets\n", targets_table(spmm_rows, gemm_rows_out), ""]
    if spmm_rows:
        text += ["### SpMM (aggregation), unweighted CSR\n", spmm_table(spmm_rows), ""]
    if gemm_rows_out:
        text += ["### GEMM\n", gemm_table(gemm_rows_out), ""]
    if not args.no_write:
        write_section("\n".join(text))
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
