"""The qgnn ops on every device against the PyTorch references: the CUDA kernels' correctness suite.

Each test runs once per device: ``cpu`` (the compiled CPU kernels, or the reference where the
extension lacks one) and ``cuda`` (``csrc/cuda``; skipped with the stated reason where no GPU is
present). Inputs are built on the CPU, moved to the device, and the result is compared on the CPU
with the reference computed from the CPU inputs: bit for bit, except weighted SpMM (float sums,
compared within float32 rounding). The cases are the ones the device-math harness uses
(test_device_math.py): odd widths, empty rows, isolated nodes, duplicate edges, degree skew, every
bit width, BT grids.
"""

from __future__ import annotations

import pytest
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels.gemm import gemm_reference
from qgnn_cli.kernels.pack import pack_reference, unpack_reference, words_per_row
from qgnn_cli.kernels.quantize import quantize_pack_reference
from qgnn_cli.kernels.rounding import qmax_of
from qgnn_cli.kernels.spmm import spmm_reference, spmm_requant_reference
from tests.conftest import requires_cuda
from tests.kernels.test_device_math import GEMM_CASES, GRIDS, OUT_GRIDS, SPMM_GRIDS, reference_args, spmm_case

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
BITS = (1, 2, 4, 8)


def to(case: dict, device: str) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in case.items()}


def run_spmm(case: dict, device: str, out_grid=None) -> torch.Tensor:
    d = to(case, device)
    common = dict(mult=d["mult"], values=d["values"], row_scale=d["row_scale"])
    if out_grid is None:
        out = kernels.spmm(d["indptr"], d["indices"], d["packed"], d["bits"], d["cols"], d["scale"], d["zero"],
                           **common)
    else:
        ob, oscale, ozero, omult, oskew = out_grid
        out = kernels.spmm_requant(d["indptr"], d["indices"], d["packed"], d["bits"], d["cols"], d["scale"],
                                   d["zero"], ob, oscale, ozero, out_mult=omult, out_skew=oskew, **common)
    assert out.device.type == device
    return out.cpu()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 33), (5, 128), (64, 31), (0, 5), (4, 0)])
def test_pack_unpack(device, bits, shape, seeded):
    codes = torch.randint(0, 2**bits, shape, dtype=torch.uint8, generator=seeded)
    packed = kernels.pack(codes.to(device), bits)
    assert torch.equal(packed.cpu(), pack_reference(codes, bits))
    assert torch.equal(kernels.unpack(packed, bits, shape[1]).cpu(), unpack_reference(pack_reference(codes, bits),
                                                                                       bits, shape[1]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("cols", [1, 13, 64, 100])
def test_quantize_pack(device, grid, cols, seeded):
    bits, scale, zero, mult, skew = grid
    x = (torch.randn(9, cols, generator=seeded) * mult * qmax_of(bits) * scale / 2).to(torch.float32)
    x[0, 0] = (0.5 - zero) * scale  # an exact tie
    got = kernels.quantize_pack(x.to(device), bits, scale, zero, mult, skew).cpu()
    assert torch.equal(got, quantize_pack_reference(x, bits, scale, zero, mult, skew))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["random", "empty_rows", "no_edges", "skew"])
@pytest.mark.parametrize("grid", SPMM_GRIDS)
@pytest.mark.parametrize("cols", [1, 37, 128])
def test_spmm_bit_exact(device, kind, grid, cols, seeded):
    bits, mult, zero = grid
    case = spmm_case(kind, bits, mult, min(zero, mult * qmax_of(bits)), cols, seeded, row_scale=kind != "no_edges")
    assert torch.equal(run_spmm(case, device), spmm_reference(*reference_args(case)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["random", "skew"])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("out_grid", OUT_GRIDS)
def test_spmm_requant_bit_exact(device, kind, bits, out_grid, seeded):
    case = spmm_case(kind, bits, 1, 1, 45, seeded)
    assert torch.equal(run_spmm(case, device, out_grid), spmm_requant_reference(*reference_args(case), *out_grid))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["random", "skew"])
@pytest.mark.parametrize("bits", BITS)
def test_weighted_spmm_within_float_rounding(device, kind, bits, seeded):
    case = spmm_case(kind, bits, 1, 1, 40, seeded, weighted=True)
    expected = spmm_reference(*reference_args(case))
    got = run_spmm(case, device)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()) + 1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bits", BITS)
