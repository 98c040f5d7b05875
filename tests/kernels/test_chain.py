"""Epilogue chains of qgnn::spmm_requant / gemm_requant: every compiled path against the reference.

The stages are float32 operations with the rounding rule, so every path must equal
``apply_chain_reference`` + ``quantize_pack_reference`` bit for bit. Grids are sized from the data so
that each fake-quant stage both clamps some values and resolves the rest into several levels. The
AVX-512 path may run a chain as threshold compares (``ChainPlan``, csrc/cpu/kernels.h); each case runs
with that plan forced on and forced off (``plan`` fixture), so both are held to the reference. A GEMM
moves the plan's thresholds onto its integer dot products; ``floats`` keeps it comparing floats.
"""

from __future__ import annotations

import pytest
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels import Chain
from qgnn_cli.kernels.chain import apply_chain_reference
from qgnn_cli.kernels.gemm import gemm_reference, gemm_requant_reference
from qgnn_cli.kernels.rounding import dequantize, quantize
from qgnn_cli.kernels.spmm import spmm_reference, spmm_requant_reference

from ._graphs import GEMM_CASES, csr, gemm_case, isas, random_codes

ISAS = isas()


@pytest.fixture(params=["always", "floats", "never"])
def plan(request, monkeypatch):
    """QGNN_CHAIN_PLAN for the case (read by the kernels on every call)."""
    monkeypatch.setenv("QGNN_CHAIN_PLAN", request.param)
    return request.param


@pytest.fixture(params=["1", "0"])
def amx(request, monkeypatch):
    """QGNN_AMX for the case: the AVX-512 GEMM on AMX-INT8 tiles or on VNNI."""
    monkeypatch.setenv("QGNN_AMX", request.param)
    return request.param
# (bits, mult, skew) of the stages' grids and of the output grid: plain widths and BT*.
GRIDS = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 3)]


def _grid(y: torch.Tensor, bits: int, mult: int, skew: int) -> tuple:
    """A grid over ~80 % of y's range (so the ends clamp), zero point inside it."""
    levels = mult * (2**bits - 1)
    lo, hi = min(float(y.min()), 0.0), float(y.max())
    scale = max(0.8 * (hi - lo) / levels, 1e-3)
    return ("fake_quant", bits, scale, min(max(round(-0.9 * lo / scale), 0), levels), mult, skew)


def _chain(kind: str, y: torch.Tensor, grid, row: torch.Tensor, col: torch.Tensor) -> Chain:
    """The three chains the packed runtime builds (relu_site, rows, bias), each grid sized from the
    values that reach it."""
    def then(stages: list[tuple]) -> list[tuple]:
        return stages + [_grid(apply_chain_reference(y, *Chain.of(stages, row, col).args()), *grid)]

    if kind == "relu_site":  # QLinear's ReLU then its output site
        stages = then([("relu",)])
    elif kind == "rows":  # output site, D^-1/2 pre-scaling
        stages = then([]) + [("mul_row",)]
    else:  # site, bias, ReLU, update site
        stages = then(then([]) + [("add_col",), ("relu",)])
    return Chain.of(stages, row, col)


