"""qgnn::site_codes: every compiled path gives the reference's float32 bits (signed zeros, NaN and
infinities included), on every grid, size and zero point; and opcheck's schema checks pass."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels.site import site_codes, site_codes_reference

from ._graphs import isas

ISAS = isas()
GRIDS = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 0), (2, 85, 20), (2, 85, -42), (4, 1, -3)]
# below, at and past one vector (8 / 16 lanes), and past one parallel chunk (32768 elements)
SIZES = (0, 1, 7, 15, 16, 17, 33, 1001, 40000)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def _check(x, scale, zero, bits, mult, skew, value):
    got = site_codes(x, scale, zero, bits, mult, skew, value)
    ref = site_codes_reference(x, scale, zero, bits, mult, skew, value)
    assert (got[2] is None) == (not value)
    for g, r in zip(got[:2] + ((got[2],) if value else ()), ref):
        assert g.shape == r.shape and g.dtype == torch.float32
        assert torch.equal(_bits(g), _bits(r))


def _specials(scale: float, levels: int, zero: int) -> torch.Tensor:
    """Exact ties of x / scale, the range's two bounds and their neighbours, zeros, infinities, NaN."""
    s = torch.tensor(scale)
    ties = (torch.arange(-levels - 3, levels + 3, dtype=torch.float32) + 0.5) * s
    bounds = torch.tensor([-zero, levels - zero], dtype=torch.float32) * s
    near = torch.cat([torch.nextafter(bounds, torch.tensor(float("inf"))),
                      torch.nextafter(bounds, torch.tensor(float("-inf")))])
    other = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e30, -1e30, 1e-40])
    return torch.cat([ties, bounds, near, other])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("n", SIZES)
def test_matches_reference(isa, grid, n, seeded):
    bits, mult, skew = grid
    levels = mult * (2**bits - 1)
    scale = float(torch.tensor(float(torch.rand(1, generator=seeded)) * 0.1 + 1e-3))  # a float32 value
    x = torch.randn(n, generator=seeded) * scale * levels / 2
    with kernels.use_isa(isa):
        for zero in (0, levels // 3, levels):
            _check(x, scale, float(zero), bits, mult, skew, value=True)
            _check(x.reshape(1, n), scale, float(zero), bits, mult, skew, value=False)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("grid", GRIDS)
def test_special_values(isa, grid):
    bits, mult, skew = grid
    levels = mult * (2**bits - 1)
    scale = float(torch.tensor(0.37))
    with kernels.use_isa(isa):
        for zero in (0, levels // 2, levels):
            x = _specials(scale, levels, zero)
            _check(x, scale, float(zero), bits, mult, skew, value=True)


def test_codes_are_the_rounding_rule(seeded):
    # centred = mult * code - zero with rounding.quantize's code, masked_t = t inside the range, else 0
    x = torch.randn(300, generator=seeded)
    for bits, mult, skew in GRIDS:
        levels = mult * (2**bits - 1)
        scale, zero = float(torch.tensor(4.0 / levels)), levels // 2
        centred, masked_t, value = site_codes(x, scale, float(zero), bits, mult, skew, True)
        code = kernels.rounding.quantize(x, torch.tensor(scale), float(zero), bits, mult, skew).to(torch.float32)
        assert torch.equal(centred, code * mult - zero)
        t = x / torch.tensor(scale)
        inside = (t >= -zero) & (t <= levels - zero)
        assert torch.equal(masked_t, torch.where(inside, t, torch.zeros_like(t)))
        assert torch.equal(value, centred * torch.tensor(scale))


def test_noncontiguous_input(seeded):
    x = torch.randn(40, 9, generator=seeded).t()
    _check(x, float(torch.tensor(0.05)), 1.0, 2, 1, 0, value=True)
    torch.library.opcheck(torch.ops.qgnn.site_codes.default, (x, 0.05, 1.0, 2, 1, 0, True))


@pytest.mark.parametrize("value", (True, False))
def test_opcheck(value, seeded):
    x = torch.randn(5, 19, generator=seeded)
    torch.library.opcheck(torch.ops.qgnn.site_codes.default, (x, 0.125, 3.0, 4, 1, 0, value))
    torch.library.opcheck(torch.ops.qgnn.site_codes.default, (x, 0.0125, 100.0, 2, 85, 5, value))
