"""GPU benchmark of the packed SpMM: INT2/INT4 against FP32 cuSPARSE, timed with CUDA events.

One process, one graph, every variant interleaved round by round (so a slow phase of the GPU
penalises all variants alike), medians of ``reps`` rounds. Variants:

* ``fp32_sparse_mm``: ``torch.sparse.mm(A, X)`` with int64 CSR indices, as a user or PyG calls it
  (cuSPARSE SpMM, a fresh output every call);
* ``fp32_addmm_prealloc``: ``torch.addmm(out, A32, X, beta=0, out=out)``, int32 indices, output
  preallocated: the fairest "best FP32 torch";
* ``fp32_mm``: the dense transform ``X @ W`` (N x F by F x F) with ``torch.mm``;
* ``int{b}_spmm`` / ``int{b}_spmm_requant``: ``qgnn::spmm`` to float32 and to packed codes;
* ``int{b}_gemm``: ``qgnn::gemm`` of the packed features by packed F x F weights;
* ``copy``: a device-to-device copy of the FP32 feature matrix, the bandwidth reference
  (``copy_gbps`` counts its read and its write).

The graph is generated on the device: lognormal out-degrees (sigma 1) with the requested mean,
destinations uniform at random (no locality), as in the CPU probe of KERNELS.md. The packed output
is checked against the reference on the first rows before timing. ``qgnn bench --device cuda``
calls :func:`bench_cuda_spmm`; :func:`results_markdown` formats a result for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Sequence

import torch

from qgnn_cli.errors import ConfigError, QgnnError

_SIGMA = 1.0
_CHECK_ROWS = 2000
_SPMM_OPS = ("spmm", "spmm_requant", "gemm", "quantize_pack")


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA benchmark cannot run here, or ``None`` when it can."""
    if not torch.cuda.is_available():
        build = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        return f"the CUDA benchmark needs a CUDA GPU: {build} (torch {torch.__version__})"
    from qgnn_cli.kernels.library import EXTENSION_ERROR, extension_available

    if not extension_available():
        return f"the qgnn extension is not built ({EXTENSION_ERROR}); see docs/CUDA.md"
    missing = [op for op in _SPMM_OPS if not torch._C._dispatch_has_kernel_for_dispatch_key(f"qgnn::{op}", "CUDA")]
    if missing:
        return (
            f"the qgnn extension was built without CUDA kernels (no CUDA kernel for {', '.join(missing)}); "
            "rebuild it with a CUDA torch and nvcc on PATH, see docs/CUDA.md"
        )
    return None


def _power_law_csr(num_nodes: int, avg_degree: float, gen: torch.Generator, device: torch.device):
    mu = math.log(avg_degree) - _SIGMA**2 / 2
    drawn = torch.empty(num_nodes, device=device).log_normal_(mu, _SIGMA, generator=gen)
    degrees = torch.floor(drawn + torch.rand(num_nodes, device=device, generator=gen)).to(torch.int64)
    degrees.clamp_(max=num_nodes)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64, device=device)
    torch.cumsum(degrees, 0, out=indptr[1:])
    nnz = int(indptr[-1])
    indices = torch.randint(0, num_nodes, (nnz,), device=device, generator=gen, dtype=torch.int32)
    return indptr, indices