def _out_grid(y: torch.Tensor, grid) -> tuple:
    _, bits, scale, zero, mult, skew = _grid(y, *grid)
    return bits, scale, zero, mult, skew


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("kind", ["relu_site", "rows", "bias"])
def test_spmm_requant_chain_is_exact(isa, grid, kind, seeded, plan):
    degrees = [0, 3, 1, 0, 12, 5, 2, 0, 7, 1, 4]  # empty rows; sources 30..39 are never referenced
    resolved = 0
    with kernels.use_isa(isa):
        for cols, bits in ((5, 2), (16, 4), (33, 8), (130, 2)):
            indptr, indices = csr(degrees, 40, seeded)
            packed = kernels.pack(random_codes(40, cols, bits, seeded), bits)
            zero, scale = (2**bits - 1) // 2, 0.07  # centred codes of both signs: the ReLU keeps some
            rs = torch.rand(len(degrees), generator=seeded) + 0.1
            y = spmm_reference(indptr, indices, None, packed, bits, cols, 1, scale, zero, rs)
            chain = _chain(kind, y, grid, torch.rand(len(degrees), generator=seeded) + 0.05,
                           torch.randn(cols, generator=seeded) * float(y.std() + 1e-3))
            ob, osc, oz, om, osk = _out_grid(apply_chain_reference(y, *chain.args()), grid)
            got = kernels.spmm_requant(indptr, indices, packed, bits, cols, scale, zero, ob, osc, oz,
                                       out_mult=om, out_skew=osk, row_scale=rs, chain=chain)
            ref = spmm_requant_reference(indptr, indices, None, packed, bits, cols, 1, scale, zero, rs,
                                         ob, osc, oz, om, osk, *chain.args())
            assert torch.equal(got, ref)
            resolved += len(torch.unique(kernels.unpack(got, ob, cols))) >= 2
    assert resolved >= 3  # the grids resolve the data (a tiny case may still collapse to one code)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("kind", ["relu_site", "rows", "bias"])
def test_gemm_requant_chain_is_exact(isa, grid, kind, seeded, plan, amx):
    resolved = 0
    with kernels.use_isa(isa):
        for (n, k, o), (a_bits, w_bits) in GEMM_CASES:
            a, w, wz, ws, bias, a_zero = gemm_case(n, k, o, a_bits, w_bits, seeded)
            y = gemm_reference(a, a_bits, k, 1, 0.05, a_zero, w, w_bits, 1, ws, wz, bias)
            chain = _chain(kind, y, grid, torch.rand(n, generator=seeded) + 0.05,
                           torch.randn(o, generator=seeded) * float(y.std() + 1e-3))
            ob, osc, oz, om, osk = _out_grid(apply_chain_reference(y, *chain.args()), grid)
            got = kernels.gemm_requant(a, a_bits, k, 0.05, a_zero, w, w_bits, ws, wz, ob, osc, oz,
                                       out_mult=om, out_skew=osk, bias=bias, chain=chain)
            ref = gemm_requant_reference(a, a_bits, k, 1, 0.05, a_zero, w, w_bits, 1, ws, wz, bias,
                                         ob, osc, oz, om, osk, *chain.args())
            assert torch.equal(got, ref)
            resolved += len(torch.unique(kernels.unpack(got, ob, o))) >= 2
    assert resolved >= 3  # the grids resolve the data (a tiny case may still collapse to one code)


def test_reference_is_the_sites_in_order():
    # The reference spelled out with the rounding rule's quantize/dequantize: site, bias, ReLU, site.
    y = torch.linspace(-3, 3, 60).reshape(6, 10)
    bias = torch.linspace(-1, 1, 10)
    chain = Chain.of([("fake_quant", 2, 0.5, 2, 1, 0), ("add_col",), ("relu",), ("fake_quant", 4, 0.1, 0, 1, 0)], col=bias)
    s1, s2 = torch.tensor(0.5), torch.tensor(0.1)
    v = dequantize(quantize(y, s1, 2.0, 2), s1, 2.0)
    v = dequantize(quantize(torch.relu(v + bias), s2, 0.0, 4), s2, 0.0)
    got = apply_chain_reference(y, *chain.args())
    assert torch.equal(got, v)
    assert len(torch.unique(got)) > 3  # the stages did not collapse everything


def test_empty_chain_is_no_chain(seeded):
    indptr, indices = csr([2, 0, 3], 6, seeded)
    packed = kernels.pack(random_codes(6, 9, 4, seeded), 4)
    plain = kernels.spmm_requant(indptr, indices, packed, 4, 9, 0.1, 3, 2, 0.4, 1)
    empty = kernels.spmm_requant(indptr, indices, packed, 4, 9, 0.1, 3, 2, 0.4, 1, chain=Chain.of([]))
    assert torch.equal(plain, empty)


