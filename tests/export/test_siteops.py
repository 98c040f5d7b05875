"""The float sites of the packed runtime (export/siteops.py): requant in place equals requant fresh."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.export.siteops import Grid, requant
from qgnn_cli.kernels.rounding import fake_quantize


@pytest.mark.parametrize("bits,cols", [(2, 16), (4, 16), (8, 8), (2, 13), (4, 7)])
@pytest.mark.parametrize("rows", [3, 20000])  # under and over the small-tensor path
def test_requant_in_place_equals_fresh(bits, cols, rows, seeded):
    grid = Grid(bits, 0.05, 2**bits // 2 - 1)
    x = torch.randn(rows, cols, generator=seeded) * 0.2
    fresh = requant(x.clone(), grid)
    y = x.clone()
    got = requant(y, grid, inplace=True)
    assert torch.equal(got, fresh)
    assert torch.equal(fresh, fake_quantize(x, grid.scale, grid.zero, bits))
    if cols * bits % 8 == 0 and rows * cols * bits // 8 >= 1 << 15:
        assert got.data_ptr() == y.data_ptr()  # written into x: no fresh N x cols result