def test_spmm_on_misaligned_packed_rows(device, bits, seeded):
    """A contiguous view that starts one word into its storage: no 16-byte loads possible."""
    case = spmm_case("random", bits, 1, 1, 128, seeded)
    packed = case["packed"]
    storage = torch.zeros(packed.numel() + 1, dtype=torch.int32, device=device)
    storage[1:] = packed.reshape(-1).to(device)
    view = storage[1:].view(packed.shape)
    d = to(case, device)
    got = kernels.spmm(d["indptr"], d["indices"], view, bits, 128, d["scale"], d["zero"], row_scale=d["row_scale"])
    assert torch.equal(got.cpu(), spmm_reference(*reference_args(case)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bits", (2, 4))
def test_spmm_power_law_graph(device, bits, seeded):
    """Thousands of rows with lognormal degrees: both SpMM kernels, many blocks, requantised output."""
    num_rows, cols = 6000, 96
    degrees = torch.exp(torch.randn(num_rows, generator=seeded) * 1.3 + 1.5).clamp(max=4000).to(torch.int64)
    degrees[:3] = torch.tensor([0, 9000, 1])
    indptr = torch.zeros(num_rows + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(degrees, 0)
    indices = torch.randint(0, num_rows, (int(indptr[-1]),), generator=seeded).to(torch.int32)
    codes = torch.randint(0, 2**bits, (num_rows, cols), dtype=torch.uint8, generator=seeded)
    case = dict(indptr=indptr, indices=indices, values=None, packed=pack_reference(codes, bits), bits=bits, cols=cols,
                mult=1, scale=0.01, zero=1, row_scale=torch.rand(num_rows, generator=seeded) + 0.5)
    assert torch.equal(run_spmm(case, device), spmm_reference(*reference_args(case)))
    out_grid = (2, 0.05, 2, 1, 0)
    assert torch.equal(run_spmm(case, device, out_grid), spmm_requant_reference(*reference_args(case), *out_grid))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", GEMM_CASES)
@pytest.mark.parametrize("shape", [(9, 7, 1), (9, 7, 100), (130, 70, 257), (1, 65, 64), (0, 3, 8), (4, 0, 8)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_gemm_bit_exact(device, case, shape, with_bias, seeded):
    a_bits, a_mult, a_zero, w_bits, w_mult = case
    n, o, k = shape
    a = pack_reference(torch.randint(0, 2**a_bits, (n, k), dtype=torch.uint8, generator=seeded), a_bits)
    w = pack_reference(torch.randint(0, 2**w_bits, (o, k), dtype=torch.uint8, generator=seeded), w_bits)
    w_scale = torch.rand(o, generator=seeded, dtype=torch.float32) * 0.1 + 1e-3
    w_zero = torch.randint(0, w_mult * qmax_of(w_bits) + 1, (o,), generator=seeded, dtype=torch.int32)
    bias = torch.randn(o, generator=seeded, dtype=torch.float32) if with_bias else None
    got = kernels.gemm(a.to(device), a_bits, k, 0.0311, a_zero, w.to(device), w_bits, w_scale.to(device),
                       w_zero.to(device), a_mult=a_mult, w_mult=w_mult,
                       bias=bias.to(device) if bias is not None else None)
    expected = gemm_reference(a, a_bits, k, a_mult, 0.0311, a_zero, w, w_bits, w_mult, w_scale, w_zero, bias)
    assert torch.equal(got.cpu(), expected)


@requires_cuda
@pytest.mark.parametrize("op", ["pack", "unpack", "quantize_pack", "spmm", "spmm_requant", "gemm"])
def test_cuda_kernel_is_registered(op):
    assert kernels.extension_available(), "the C++ extension did not build; see docs/CUDA.md"
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"qgnn::{op}", "CUDA"), (
        f"qgnn::{op} has no CUDA kernel: was the extension built with a CUDA torch and nvcc? (docs/CUDA.md)"
    )


@requires_cuda
def test_cuda_ops_use_the_current_stream(seeded):
    case = spmm_case("random", 2, 1, 1, 64, seeded)
    expected = spmm_reference(*reference_args(case))
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = run_spmm(case, "cuda")
    stream.synchronize()
    assert torch.equal(got, expected)