def _time_events(variants: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call from CUDA events, variants interleaved within each round."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        events = []
        for name, fn in variants.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events.append((name, start, end))
        torch.cuda.synchronize()
        for name, start, end in events:
            times[name].append(start.elapsed_time(end))
    return times


def bench_cuda_spmm(
    num_nodes: int = 2_000_000,
    avg_degree: float = 10.0,
    feats: int = 128,
    bits_list: Sequence[int] = (2, 4),
    reps: int = 7,
    *,
    warmup: int = 2,
    seed: int = 0,
    device: str | torch.device = "cuda",
) -> dict:
    """Time packed SpMM (and GEMM) against FP32 torch on one GPU; see the module docstring.

    Returns a JSON-serialisable dict: device, versions, graph size, per-variant medians and spreads
    in milliseconds, speedups against ``fp32_sparse_mm`` and ``fp32_addmm_prealloc``, and the copy
    bandwidth. Raises :class:`QgnnError` when CUDA or the CUDA kernels are unavailable.
    """
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise QgnnError(reason)
    if num_nodes < 2 or avg_degree <= 0 or feats < 1 or reps < 1 or warmup < 0:
        raise ConfigError("need num_nodes >= 2, avg_degree > 0, feats >= 1, reps >= 1, warmup >= 0")
    bad = [b for b in bits_list if b not in (1, 2, 4, 8)]
    if bad or not bits_list:
        raise ConfigError(f"bits must be a non-empty subset of (1, 2, 4, 8), got {list(bits_list)}")

    from qgnn_cli import kernels
    from qgnn_cli.kernels.spmm import spmm_reference

    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    indptr, indices = _power_law_csr(num_nodes, avg_degree, gen, device)
    nnz = indices.numel()
    degrees = indptr[1:] - indptr[:-1]
    x = torch.randn(num_nodes, feats, device=device, generator=gen)
    weight = torch.randn(feats, feats, device=device, generator=gen) / math.sqrt(feats)
    ones = torch.ones(nnz, device=device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        adj64 = torch.sparse_csr_tensor(indptr, indices.to(torch.int64), ones, (num_nodes, num_nodes))
        adj32 = torch.sparse_csr_tensor(indptr.to(torch.int32), indices, ones, (num_nodes, num_nodes))
    out_f = torch.empty(num_nodes, feats, device=device)
    copy_dst = torch.empty_like(x)

    variants: dict[str, Callable[[], object]] = {
        "fp32_sparse_mm": lambda: torch.sparse.mm(adj64, x),
        "fp32_addmm_prealloc": lambda: torch.addmm(out_f, adj32, x, beta=0, out=out_f),
        "fp32_mm": lambda: torch.mm(x, weight, out=out_f),
        "copy": lambda: copy_dst.copy_(x),
    }
    notes: list[str] = []
    try:
        variants["fp32_addmm_prealloc"]()
    except RuntimeError as exc:  # an older torch without CSR addmm into out on CUDA
        del variants["fp32_addmm_prealloc"]
        notes.append(f"fp32_addmm_prealloc skipped: {exc}".splitlines()[0])

    lo, hi = float(x.min()), float(x.max())
    checked: dict[str, bool] = {}
    row_scale = degrees.clamp(min=1).to(torch.float32).rsqrt()
    for bits in bits_list:
        qmax = 2**bits - 1
        scale = max((hi - lo) / qmax, 1e-8)
        zero = int(min(max(round(-lo / scale), 0), qmax))
        packed = kernels.quantize_pack(x, bits, scale, zero)
        w_packed = kernels.quantize_pack(weight, bits, max(float(weight.abs().max()) * 2 / qmax, 1e-8), (qmax + 1) // 2)
        w_scale = torch.full((feats,), max(float(weight.abs().max()) * 2 / qmax, 1e-8), device=device)
        w_zero = torch.full((feats,), (qmax + 1) // 2, dtype=torch.int32, device=device)
        # Correctness on the first rows (the reference works in float64 on any device).
        m = min(_CHECK_ROWS, num_nodes)
        sub_indptr, sub_nnz = indptr[: m + 1], int(indptr[m])
        got = kernels.spmm(sub_indptr, indices[:sub_nnz], packed, bits, feats, scale, zero, row_scale=row_scale[:m])
        ref = spmm_reference(sub_indptr, indices[:sub_nnz], None, packed, bits, feats, 1, scale, zero, row_scale[:m])
        checked[f"int{bits}_spmm"] = bool(torch.equal(got, ref))

        def spmm(packed=packed, bits=bits, scale=scale, zero=zero):
            return kernels.spmm(indptr, indices, packed, bits, feats, scale, zero, row_scale=row_scale, check=False)

        def spmm_requant(packed=packed, bits=bits, scale=scale, zero=zero):
            return kernels.spmm_requant(indptr, indices, packed, bits, feats, scale, zero, bits, scale, zero,
                                        row_scale=row_scale, check=False)

        def gemm(packed=packed, bits=bits, scale=scale, zero=zero, w_packed=w_packed, w_scale=w_scale, w_zero=w_zero):
            return torch.ops.qgnn.gemm(packed, bits, feats, 1, scale, zero, w_packed, bits, 1, w_scale, w_zero, None)

        variants[f"int{bits}_spmm"] = spmm
        variants[f"int{bits}_spmm_requant"] = spmm_requant
        variants[f"int{bits}_gemm"] = gemm

    times = _time_events(variants, reps, warmup)
    medians = {name: statistics.median(t) for name, t in times.items()}
    timings = {name: {"median_ms": medians[name], "min_ms": min(t), "max_ms": max(t)} for name, t in times.items()}
    copy_bytes = 2 * x.numel() * x.element_size()

    def ratios(baseline: str) -> dict[str, float]:
        if baseline not in medians:
            return {}
        return {name: medians[baseline] / ms for name, ms in medians.items() if name.startswith("int") and ms > 0}

    props = torch.cuda.get_device_properties(device)
    return {
        "device": torch.cuda.get_device_name(device),
        "capability": f"sm_{props.major}{props.minor}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "graph": {"nodes": num_nodes, "edges": nnz, "max_degree": int(degrees.max()), "feats": feats,
                  "generator": f"lognormal out-degrees (sigma {_SIGMA}), uniform destinations, seed {seed}"},
        "reps": reps,
        "timings": timings,
        "speedup_vs_sparse_mm": ratios("fp32_sparse_mm"),
        "speedup_vs_addmm_prealloc": ratios("fp32_addmm_prealloc"),
        "copy_gbps": copy_bytes / (medians["copy"] * 1e-3) / 1e9 if medians["copy"] > 0 else float("nan"),
        "checked_against_reference": checked,
        "notes": notes,
    }


def results_markdown(result: dict) -> str:
    """A section for benchmarks/RESULTS.md from a :func:`bench_cuda_spmm` result."""
    g = result["graph"]
    lines = [
        f"### CUDA packed SpMM: {result['device']} ({result['capability']}), torch {result['torch']}, "
        f"CUDA {result['cuda']}",
        "",
        f"{g['nodes']:,} nodes, {g['edges']:,} edges (max degree {g['max_degree']:,}), F = {g['feats']}; "
        f"{g['generator']}. Medians of {result['reps']} interleaved rounds, CUDA events. "
        f"Copy bandwidth {result['copy_gbps']:.0f} GB/s.",
        "",
        "| variant | median ms (min-max) | vs sparse.mm | vs addmm prealloc |",
        "|---|---|---|---|",
    ]
    for name, t in result["timings"].items():
        s1 = result["speedup_vs_sparse_mm"].get(name)
        s2 = result["speedup_vs_addmm_prealloc"].get(name)
        lines.append(
            f"| {name} | {t['median_ms']:.2f} ({t['min_ms']:.2f}-{t['max_ms']:.2f}) | "
            f"{f'{s1:.1f}x' if s1 else ''} | {f'{s2:.1f}x' if s2 else ''} |"
        )
    checked = result["checked_against_reference"].items()
    checks = ", ".join(f"{k}: {'bit-exact' if v else 'MISMATCH'}" for k, v in checked)
    lines += ["", f"Checked against the reference on the first rows: {checks}."]
    lines += [f"Note: {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"
