"""The epilogues' ChainPlan (csrc/cpu/kernels.h; AVX-512, and AVX2 for counted grids of at most 2 bits):
a chain and output grid run as per-column threshold compares and a per-row table must give the
stages' codes bit for bit.

``test_chain.py`` holds both paths to the reference on random data. Here the inputs are the ones a
threshold could get wrong: values exactly on the grids' rounding ties (power-of-two scales make many
sums land on them), signed zeros and rows holding NaN or infinities (a NaN row falls back to the
stages). Each case compares QGNN_CHAIN_PLAN=always against =never (the stages) and the reference.
A GEMM's plan compares its integer D (``always``) or its float values (``floats``): both are held to it.
"""

from __future__ import annotations

import pytest
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels import Chain
from qgnn_cli.kernels.gemm import gemm_requant_reference
from qgnn_cli.kernels.spmm import spmm_requant_reference

from ._graphs import csr, gemm_case, random_codes

# The three chains of the packed runtime, with power-of-two grid scales (ties everywhere).
CHAINS = {
    "bias": lambda row, col: Chain.of([("fake_quant", 2, 0.5, 1, 1, 0), ("add_col",), ("relu",),
                                       ("fake_quant", 4, 0.125, 0, 1, 0)], row, col),
    "rows": lambda row, col: Chain.of([("fake_quant", 2, 0.25, 1, 1, 0), ("mul_row",)], row, col),
    "relu_site": lambda row, col: Chain.of([("relu",), ("fake_quant", 4, 0.25, 3, 1, 0)], row, col),
    "bt_rows": lambda row, col: Chain.of([("fake_quant", 2, 0.03125, 100, 85, 3), ("mul_row",), ("relu",)], row, col),
    "none": lambda row, col: None,
}
OUT = [(2, 0.25, 1, 1, 0), (4, 0.5, 7, 1, 0), (1, 1.0, 0, 1, 0), (2, 0.0078125, 64, 85, 3), (8, 0.25, 128, 1, 0)]
# Row scales: powers of two, zeros of both signs, and the non-finite values a caller could pass.
SPECIAL = [1.0, 0.5, 2.0, 0.0, -0.0, 0.25, 1.0, 4.0]
NONFINITE = [float("nan"), float("inf"), float("-inf"), 3e38]


