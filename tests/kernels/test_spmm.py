"""qgnn::spmm / spmm_requant / gather_floor: every compiled path against the PyTorch reference.

Unweighted aggregation is an exact integer sum, so every path must equal ``spmm_reference`` bit for
bit (``torch.equal``), and ``spmm_requant`` must equal its reference exactly. With edge ``values``
the sum is a float32 sum in the kernels and a float64 sum in the reference; the tolerance is the
float32 summation bound, per entry::

    |out - ref| <= (deg_i + 3) * 2^-23 * scale * |row_scale_i| * sum_e |w_e| * |mult * code_e - zero|
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qgnn_cli import kernels
from qgnn_cli.kernels.floor import gather_floor_reference
from qgnn_cli.kernels.pack import unpack_reference
from qgnn_cli.kernels.spmm import spmm_reference, spmm_requant_reference

from ._graphs import csr, isas, random_codes, random_zero, skewed_degrees

ISAS = isas()
BITS = (1, 2, 4, 8)
WIDTHS = (1, 3, 17, 33, 127, 130)


def _case(gen, degrees, num_src, cols, bits, mult=1, row_scale=True):
    indptr, indices = csr(degrees, num_src, gen)
    packed = kernels.pack(random_codes(num_src, cols, bits, gen), bits)
    zero = random_zero(bits, mult, gen)
    scale = float(torch.rand(1, generator=gen)) + 0.01
    rs = torch.rand(len(degrees), generator=gen) + 0.1 if row_scale else None
    return indptr, indices, packed, zero, scale, rs


def _check_exact(indptr, indices, packed, bits, cols, scale, zero, rs, mult=1):
    out = kernels.spmm(indptr, indices, packed, bits, cols, scale, zero, mult=mult, row_scale=rs)
    ref = spmm_reference(indptr, indices, None, packed, bits, cols, mult, scale, zero, rs)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert torch.equal(out, ref), f"max diff {(out - ref).abs().max()}"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("cols", WIDTHS)
def test_unweighted_is_bit_exact(isa, bits, cols, seeded):
    # Empty rows, a row of one edge, duplicates, and sources no row references (isolated nodes).
    degrees = [0, 1, 4, 0, 9, 2, 30, 0, 5]
    with kernels.use_isa(isa):
        indptr, indices, packed, zero, scale, rs = _case(seeded, degrees, 40, cols, bits)
        _check_exact(indptr, indices, packed, bits, cols, scale, zero, rs)
        _check_exact(indptr, indices, packed, bits, cols, scale, zero, None)


@pytest.mark.parametrize("isa", ISAS)
def test_bt_grid_mult_85(isa, seeded):
    with kernels.use_isa(isa):
        for cols in (5, 64, 130):
            indptr, indices, packed, zero, scale, rs = _case(seeded, [3, 0, 7, 12], 20, cols, 2, mult=85)
            _check_exact(indptr, indices, packed, 2, cols, scale, zero, rs, mult=85)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits,degree", [(2, 300), (2, 5000), (2, 70000), (4, 300), (4, 5000), (8, 300), (8, 5000)])
def test_very_high_degree_rows_cross_every_flush_point(isa, bits, degree, seeded):
    # 2-bit: nibbles flush every 5 edges, bytes every 85; 4-bit: bytes every 17; 8-bit: u16 every 257.
    zero = 2**bits - 1  # the largest correction deg * zero
    with kernels.use_isa(isa):
        indptr, indices = csr([degree, 1, degree // 3 + 1], 50, seeded)
        codes = random_codes(50, 33, bits, seeded)
        codes[7] = 2**bits - 1  # a row of maximal codes, referenced many times
        indices[::3] = 7
        packed = kernels.pack(codes, bits)
        _check_exact(indptr, indices, packed, bits, 33, 0.25, zero, None)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", (2, 4, 8))
def test_degree_skewed_graph_in_parallel(isa, bits, seeded):
    degrees = skewed_degrees(3000, seeded)
    degrees[100] = 2000
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with kernels.use_isa(isa):
            indptr, indices, packed, zero, scale, rs = _case(seeded, degrees.tolist(), 3000, 64, bits)
            _check_exact(indptr, indices, packed, bits, 64, scale, zero, rs)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("isa", ISAS)
def test_single_node_and_empty_graphs(isa, seeded):
    with kernels.use_isa(isa):
        for bits in (2, 8):
            # One node with a self-loop; one node without edges; no rows at all.
            for degrees in ([1], [0], []):
                indptr, indices = csr(degrees, 1, seeded)
                packed = kernels.pack(random_codes(1, 17, bits, seeded), bits)
                _check_exact(indptr, indices, packed, bits, 17, 0.5, 1, None)
            # Zero feature columns.
            indptr, indices = csr([2, 1], 3, seeded)
            packed = kernels.pack(random_codes(3, 0, bits, seeded), bits)
            assert kernels.spmm(indptr, indices, packed, bits, 0, 0.5, 1).shape == (2, 0)


def _weighted_bound(indptr, indices, values, packed, bits, cols, mult, scale, zero, rs):
    centred = (unpack_reference(packed, bits, cols).to(torch.float64) * mult - zero).abs()
    n = indptr.numel() - 1
    adj = torch.sparse_csr_tensor(indptr, indices.to(torch.int64), values.abs().to(torch.float64),
                                  (n, packed.shape[0]), check_invariants=False)
    mag = adj @ centred if indices.numel() else torch.zeros(n, cols, dtype=torch.float64)
    deg = (indptr[1:] - indptr[:-1]).to(torch.float64).unsqueeze(1)
    rs_abs = rs.abs().to(torch.float64).unsqueeze(1) if rs is not None else 1.0
    return ((deg + 3) * 2.0**-23 * scale * rs_abs * mag).to(torch.float32) + 1e-30


@pytest.mark.filterwarnings("ignore:Sparse CSR")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", BITS)
def test_weighted_within_float32_rounding(isa, bits, seeded):
    with kernels.use_isa(isa):
        for cols in (3, 33, 130):
            indptr, indices, packed, zero, scale, rs = _case(seeded, [0, 3, 40, 1, 7, 300], 60, cols, bits)
            values = torch.randn(indices.numel(), generator=seeded)
            out = kernels.spmm(indptr, indices, packed, bits, cols, scale, zero, values=values, row_scale=rs)
            ref = spmm_reference(indptr, indices, values, packed, bits, cols, 1, scale, zero, rs)
            bound = _weighted_bound(indptr, indices, values, packed, bits, cols, 1, scale, zero, rs)
            assert bool(((out - ref).abs() <= bound).all()), f"max excess {((out - ref).abs() - bound).max()}"


GRIDS_OUT = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 0), (2, 85, 17), (2, 85, -40), (4, 1, 3)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", (2, 4, 8))
@pytest.mark.parametrize("out_grid", GRIDS_OUT)
def test_requant_is_exact(isa, bits, out_grid, seeded):
    out_bits, out_mult, out_skew = out_grid
    with kernels.use_isa(isa):
        for cols in (3, 33, 130):
            indptr, indices, packed, zero, scale, rs = _case(seeded, [0, 2, 9, 1, 90, 4], 30, cols, bits)
            # A grid narrow enough that both clamps and many interior codes occur.
            levels = out_mult * (2**out_bits - 1)
            out_scale = float(torch.rand(1, generator=seeded)) * 4 * scale + 1e-3
            out_zero = levels // 2
            for values in (None, torch.randn(indices.numel(), generator=seeded)):
                got = kernels.spmm_requant(indptr, indices, packed, bits, cols, scale, zero, out_bits, out_scale,
                                           out_zero, out_mult=out_mult, out_skew=out_skew, values=values, row_scale=rs)
                ref = spmm_requant_reference(indptr, indices, values, packed, bits, cols, 1, scale, zero, rs,
                                             out_bits, out_scale, out_zero, out_mult, out_skew)
                if values is None:
                    assert torch.equal(got, ref)
                else:  # equal given identical float sums; the float32 sum may differ in the last bit
                    diff = (unpack_reference(got, out_bits, cols).int() - unpack_reference(ref, out_bits, cols).int())
                    assert int(diff.abs().max()) <= 1 if diff.numel() else True


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", BITS)
def test_gather_floor_matches_reference(isa, bits, seeded):
    with kernels.use_isa(isa):
        for cols in (1, 33, 130, 600):
            indptr, indices = csr([0, 3, 1, 20, 0, 2], 12, seeded)
            packed = kernels.pack(random_codes(12, cols, bits, seeded), bits)
            assert torch.equal(kernels.gather_floor(indptr, indices, packed),
                               gather_floor_reference(indptr, indices, packed))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    isa=st.sampled_from(ISAS),
    bits=st.sampled_from(BITS),
    cols=st.integers(1, 140),
    num_src=st.integers(1, 30),
    degrees=st.lists(st.integers(0, 12), min_size=0, max_size=25),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_shapes(isa, bits, cols, num_src, degrees, seed):
    gen = torch.Generator().manual_seed(seed)
    with kernels.use_isa(isa):
        indptr, indices, packed, zero, scale, rs = _case(gen, degrees, num_src, cols, bits)
        _check_exact(indptr, indices, packed, bits, cols, scale, zero, rs)
        got = kernels.spmm_requant(indptr, indices, packed, bits, cols, scale, zero, 2, 0.7, 1)
        ref = spmm_requant_reference(indptr, indices, None, packed, bits, cols, 1, scale, zero, None, 2, 0.7, 1, 1, 0)
        assert torch.equal(got, ref)


@pytest.mark.filterwarnings("ignore:Sparse CSR")
@pytest.mark.parametrize("bits", (2, 8))
def test_opcheck(bits, seeded):
    indptr, indices, packed, zero, scale, rs = _case(seeded, [2, 0, 5, 1], 9, 37, bits)
    values = torch.randn(indices.numel(), generator=seeded)
    for v, r in ((None, None), (values, rs)):
        args = (indptr, indices, v, packed, bits, 37, 1, scale, zero, r)
        torch.library.opcheck(torch.ops.qgnn.spmm.default, args)
        torch.library.opcheck(torch.ops.qgnn.spmm_requant.default, args + (4, 0.3, 7, 1, 0))
    torch.library.opcheck(torch.ops.qgnn.gather_floor.default, (indptr, indices, packed))


def _good(gen):
    indptr, indices = csr([2, 0, 3], 4, gen)
    return indptr, indices, kernels.pack(random_codes(4, 10, 2, gen), 2)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p, i, k: (p, i.to(torch.int64), k, 2, 10, {}), "indices must be a 1-D torch.int32"),
        (lambda p, i, k: (p.to(torch.int32), i, k, 2, 10, {}), "indptr must be a 1-D torch.int64"),
        (lambda p, i, k: (p, i, k, 2, 40, {}), "words"),
        (lambda p, i, k: (p, i, k, 3, 10, {}), "unsupported bit width"),
        (lambda p, i, k: (p, i, k.to(torch.float32), 2, 10, {}), "packed must be a 2-D torch.int32"),
        (lambda p, i, k: (p, torch.tensor([0, 1, 2, 4, 1], dtype=torch.int32), k, 2, 10, {}), "out of range"),
        (lambda p, i, k: (p, torch.tensor([0, 1, 2, -1, 1], dtype=torch.int32), k, 2, 10, {}), "out of range"),
        (lambda p, i, k: (torch.tensor([0, 3, 2, 5]), i, k, 2, 10, {}), "non-decreasing"),
        (lambda p, i, k: (torch.tensor([0, 2, 2, 4]), i, k, 2, 10, {}), "ends at"),
        (lambda p, i, k: (p, i, k, 2, 10, {"values": torch.ones(3)}), "values has"),
        (lambda p, i, k: (p, i, k, 2, 10, {"values": torch.ones(5, dtype=torch.float64)}), "values must be"),
        (lambda p, i, k: (p, i, k, 2, 10, {"row_scale": torch.ones(4)}), "row_scale has"),
    ],
)
def test_bad_inputs_raise_clear_errors(mutate, message, seeded):
    indptr, indices, packed, bits, cols, kw = mutate(*_good(seeded))
    with pytest.raises(ValueError, match=message):
        kernels.spmm(indptr, indices, packed, bits, cols, 0.5, 1, **kw)


def test_bad_grids_and_overflow_raise(seeded):
    indptr, indices, packed = _good(seeded)
    with pytest.raises(ValueError, match="zero point"):
        kernels.spmm(indptr, indices, packed, 2, 10, 0.5, 4)
    with pytest.raises(ValueError, match="scale"):
        kernels.spmm(indptr, indices, packed, 2, 10, 0.0, 1)
    with pytest.raises(ValueError, match="unsupported bit width"):
        kernels.spmm_requant(indptr, indices, packed, 2, 10, 0.5, 1, 3, 0.5, 1)
    big = torch.tensor([0, 2**24], dtype=torch.int64)
    with pytest.raises(ValueError, match="overflow"):
        kernels.spmm(big, torch.zeros(2**24, dtype=torch.int32),
                     kernels.pack(torch.zeros(1, 4, dtype=torch.uint8), 8), 8, 4, 0.5, 1)


@pytest.mark.parametrize("isa", ISAS)
def test_compiled_kernels_refuse_malformed_csr_from_direct_calls(isa, seeded):
    # Bypassing the Python checks must raise, never read out of bounds.
    indptr, indices, packed = _good(seeded)
    bad = indices.clone()
    bad[1] = 1000
    with kernels.use_isa(isa):
        for op, extra in ((torch.ops.qgnn.spmm, ()), (torch.ops.qgnn.spmm_requant, (2, 0.5, 1, 1, 0))):
            with pytest.raises(RuntimeError, match="malformed CSR"):
                op(indptr, bad, None, packed, 2, 10, 1, 0.5, 1, None, *extra)
            with pytest.raises(RuntimeError, match="malformed CSR"):
                op(torch.tensor([0, 3, 2, 5]), indices, None, packed, 2, 10, 1, 0.5, 1, None, *extra)
        with pytest.raises(RuntimeError, match="malformed CSR"):
            torch.ops.qgnn.gather_floor(indptr, bad, packed)


def test_large_outputs_reuse_blocks_without_aliasing(seeded):
    # Outputs of 8 MB and more come from a cache of released blocks (csrc/cpu/output_cache.cpp): a
    # live result must never be handed out again, and a reused block must be fully overwritten.
    rows, cols = 70_000, 32  # 8.96 MB of float32
    indptr, indices = csr(torch.full((rows,), 2), 50, seeded)
    packed = kernels.pack(random_codes(50, cols, 4, seeded), 4)
    ref = spmm_reference(indptr, indices, None, packed, 4, cols, 1, 0.5, 3, None)
    first = kernels.spmm(indptr, indices, packed, 4, cols, 0.5, 3)
    second = kernels.spmm(indptr, indices, packed, 4, cols, 0.5, 3)
    assert first.data_ptr() != second.data_ptr()
    second.fill_(float("nan"))
    assert torch.equal(first, ref)
    del second
    third = kernels.spmm(indptr, indices, packed, 4, cols, 0.5, 3)  # may reuse the NaN-filled block
    assert torch.equal(third, ref) and torch.equal(first, ref)
