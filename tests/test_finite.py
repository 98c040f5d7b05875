"""all_finite against torch.isfinite(t).all() on fresh random tensors, one bad entry anywhere."""

import zlib

import pytest
import torch

from qgnn_cli.finite import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (97, 33), (2, 1025)])
@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), float("-inf")])
def test_matches_isfinite(dtype, shape, bad):
    g = torch.Generator().manual_seed(zlib.crc32(repr((dtype, shape, bad)).encode()))  # str hash is salted
    t = (torch.randn(shape, generator=g) * 100).to(dtype)
    if bad is not None:
        flat = t.view(-1)
        for at in (0, flat.numel() - 1, int(torch.randint(flat.numel(), (1,), generator=g))):
            u = t.clone()
            u.view(-1)[at] = bad
            assert all_finite(u) is False
            assert all_finite(u) == bool(torch.isfinite(u).all())
    assert all_finite(t) is True


def test_edge_cases():
    assert all_finite(torch.empty(0, 4))
    assert all_finite(torch.arange(10))  # integers
    assert all_finite(torch.tensor(3.0))
    assert not all_finite(torch.tensor(float("nan")))
    assert all_finite(torch.full((5,), torch.finfo(torch.float32).max))  # finite extremes
    x = torch.randn(6, 6)
    x[2, 3] = float("nan")
    assert not all_finite(x.to_sparse())
    assert not all_finite(x.to_sparse_csr())
    assert all_finite(x[:, 4:].to_sparse())
    assert not all_finite(x[:, 1::2].T)  # strided views
    assert all_finite(x[:, 4:])
