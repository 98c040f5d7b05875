"""qgnn::quantize_pack: every compiled path equals the reference (the one rounding rule) exactly.

Every case runs with the AVX-512 threshold plan (``ChainPlan``, csrc/cpu/kernels.h) forced on and off."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qgnn_cli import kernels
from qgnn_cli.kernels.quantize import quantize_pack_reference

from ._graphs import isas

ISAS = isas()
WIDTHS = (1, 3, 17, 33, 127, 130)
GRIDS = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 0), (2, 85, 20), (2, 85, -42), (4, 1, -3), (8, 1, 7)]


@pytest.fixture(autouse=True, params=["always", "never"])
def plan(request, monkeypatch):
    monkeypatch.setenv("QGNN_CHAIN_PLAN", request.param)


def _check(x, bits, scale, zero, mult, skew):
    got = kernels.quantize_pack(x, bits, scale, zero, mult, skew)
    ref = quantize_pack_reference(x, bits, scale, zero, mult, skew)
    assert got.dtype == torch.int32 and torch.equal(got, ref)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("cols", WIDTHS)
def test_matches_reference(isa, grid, cols, seeded):
    bits, mult, skew = grid
    levels = mult * (2**bits - 1)
    with kernels.use_isa(isa):
        scale = float(torch.rand(1, generator=seeded)) * 0.1 + 1e-3
        x = torch.randn(9, cols, generator=seeded) * scale * levels / 3
        for zero in (0, levels // 2, levels):
            _check(x, bits, scale, zero, mult, skew)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", (2, 4, 8))
def test_ties_round_half_to_even_and_clamp(isa, bits):
    scale = 0.25
    halves = (torch.arange(-40, 40, dtype=torch.float32) + 0.5) * scale  # exact ties x / scale = m + 0.5
    x = torch.cat([halves, torch.tensor([-1e30, 1e30, 0.0, -0.0])]).reshape(2, -1)
    with kernels.use_isa(isa):
        _check(x, bits, scale, (2**bits - 1) // 2, 1, 0)
        _check(x, 2, scale, 100, 85, 0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("scale", (0.1, 0.3, 1 / 3, 0.0731, 7.77))
def test_quotients_next_to_half_integers(isa, scale):
    # x within a few ulp of (m + 0.5) * scale: where x * (1/scale) and the true x / scale can round to
    # different integers. The kernels must round as the division does (the reference).
    s = torch.tensor(scale, dtype=torch.float32)
    base = (torch.arange(-130, 130, dtype=torch.float32) + 0.5) * s
    x = base
    for _ in range(3):
        up, down = torch.nextafter(x, torch.tensor(float("inf"))), torch.nextafter(x, torch.tensor(float("-inf")))
        x = torch.cat([x, up, down]).unique()
    by_product = torch.round(x * (1.0 / s))
    assert bool((by_product != torch.round(x / s)).any()), "no case where the reciprocal rounds differently"
    x = x[: x.numel() // 5 * 5].reshape(5, -1)
    with kernels.use_isa(isa):
        _check(x, 8, scale, 128, 1, 0)
        _check(x, 2, scale / 85, 100, 85, 3)  # BT: 8-bit grid, then (base + skew) / 85


@pytest.mark.parametrize("isa", ISAS)
def test_empty_shapes(isa):
    with kernels.use_isa(isa):
        for shape in ((0, 5), (3, 0)):
            _check(torch.zeros(shape), 4, 0.1, 3, 1, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    isa=st.sampled_from(ISAS),
    grid=st.sampled_from(GRIDS),
    rows=st.integers(0, 20),
    cols=st.integers(0, 200),
    scale=st.floats(1e-4, 10.0),
    spread=st.floats(0.1, 1000.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz(isa, grid, rows, cols, scale, spread, seed):
    bits, mult, skew = grid
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * spread * scale
    with kernels.use_isa(isa):
        _check(x, bits, scale, mult * (2**bits - 1) // 3, mult, skew)


@pytest.mark.parametrize("bits", (1, 2, 4, 8))
def test_opcheck(bits, seeded):
    x = torch.randn(7, 45, generator=seeded)
    torch.library.opcheck(torch.ops.qgnn.quantize_pack.default, (x, bits, 0.3, 2**bits // 2, 1, 0))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: kernels.quantize_pack(torch.zeros(2, 3), 3, 0.1, 0), "unsupported bit width"),
        (lambda: kernels.quantize_pack(torch.zeros(2, 3, dtype=torch.float64), 2, 0.1, 0), "float32"),
        (lambda: kernels.quantize_pack(torch.zeros(6), 2, 0.1, 0), "2-D"),
        (lambda: kernels.quantize_pack(torch.zeros(2, 3), 2, 0.0, 0), "scale"),
        (lambda: kernels.quantize_pack(torch.zeros(2, 3), 2, 0.1, 4), "zero point"),
        (lambda: kernels.quantize_pack(torch.zeros(2, 3), 4, 0.1, 0, 85), "mult"),
        (lambda: kernels.quantize_pack(torch.full((2, 3), float("nan")), 2, 0.1, 0), "NaN"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
