"""The CUDA kernels' per-element and per-row math, run on the CPU against the PyTorch references.

``csrc/common/packed_math.h`` and ``csrc/common/packed_rows.h`` hold every ``__host__ __device__``
function the kernels in ``csrc/cuda/`` are built from. ``device_math_harness.cpp`` (compiled here
with plain g++, no torch, no CUDA) calls them in loops where the kernels have threads; these tests
feed it random inputs and compare with ``qgnn_cli.kernels`` bit for bit. What is *not* covered here
is the thread mapping of the kernels and the device-only memory operations (vector loads, atomics):
``test_cuda_ops.py`` covers those on a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from qgnn_cli.kernels.gemm import gemm_reference
from qgnn_cli.kernels.pack import pack_reference, unpack_reference, words_per_row
from qgnn_cli.kernels.quantize import quantize_pack_reference
from qgnn_cli.kernels.rounding import BT_MULT, qmax_of, quantize
from qgnn_cli.kernels.spmm import spmm_reference, spmm_requant_reference

REPO = Path(__file__).resolve().parents[2]
HARNESS_SRC = Path(__file__).with_name("device_math_harness.cpp")
BITS = (1, 2, 4, 8)
SWAR_CAPACITY = {1: 65535, 2: 21845, 4: 4369, 8: 257}  # 65535 // qmax


def f32_bits(x: float) -> int:
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


@pytest.fixture(scope="session")
def harness(tmp_path_factory) -> Path:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++) on PATH to build the device-math harness")
    exe = tmp_path_factory.mktemp("harness") / "device_math_harness"
    cmd = [cxx, "-std=c++17", "-O2", f"-I{REPO / 'csrc' / 'common'}", str(HARNESS_SRC), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return exe


class Run:
    """One harness invocation: write params and arrays to a folder, run a mode, read out.bin."""

    def __init__(self, harness: Path, folder: Path):
        self.harness, self.folder = harness, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.params: dict[str, int] = {}

    def put(self, name: str, array) -> None:
        if isinstance(array, torch.Tensor):
            array = array.contiguous().numpy()
        np.ascontiguousarray(array).tofile(self.folder / name)

    def __call__(self, mode: str, dtype) -> np.ndarray:
        (self.folder / "params.txt").write_text("".join(f"{k} {int(v)}\n" for k, v in self.params.items()))
        proc = subprocess.run([str(self.harness), mode, str(self.folder)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return np.fromfile(self.folder / "out.bin", dtype=dtype)


def random_words(n: int, gen: torch.Generator) -> torch.Tensor:
    words = torch.randint(-(2**31), 2**31, (n,), dtype=torch.int64, generator=gen)
    words[:3] = torch.tensor([0, -1, 0x5A5A5A5A])  # all zero, all ones, a pattern
    return words.to(torch.int32)


# ---- per-word helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", BITS)
def test_unpack_word_matches_reference(harness, tmp_path, bits, seeded):
    words = random_words(500, seeded)
    run = Run(harness, tmp_path)
    run.put("words.bin", words)
    run.params["bits"] = bits
    got = run("unpack", np.uint32)
    expected = unpack_reference(words.view(-1, 1), bits, 32 // bits).reshape(-1)
    assert np.array_equal(got, expected.numpy().astype(np.uint32))


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("fill", ["max", "random"])
def test_integer_accumulation_up_to_capacity(harness, tmp_path, bits, fill, seeded):
    """SWAR16 fields, int32 lanes and the dp4a row sum agree with exact sums, at full capacity."""
    n = SWAR_CAPACITY[bits]
    words = torch.full((n,), -1, dtype=torch.int32) if fill == "max" else random_words(n, seeded)
    run = Run(harness, tmp_path)
    run.put("words.bin", words)
    run.params["bits"] = bits
    got = run("swar", np.int64)
    per = 32 // bits
    exact = unpack_reference(words.view(-1, 1), bits, per).to(torch.int64).sum(dim=0).numpy()
    assert np.array_equal(got[:per], exact), "SWAR16 fields"
    assert np.array_equal(got[per : 2 * per], exact), "int32 lanes"
    assert got[2 * per] == exact.sum(), "row_code_sum (byte-words and dp4a)"
    if fill == "max":
        assert exact.max() == n * qmax_of(bits) and exact.max() <= 65535


def test_dequantise_sum_rounds_like_torch(harness, tmp_path, seeded):
    n = 4000
    s = torch.randint(-(2**31) + 1, 2**31, (n,), dtype=torch.int64, generator=seeded)
    s[: n // 2] //= 2**12  # small sums too, exactly representable
    s[:4] = torch.tensor([0, 1, -1, 2**31 - 1])
    s = s.to(torch.int32)
    scale = torch.rand(n, generator=seeded, dtype=torch.float32) * 1e-2 + 1e-8
    rs = torch.rand(n, generator=seeded, dtype=torch.float32) * 2 - 0.5
    rs[:10] = 1.0
    run = Run(harness, tmp_path)
    run.put("s.bin", s), run.put("scale.bin", scale), run.put("rs.bin", rs)
    got = run("dequant", np.float32)
    expected = (s.to(torch.float32) * scale) * rs
    assert np.array_equal(got.view(np.uint32), expected.numpy().view(np.uint32))


GRIDS = [  # (bits, scale, zero, mult, skew)
    (1, 0.5, 0, 1, 0),
    (2, 0.25, 1, 1, 0),
    (2, 0.0123, 0, 1, 0),
    (4, 0.125, 7, 1, 0),
    (8, 0.0625, 128, 1, 0),
    (8, 0.0037, 0, 1, 0),
    (2, 0.25, 128, BT_MULT, 0),  # BT: the 8-bit grid truncated to 4 levels
    (2, 0.0117, 100, BT_MULT, 17),  # BT* with a skew
    (2, 0.5, 0, BT_MULT, -42),
    (1, 0.25, 2, 2, 1),  # even mult: exact ties in the coarse rounding
    (4, 0.25, 3, 3, -1),
]


@pytest.mark.parametrize("grid", GRIDS)
def test_requantise_matches_rounding_rule(harness, tmp_path, grid, seeded):
    bits, scale, zero, mult, skew = grid
    fine = mult * qmax_of(bits)
    # Exact ties at .5 on the fine grid, every level, clamping far outside, and random values.
    ties = (torch.arange(-fine - 4, 2 * fine + 4, dtype=torch.float32) + 0.5 - zero) * scale
    levels = (torch.arange(-3, fine + 4, dtype=torch.float32) - zero) * scale
    wild = torch.tensor([1e30, -1e30, 0.0, -0.0, scale * 1e6, -scale * 1e6], dtype=torch.float32)
    rand = (torch.rand(3000, generator=seeded) * 1.4 - 0.2) * fine * scale - zero * scale
    x = torch.cat([ties, levels, wild, rand]).to(torch.float32)
    run = Run(harness, tmp_path)
    run.put("x.bin", x)
    run.params.update(bits=bits, scale=f32_bits(scale), zero=zero, mult=mult, skew=skew)
    got = run("requant", np.uint8)
    expected = quantize(x, torch.tensor(scale, dtype=torch.float32), float(zero), bits, mult, skew)
    assert np.array_equal(got, expected.numpy())


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("shape", [(3, 1), (5, 17), (4, 33), (2, 128), (3, 0), (0, 9)])
def test_pack_words_match_reference(harness, tmp_path, bits, shape, seeded):
    codes = torch.randint(0, 2**bits, shape, dtype=torch.uint8, generator=seeded)
    run = Run(harness, tmp_path)
    run.put("codes.bin", codes)
    run.params.update(rows=shape[0], cols=shape[1], bits=bits)
    got = run("pack", np.int32)
    assert np.array_equal(got, pack_reference(codes, bits).reshape(-1).numpy())


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("cols", [1, 13, 64, 100])
def test_quantize_pack_matches_reference(harness, tmp_path, grid, cols, seeded):
    bits, scale, zero, mult, skew = grid
    x = (torch.randn(7, cols, generator=seeded) * mult * qmax_of(bits) * scale / 2).to(torch.float32)
    x[0, 0] = (0.5 - zero) * scale  # a tie
    run = Run(harness, tmp_path)
    run.put("x.bin", x)
    run.params.update(rows=7, cols=cols, bits=bits, scale=f32_bits(scale), zero=zero, mult=mult, skew=skew)
    got = run("quantize_pack", np.int32)
    expected = quantize_pack_reference(x, bits, scale, zero, mult, skew)
    assert np.array_equal(got, expected.reshape(-1).numpy())


# ---- SpMM: graph cases shared with test_cuda_ops.py ---------------------------------------------


def make_graph(kind: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(indptr int64, indices int32, num_src) for a named case."""
    if kind == "random":
        num_rows, num_src = 40, 35
        degrees = torch.randint(0, 12, (num_rows,), generator=gen)
    elif kind == "empty_rows":  # many rows without edges, and sources nobody reads
        num_rows, num_src = 30, 50
        degrees = torch.randint(0, 3, (num_rows,), generator=gen) * torch.randint(0, 2, (num_rows,), generator=gen)
    elif kind == "no_edges":
        num_rows, num_src = 6, 4
        degrees = torch.zeros(num_rows, dtype=torch.int64)
    elif kind == "skew":  # a few huge rows beside tiny ones: the long-row kernel and its batches
        num_rows, num_src = 12, 64
        degrees = torch.randint(0, 4, (num_rows,), generator=gen)
        degrees[2], degrees[7], degrees[9] = 5000, 700, 30000
    else:
        raise ValueError(kind)
    indptr = torch.zeros(num_rows + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(degrees.to(torch.int64), 0)
    indices = torch.randint(0, num_src, (int(indptr[-1]),), generator=gen, dtype=torch.int64).to(torch.int32)
    if kind == "random" and indices.numel() > 4:  # duplicate edges within a row
        start = int(indptr[int(torch.argmax(degrees))])
        indices[start + 1] = indices[start]
    return indptr, indices, num_src


SPMM_GRIDS = [(1, 1, 0), (2, 1, 1), (2, 1, 3), (4, 1, 8), (8, 1, 128), (8, 1, 0), (2, BT_MULT, 128), (2, BT_MULT, 0)]
OUT_GRIDS = [
    (2, 0.05, 1, 1, 0), (4, 0.02, 8, 1, 0), (8, 0.004, 128, 1, 0), (2, 0.01, 128, BT_MULT, 5), (1, 0.5, 1, 1, 0),
]


def max_vec(bits: int, weighted: bool) -> int:
    """The widest load spmm.cu picks (csrc/cuda/spmm.cu: max_vec)."""
    if not weighted:
        return 2 if bits == 1 else 4
    return 4 if bits == 8 else (2 if bits == 4 else 1)


def spmm_case(kind, bits, mult, zero, cols, gen, weighted=False, row_scale=True):
    indptr, indices, num_src = make_graph(kind, gen)
    codes = torch.randint(0, 2**bits, (num_src, cols), dtype=torch.uint8, generator=gen)
    packed = pack_reference(codes, bits)
    values = torch.rand(indices.numel(), generator=gen, dtype=torch.float32) * 2 - 0.5 if weighted else None
    rs = torch.rand(indptr.numel() - 1, generator=gen, dtype=torch.float32) + 0.1 if row_scale else None
    scale = 0.0173
    return dict(indptr=indptr, indices=indices, values=values, packed=packed, bits=bits, cols=cols, mult=mult,
                scale=scale, zero=zero, row_scale=rs)


def run_spmm(harness, folder, case, vec, long_row, groups, batch, out_grid=None):
    run = Run(harness, folder)
    run.put("indptr.bin", case["indptr"])
    run.put("indices.bin", case["indices"])
    run.put("packed.bin", case["packed"])
    run.put("values.bin", case["values"] if case["values"] is not None else np.zeros(0, np.float32))
    run.put("row_scale.bin", case["row_scale"] if case["row_scale"] is not None else np.zeros(0, np.float32))
    run.params.update(
        cols=case["cols"], bits=case["bits"], mult=case["mult"], scale=f32_bits(case["scale"]), zero=case["zero"],
        weighted=case["values"] is not None, has_row_scale=case["row_scale"] is not None,
        vec=vec, long_row=long_row, groups=groups, batch=batch, requant=out_grid is not None,
    )
    if out_grid is None:
        return torch.from_numpy(run("spmm", np.float32)).view(-1, case["cols"])
    ob, oscale, ozero, omult, oskew = out_grid
    run.params.update(out_bits=ob, out_scale=f32_bits(oscale), out_zero=ozero, out_mult=omult, out_skew=oskew)
    return torch.from_numpy(run("spmm", np.int32)).view(-1, words_per_row(case["cols"], ob))


def reference_args(case):
    return (case["indptr"], case["indices"], case["values"], case["packed"], case["bits"], case["cols"],
            case["mult"], case["scale"], case["zero"], case["row_scale"])


# (vec, long_row, groups, batch): the kernels' default schedule, and schedules that force the
# long-row path with several groups and flushes on small rows.
SCHEDULES = [("max", 512, 64, 1 << 30), (1, 512, 32, 1 << 30), ("max", 2, 3, 2), (1, 0, 5, 1 << 30)]


def vec_for(schedule_vec, bits, cols, weighted):
    v = max_vec(bits, weighted) if schedule_vec == "max" else schedule_vec
    return v if words_per_row(cols, bits) % v == 0 else 1


@pytest.mark.parametrize("kind", ["random", "empty_rows", "no_edges", "skew"])
@pytest.mark.parametrize("grid", SPMM_GRIDS)
@pytest.mark.parametrize("cols", [1, 37, 128])
def test_spmm_schedule_matches_reference_bit_for_bit(harness, tmp_path, kind, grid, cols, seeded):
    bits, mult, zero = grid
    zero = min(zero, mult * qmax_of(bits))
    case = spmm_case(kind, bits, mult, zero, cols, seeded, row_scale=kind != "no_edges")
    expected = spmm_reference(*reference_args(case))
    for n, (vec, long_row, groups, batch) in enumerate(SCHEDULES):
        if kind == "skew" and batch < 100:
            continue  # the 30000-edge row in batches of 2 is slow on the CPU and adds nothing
        got = run_spmm(harness, tmp_path / str(n), case, vec_for(vec, bits, cols, False), long_row, groups, batch)
        assert torch.equal(got, expected), f"schedule {n}: max diff {(got - expected).abs().max()}"


@pytest.mark.parametrize("kind", ["random", "skew"])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("out_grid", OUT_GRIDS)
def test_spmm_requant_matches_reference_bit_for_bit(harness, tmp_path, kind, bits, out_grid, seeded):
    cols = 45  # output words shared between chunks for most bit-width pairs
    case = spmm_case(kind, bits, 1, 1, cols, seeded)
    expected = spmm_requant_reference(*reference_args(case), *out_grid)
    for n, (vec, long_row, groups, batch) in enumerate(SCHEDULES[:3]):
        got = run_spmm(harness, tmp_path / str(n), case, vec_for(vec, bits, cols, False), long_row, groups, batch,
                       out_grid)
        assert torch.equal(got, expected), f"schedule {n}"


@pytest.mark.parametrize("kind", ["random", "skew"])
@pytest.mark.parametrize("bits", BITS)
def test_weighted_spmm_within_float_rounding(harness, tmp_path, kind, bits, seeded):
    cols = 40
    case = spmm_case(kind, bits, 1, 1, cols, seeded, weighted=True)
    expected = spmm_reference(*reference_args(case))
    for n, (vec, long_row, groups, batch) in enumerate(SCHEDULES[:3]):
        got = run_spmm(harness, tmp_path / str(n), case, vec_for(vec, bits, cols, True), long_row, groups, batch)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()) + 1e-6)


