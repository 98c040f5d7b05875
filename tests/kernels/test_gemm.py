"""qgnn::gemm / gemm_requant: every compiled path equals its reference bit for bit.

The integer dot products are exact and the zero points are folded in through row and column sums,
so the float32 epilogue ``float(D) * (a_scale * w_scale[c]) + bias[c]`` sees the same integer as the
reference; the kernels must not fuse the multiply and the bias add. Every case runs with the AVX-512
path's AMX-INT8 tiles allowed and forbidden (QGNN_AMX; where the CPU has no AMX both run VNNI).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qgnn_cli import kernels
from qgnn_cli.kernels.gemm import gemm_reference, gemm_requant_reference

from ._graphs import GEMM_CASES, gemm_case, isas, random_codes, random_zero

ISAS = isas()


@pytest.fixture(autouse=True, params=["1", "0"])
def amx(request, monkeypatch):
    monkeypatch.setenv("QGNN_AMX", request.param)
    return request.param


def _run(gen, n, k, o, a_bits, w_bits, a_mult=1, w_mult=1, bias=True):
    a_packed = kernels.pack(random_codes(n, k, a_bits, gen), a_bits)
    w_packed = kernels.pack(random_codes(o, k, w_bits, gen), w_bits)
    a_zero = random_zero(a_bits, a_mult, gen)
    w_zero = torch.randint(0, w_mult * (2**w_bits - 1) + 1, (o,), generator=gen, dtype=torch.int32)
    w_scale = torch.rand(o, generator=gen) + 1e-3
    a_scale = float(torch.rand(1, generator=gen)) + 1e-3
    b = torch.randn(o, generator=gen) if bias else None
    out = kernels.gemm(a_packed, a_bits, k, a_scale, a_zero, w_packed, w_bits, w_scale, w_zero,
                       a_mult=a_mult, w_mult=w_mult, bias=b)
    ref = gemm_reference(a_packed, a_bits, k, a_mult, a_scale, a_zero, w_packed, w_bits, w_mult, w_scale, w_zero, b)
    assert out.dtype == torch.float32 and out.shape == (n, o)
    assert torch.equal(out, ref), f"max diff {(out - ref).abs().max()}"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("a_bits", (1, 2, 4, 8))
@pytest.mark.parametrize("w_bits", (1, 2, 4, 8))
def test_bit_exact(isa, a_bits, w_bits, seeded):
    with kernels.use_isa(isa):
        # Odd sizes; k not a multiple of a word; o not a multiple of the 16-column block; rows across
        # the 6-row micro-tile and 48-row tile boundaries.
        for n, k, o in ((1, 1, 1), (7, 3, 5), (101, 33, 40), (13, 130, 17), (50, 128, 128)):
            _run(seeded, n, k, o, a_bits, w_bits, bias=n % 2 == 1)


@pytest.mark.parametrize("isa", ISAS)
def test_bt_grids_and_extreme_zero_points(isa, seeded):
    with kernels.use_isa(isa):
        _run(seeded, 29, 64, 24, 2, 2, a_mult=85, w_mult=85)
        _run(seeded, 29, 64, 24, 2, 4, a_mult=85)
        _run(seeded, 29, 64, 24, 8, 2, w_mult=85)
        # All-maximal codes with zero points 0 and the top of the grid: the largest |D|.
        k, o = 257, 16
        a = kernels.pack(torch.full((3, k), 255, dtype=torch.uint8), 8)
        w = kernels.pack(torch.full((o, k), 255, dtype=torch.uint8), 8)
        for a_zero, w_zero in ((0, 0), (255, 0), (0, 255)):
            wz = torch.full((o,), w_zero, dtype=torch.int32)
            ws = torch.ones(o)
            got = kernels.gemm(a, 8, k, 1.0, a_zero, w, 8, ws, wz)
            assert torch.equal(got, gemm_reference(a, 8, k, 1, 1.0, a_zero, w, 8, 1, ws, wz, None))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("a_bits", "w_bits", "k"), [(8, 4, 70), (8, 2, 300), (4, 4, 1000), (2, 2, 7500), (8, 1, 600)])
def test_all_maximal_codes_across_int16_sums(isa, a_bits, w_bits, k):
    """The AVX2 path sums byte products in int16 lanes and widens them every 32767 / (2 amax wmax)
    steps of 4 codes: all-maximal codes over several such spans must still give the exact product."""
    n, o = 5, 24
    a = kernels.pack(torch.full((n, k), 2**a_bits - 1, dtype=torch.uint8), a_bits)
    w = kernels.pack(torch.full((o, k), 2**w_bits - 1, dtype=torch.uint8), w_bits)
    wz, ws = torch.zeros(o, dtype=torch.int32), torch.ones(o)
    with kernels.use_isa(isa):
        got = kernels.gemm(a, a_bits, k, 1.0, 0, w, w_bits, ws, wz)
    assert torch.equal(got, gemm_reference(a, a_bits, k, 1, 1.0, 0, w, w_bits, 1, ws, wz, None))
    assert float(got[0, 0]) == k * (2**a_bits - 1) * (2**w_bits - 1)


OUT_GRIDS = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 0), (2, 85, -30), (4, 1, 5)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("out_grid", OUT_GRIDS)
def test_requant_is_exact(isa, out_grid, seeded):
    out_bits, out_mult, out_skew = out_grid
    levels = out_mult * (2**out_bits - 1)
    with kernels.use_isa(isa):
        for (n, k, o), (a_bits, w_bits) in GEMM_CASES:
            a, w, wz, ws, bias, a_zero = gemm_case(n, k, o, a_bits, w_bits, seeded)
            # An output grid that both clamps and resolves: a few percent of the float range per level.
            ref_float = gemm_reference(a, a_bits, k, 1, 0.05, a_zero, w, w_bits, 1, ws, wz, bias)
            out_scale = float(ref_float.abs().max()) / levels + 1e-3
            got = kernels.gemm_requant(a, a_bits, k, 0.05, a_zero, w, w_bits, ws, wz, out_bits, out_scale, levels // 2,
                                       out_mult=out_mult, out_skew=out_skew, bias=bias)
            ref = gemm_requant_reference(a, a_bits, k, 1, 0.05, a_zero, w, w_bits, 1, ws, wz, bias,
                                         out_bits, out_scale, levels // 2, out_mult, out_skew)
            assert torch.equal(got, ref)


@pytest.mark.parametrize("isa", ISAS)
def test_empty_shapes(isa, seeded):
    with kernels.use_isa(isa):
        for n, k, o in ((0, 5, 3), (4, 5, 0), (3, 0, 2)):
            _run(seeded, n, k, o, 4, 4, bias=False)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    isa=st.sampled_from(ISAS),
    a_bits=st.sampled_from((2, 4, 8)),
    w_bits=st.sampled_from((2, 4, 8)),
    n=st.integers(1, 60),
    k=st.integers(1, 150),
    o=st.integers(1, 70),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_shapes(isa, a_bits, w_bits, n, k, o, bias, seed):
    with kernels.use_isa(isa):
        _run(torch.Generator().manual_seed(seed), n, k, o, a_bits, w_bits, bias=bias)


@pytest.mark.parametrize("bits", (2, 8))
def test_opcheck(bits, seeded):
    a = kernels.pack(random_codes(9, 37, bits, seeded), bits)
    w = kernels.pack(random_codes(5, 37, 4, seeded), 4)
    wz = torch.randint(0, 16, (5,), generator=seeded, dtype=torch.int32)
    for bias in (None, torch.randn(5, generator=seeded)):
        args = (a, bits, 37, 1, 0.1, 1, w, 4, 1, torch.rand(5) + 0.1, wz, bias)
        torch.library.opcheck(torch.ops.qgnn.gemm.default, args)
        torch.library.opcheck(torch.ops.qgnn.gemm_requant.default, args + (2, 0.5, 1, 1, 0))


def _good(gen):
    a = kernels.pack(random_codes(4, 10, 2, gen), 2)
    w = kernels.pack(random_codes(3, 10, 4, gen), 4)
    return a, w, torch.ones(3), torch.zeros(3, dtype=torch.int32)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, w, s, z: kernels.gemm(a, 3, 10, 0.5, 1, w, 4, s, z), "unsupported bit width"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 1, w, 5, s, z), "unsupported bit width"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 40, 0.5, 1, w, 4, s, z), "words"),
        (lambda a, w, s, z: kernels.gemm(a.to(torch.int64), 2, 10, 0.5, 1, w, 4, s, z), "int32"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 1, w, 4, torch.ones(4), z), "one per output channel"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 1, w, 4, s, z.to(torch.int64)), "w_zero must be"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 1, w, 4, s, z + 16), "w_zero outside"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 1, w, 4, -s, z), "w_scale must be positive"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 9, w, 4, s, z), "zero point"),
        (lambda a, w, s, z: kernels.gemm(a, 2, 10, 0.5, 1, w, 4, s, z, bias=torch.ones(2)), "bias has"),
        (lambda a, w, s, z: kernels.gemm_requant(a, 2, 10, 0.5, 1, w, 4, s, z, 3, 0.5, 1), "unsupported bit width"),
        (lambda a, w, s, z: kernels.gemm_requant(a, 2, 10, 0.5, 1, w, 4, s, z, 2, 0.5, 4), "zero point"),
        (lambda a, w, s, z: kernels.gemm_requant(a, 2, 10, 0.5, 1, w, 4, s, z, 2, -1.0, 1), "scale"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message, seeded):
    with pytest.raises(ValueError, match=message):
        call(*_good(seeded))