def _modes(fn):
    """fn() under QGNN_CHAIN_PLAN=always and =never; =floats must equal =always."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for mode in ("always", "floats", "never"):
            mp.setenv("QGNN_CHAIN_PLAN", mode)
            out[mode] = fn()
    assert torch.equal(out["floats"], out["always"])
    return out["always"], out["never"]


def _row_scale(rows: int, gen: torch.Generator, nonfinite: bool) -> torch.Tensor:
    rs = torch.tensor(SPECIAL * (rows // len(SPECIAL) + 1))[:rows]
    rs = rs[torch.randperm(rows, generator=gen)]
    if nonfinite:
        rs[torch.randperm(rows, generator=gen)[: len(NONFINITE)]] = torch.tensor(NONFINITE)
    return rs


@pytest.mark.parametrize("out", OUT)
@pytest.mark.parametrize("kind", list(CHAINS))
@pytest.mark.parametrize("nonfinite", [False, True])
def test_spmm_plan_on_ties_and_special_values(kind, out, nonfinite, seeded):
    rows, cols, bits = 300, 37, 2
    degrees = torch.randint(0, 9, (rows,), generator=seeded)
    degrees[::13] = 0
    indptr, indices = csr(degrees, rows, seeded)
    packed = kernels.pack(random_codes(rows, cols, bits, seeded), bits)
    rs = _row_scale(rows, seeded, nonfinite)
    chain = CHAINS[kind](_row_scale(rows, seeded, nonfinite), torch.arange(cols) * 0.25 - 4.0)
    ob, osc, oz, om, osk = out

    def call():
        return kernels.spmm_requant(indptr, indices, packed, bits, cols, 0.25, 1, ob, osc, oz, out_mult=om,
                                    out_skew=osk, row_scale=rs, chain=chain, check=False)

    planned, staged = _modes(call)
    assert torch.equal(planned, staged)
    if not nonfinite:  # (the reference's NaN handling is torch's, not the kernels' clamp order)
        ref = spmm_requant_reference(indptr, indices, None, packed, bits, cols, 1, 0.25, 1, rs, *out,
                                     *(chain.args() if chain is not None else (None, None, None)))
        assert torch.equal(planned, ref)
    assert len(torch.unique(kernels.unpack(planned, ob, cols))) >= 2  # the data resolve into several codes


@pytest.mark.parametrize("out", OUT)
@pytest.mark.parametrize("kind", list(CHAINS))
@pytest.mark.parametrize("a_bits", [2, 4, 8])
def test_gemm_plan_on_ties_and_nan_bias(kind, out, a_bits, seeded):
    n, k, o = 200, 19, 21
    a, w, wz, _, _, a_zero = gemm_case(n, k, o, a_bits, 2, seeded)
    ws = torch.full((o,), 0.5)
    bias = torch.arange(o) * 0.125 - 1.0
    bias[3] = float("nan")  # column 3 is NaN in every row: those rows take the stages
    chain = CHAINS[kind](_row_scale(n, seeded, False), torch.arange(o) * 0.25 - 2.0)
    chain_args = chain.args() if chain is not None else (None, None, None)

    ob, osc, oz, om, osk = out

    def call(b=bias):
        return kernels.gemm_requant(a, a_bits, k, 0.25, a_zero, w, 2, ws, wz, ob, osc, oz, out_mult=om,
                                    out_skew=osk, bias=b, chain=chain)

    planned, staged = _modes(call)
    assert torch.equal(planned, staged)
    finite = bias.clone()
    finite[3] = 0.0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QGNN_CHAIN_PLAN", "always")
        got = call(finite)
    ref = gemm_requant_reference(a, a_bits, k, 1, 0.25, a_zero, w, 2, 1, ws, wz, finite, *out, *chain_args)
    assert torch.equal(got, ref)


@pytest.mark.parametrize("out", OUT)
@pytest.mark.parametrize("kind", ["none", "relu_site", "rows"])
def test_gemm_plan_on_extreme_scales(kind, out, seeded):
    # Columns whose values underflow to signed zeros, sit on subnormals or overflow to +-inf: the
    # thresholds moved onto D must still pick the float compares' codes (and the reference's).
    n, k, o, a_bits = 150, 23, 16, 4
    a, w, wz, _, _, a_zero = gemm_case(n, k, o, a_bits, 2, seeded)
    ws = torch.tensor([1e-45, 1e-40, 3e-39, 1e-30, 1e30, 3e38, 1e38, 2e37, 0.5, 1.0, 2.0, 0.125, 1e-3, 7.0, 1e20, 1e-20])
    bias = torch.tensor([0.0, -0.0, 1e-45, 0.25, -1e38, 0.0, 3e38, -0.5, 0.25, -0.25, 0.0, 1.0, 0.0, -1.0, 0.0, 0.5])
    chain = CHAINS[kind](_row_scale(n, seeded, False), torch.arange(o) * 0.25 - 2.0)
    chain_args = chain.args() if chain is not None else (None, None, None)
    ob, osc, oz, om, osk = out

    def call():
        return kernels.gemm_requant(a, a_bits, k, 0.25, a_zero, w, 2, ws, wz, ob, osc, oz, out_mult=om,
                                    out_skew=osk, bias=bias, chain=chain)

    planned, staged = _modes(call)
    assert torch.equal(planned, staged)
    ref = gemm_requant_reference(a, a_bits, k, 1, 0.25, a_zero, w, 2, 1, ws, wz, bias, *out, *chain_args)
    assert torch.equal(planned, ref)
