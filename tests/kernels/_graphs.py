"""Random CSR graphs and grids shared by the kernel tests."""

from __future__ import annotations

import torch

from qgnn_cli import kernels


def isas() -> list[str]:
    """Every compiled kernel path this machine can run (forced one at a time by the tests)."""
    return kernels.supported_isas() or ["generic"]


def csr(degrees: list[int] | torch.Tensor, num_src: int, gen: torch.Generator, duplicates: bool = True):
    """(indptr int64, indices int32) with the given row degrees; columns uniform in [0, num_src)."""
    degrees = torch.as_tensor(degrees, dtype=torch.int64)
    indptr = torch.zeros(degrees.numel() + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(degrees, 0)
    nnz = int(indptr[-1])
    indices = torch.randint(0, max(num_src, 1), (nnz,), generator=gen, dtype=torch.int32)
    if duplicates and nnz >= 4:  # repeat a few edges within their rows
        rows = torch.repeat_interleave(torch.arange(degrees.numel()), degrees)
        same_row = (rows[1:] == rows[:-1]).nonzero().flatten()[:3]
        indices[same_row + 1] = indices[same_row]
    return indptr, indices


def random_codes(rows: int, cols: int, bits: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2**bits, (rows, cols), dtype=torch.uint8, generator=gen)


def random_zero(bits: int, mult: int, gen: torch.Generator) -> int:
    return int(torch.randint(0, mult * (2**bits - 1) + 1, (1,), generator=gen))


def skewed_degrees(rows: int, gen: torch.Generator, mean: float = 6.0) -> torch.Tensor:
    """Lognormal degrees (power-law-like), with a few empty rows."""
    d = torch.exp(torch.randn(rows, generator=gen) * 1.2 + torch.log(torch.tensor(mean))).round().to(torch.int64)
    d[::17] = 0
    return d


# (n, k, o) with (activation bits, weight bits): odd sizes, k and o below and above one SIMD block.
GEMM_CASES = list(zip(((7, 3, 5), (101, 33, 40), (50, 128, 128), (13, 130, 17)), ((2, 2), (4, 4), (2, 4), (8, 2))))


def gemm_case(n: int, k: int, o: int, a_bits: int, w_bits: int, gen: torch.Generator):
    """Packed activations and weights with per-channel grids, a bias for odd n: (a, w, wz, ws, bias, a_zero)."""
    a = kernels.pack(random_codes(n, k, a_bits, gen), a_bits)
    w = kernels.pack(random_codes(o, k, w_bits, gen), w_bits)
    wz = torch.randint(0, 2**w_bits, (o,), generator=gen, dtype=torch.int32)
    ws = torch.rand(o, generator=gen) + 1e-3
    bias = torch.randn(o, generator=gen) if n % 2 else None
    return a, w, wz, ws, bias, random_zero(a_bits, 1, gen)