def _spmm_args(gen):
    indptr, indices = csr([2, 0, 3], 6, gen)
    return indptr, indices, kernels.pack(random_codes(6, 9, 4, gen), 4)


@pytest.mark.parametrize(
    "chain,match",
    [
        (Chain.of([("mul_row",)]), "chain_row"),
        (Chain.of([("add_col",)], col=torch.ones(8)), "chain_col has 8"),
        (Chain.of([("mul_row",)], row=torch.ones(3, dtype=torch.float64)), "chain_row"),
        (Chain.of([("fake_quant", 3, 0.1, 0, 1, 0)]), "bit width"),
        (Chain.of([("fake_quant", 2, -0.1, 0, 1, 0)]), "scale"),
        (Chain.of([("fake_quant", 2, 0.1, 9, 1, 0)]), "zero point"),
        (Chain.of([("relu",)] * 9), "at most"),
        (Chain(torch.tensor([[7.0, 0, 0, 0, 0, 0]], dtype=torch.float64)), "unknown kind"),
        (Chain(torch.zeros(1, 6)), "float64"),
    ],
)
def test_bad_chains_are_refused(chain, match, seeded):
    indptr, indices, packed = _spmm_args(seeded)
    with pytest.raises(ValueError, match=match):
        kernels.spmm_requant(indptr, indices, packed, 4, 9, 0.1, 3, 2, 0.4, 1, chain=chain)


def test_unknown_stage_name():
    with pytest.raises(ValueError, match="unknown chain stage"):
        Chain.of([("softmax",)])


@pytest.mark.skipif(not kernels.extension_available(), reason="needs the compiled extension")
def test_compiled_kernels_check_the_chain_themselves(seeded):
    # A direct torch.ops call skips the Python checks: the C++ glue must refuse what it cannot read.
    indptr, indices, packed = _spmm_args(seeded)
    base = (indptr, indices, None, packed, 4, 9, 1, 0.1, 3, None, 2, 0.4, 1, 1, 0)
    spec = Chain.of([("mul_row",)]).spec
    with pytest.raises(RuntimeError, match="chain_row"):
        torch.ops.qgnn.spmm_requant(*base, spec, None, None)
    with pytest.raises(RuntimeError, match="chain_row"):
        torch.ops.qgnn.spmm_requant(*base, spec, torch.ones(2), None)
    bad = Chain.of([("fake_quant", 2, 0.1, 0, 1, 0)]).spec.clone()
    bad[0, 1] = 5
    with pytest.raises(RuntimeError, match="bit width"):
        torch.ops.qgnn.spmm_requant(*base, bad, None, None)


def test_opcheck(seeded):
    indptr, indices, packed = _spmm_args(seeded)
    rows = indptr.numel() - 1
    chain = Chain.of([("fake_quant", 2, 0.2, 1, 1, 0), ("mul_row",), ("add_col",), ("relu",)],
                     row=torch.rand(rows, generator=seeded), col=torch.randn(9, generator=seeded))
    torch.library.opcheck(torch.ops.qgnn.spmm_requant.default,
                          (indptr, indices, None, packed, 4, 9, 1, 0.1, 3, None, 2, 0.4, 1, 1, 0, *chain.args()))
    a = kernels.pack(random_codes(5, 9, 4, seeded), 4)
    w = kernels.pack(random_codes(9, 9, 2, seeded), 2)
    chain = Chain.of([("relu",), ("mul_row",)], row=torch.rand(5, generator=seeded))
    torch.library.opcheck(torch.ops.qgnn.gemm_requant.default,
                          (a, 4, 9, 1, 0.1, 2, w, 2, 1, torch.rand(9) + 0.1, torch.ones(9, dtype=torch.int32), None,
                           2, 0.3, 1, 1, 0, *chain.args()))