# ---- GEMM ---------------------------------------------------------------------------------------


GEMM_CASES = [  # (a_bits, a_mult, a_zero, w_bits, w_mult)
    (8, 1, 128, 8, 1),
    (4, 1, 8, 4, 1),
    (2, 1, 1, 2, 1),
    (1, 1, 0, 1, 1),
    (2, BT_MULT, 128, 4, 1),
    (8, 1, 0, 2, BT_MULT),
    (4, 1, 15, 1, 1),
]


@pytest.mark.parametrize("case", GEMM_CASES)
@pytest.mark.parametrize("k", [1, 31, 64, 100, 257])
@pytest.mark.parametrize("with_bias", [False, True])
def test_gemm_arithmetic_matches_reference_bit_for_bit(harness, tmp_path, case, k, with_bias, seeded):
    a_bits, a_mult, a_zero, w_bits, w_mult = case
    n, o = 9, 7
    a_codes = torch.randint(0, 2**a_bits, (n, k), dtype=torch.uint8, generator=seeded)
    w_codes = torch.randint(0, 2**w_bits, (o, k), dtype=torch.uint8, generator=seeded)
    a_codes[0] = 2**a_bits - 1  # extreme rows: largest products
    w_codes[0] = 2**w_bits - 1
    a, w = pack_reference(a_codes, a_bits), pack_reference(w_codes, w_bits)
    w_scale = torch.rand(o, generator=seeded, dtype=torch.float32) * 0.1 + 1e-3
    w_zero = torch.randint(0, w_mult * qmax_of(w_bits) + 1, (o,), generator=seeded, dtype=torch.int32)
    bias = torch.randn(o, generator=seeded, dtype=torch.float32) if with_bias else None
    a_scale = 0.0311
    run = Run(harness, tmp_path)
    for name, t in [("a.bin", a), ("w.bin", w), ("w_scale.bin", w_scale), ("w_zero.bin", w_zero)]:
        run.put(name, t)
    run.put("bias.bin", bias if bias is not None else np.zeros(0, np.float32))
    run.params.update(n=n, o=o, k=k, a_bits=a_bits, a_mult=a_mult, a_zero=a_zero, a_scale=f32_bits(a_scale),
                      w_bits=w_bits, w_mult=w_mult, has_bias=with_bias)
    got = torch.from_numpy(run("gemm", np.float32)).view(n, o)
    expected = gemm_reference(a, a_bits, k, a_mult, a_scale, a_zero, w, w_bits, w_mult, w_scale, w_zero, bias)
    assert torch.equal(got, expected)


def test_gemm_ignores_garbage_in_padding_bits(harness, tmp_path):
    """The layout says padding bits are zero; the kernels mask them anyway."""
    k, bits = 5, 2
    a_codes = torch.tensor([[1, 2, 3, 0, 1]], dtype=torch.uint8)
    a = pack_reference(a_codes, bits)
    dirty = a | torch.tensor([[0x7FF00000]], dtype=torch.int32)  # bits past code 4
    run = Run(harness, tmp_path)
    run.put("a.bin", dirty), run.put("w.bin", a)
    run.put("w_scale.bin", torch.ones(1)), run.put("w_zero.bin", torch.zeros(1, dtype=torch.int32))
    run.put("bias.bin", np.zeros(0, np.float32))
    run.params.update(n=1, o=1, k=k, a_bits=bits, a_mult=1, a_zero=0, a_scale=f32_bits(1.0), w_bits=bits, w_mult=1,
                      has_bias=0)
    assert run("gemm", np.float32)[0] == float((a_codes.float() ** 2).sum())
