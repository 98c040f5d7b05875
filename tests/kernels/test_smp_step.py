"""qgnn::smp_delta / smp_update: every compiled path against the PyTorch reference.

Codes and float outputs must equal the reference exactly (spmm_requant's integer sums and epilogue, the
same float32 operations in the same order, the one rounding rule); the energy sums are float64 sums of
exact products in another order, so they match to float64 rounding: |got - ref| <= 1e-12 * sum |products|.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qgnn_cli import kernels
from qgnn_cli.kernels.smp import MODES, OFF, smp_delta_reference, smp_update_reference

from ._graphs import csr, isas, random_codes, random_zero, skewed_degrees

ISAS = isas()
WIDTHS = (1, 3, 7, 8, 12, 16, 17, 33, 130)  # 8, 12: 8- and 12-byte 8-bit rows; 7: Cora's classes
GRIDS = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 0), (2, 85, 20), (2, 85, -42)]  # (bits, mult, skew)
CONSTS = dict(keep=0.0, smooth=0.9, eta=0.1)  # SMP's mu = 9, eta = 0.1: 1 - (1 + mu) eta is 0 in float64
OFF_GRID = (OFF, 1.0, 0, 1, 0)


def _grid(spec, gen, scale=None):
    bits, mult, skew = spec
    s = float(torch.rand(1, generator=gen)) * 0.2 + 1e-3 if scale is None else scale
    return (bits, s, random_zero(bits, mult, gen), mult, skew)


def _packed(rows, cols, grid, gen):
    return kernels.pack(random_codes(rows, cols, grid[0], gen), grid[0])


def _graph(rows, gen, degrees=None):
    """A + I-like CSR (skewed degrees, empty rows, duplicates) and a D^-1/2 with isolated nodes (1.0)."""
    indptr, indices = csr(skewed_degrees(rows, gen) if degrees is None else degrees, rows, gen)
    d = torch.rand(rows, generator=gen) + 0.05
    d[::5] = 1.0
    return indptr, indices, d


def _fields(grids):
    return [list(f) for f in zip(*grids)]


def _close(got, ref, bound):
    assert got.dtype == torch.float64 and got.dim() == 0
    assert abs(float(got) - float(ref)) <= 1e-12 * bound + 1e-300, (float(got), float(ref))


def _check_delta(graph, pre, x, h, cols, grids, consts, want_dx=True):
    indptr, indices, dinv = graph
    got = kernels.smp_delta(indptr, indices, pre, x, h, dinv, cols, grids, **consts, want_dx=want_dx)
    args = (indptr, indices, pre, x, h, dinv, cols, *_fields(grids), consts["keep"], consts["smooth"], consts["eta"])
    ref = smp_delta_reference(*args, want_dx)
    for k in range(3):
        assert got[k].shape == ref[k].shape and torch.equal(got[k], ref[k]), k
    dx = smp_delta_reference(*args, True)[2].double()
    _close(got[3], ref[3], float((dx * dx).sum()))


def _check_update(graph, dxc, x, ax, h, cols, grids, consts, c, mode):
    indptr, indices, dinv = graph
    dxc = None if mode == "appnp" else dxc
    got = kernels.smp_update(indptr, indices, dxc, x, ax, h, dinv, cols, grids, **consts, c=c, mode=mode)
    fields = _fields(grids if mode != "appnp" else [grids[2]] * 2 + grids[2:])
    ref = smp_update_reference(indptr, indices, dxc, x, ax, h, dinv, cols, *fields, consts["keep"], consts["smooth"],
                               consts["eta"], c, MODES.index(mode))
    assert got[0].dtype == ref[0].dtype and torch.equal(got[0], ref[0])
    assert got[1].shape == ref[1].shape and torch.equal(got[1], ref[1])
    _close(got[2], ref[2], float(ref[2].abs()) + 1.0)


def _delta_case(rows, cols, specs, gen, degrees=None):
    grids = [_grid(s, gen) for s in specs]  # agg_in, ax, x, h, dx_in
    pre, x, h = (_packed(rows, cols, grids[k], gen) for k in (0, 2, 3))
    return _graph(rows, gen, degrees), pre, x, h, grids


def _update_case(rows, cols, specs, gen, degrees=None):
    grids = [_grid(s, gen) for s in specs]  # agg_in, adx, x, ax, h, update, next_in
    dxc, x, ax, h = (_packed(rows, cols, grids[k], gen) for k in (0, 2, 3, 4))
    return _graph(rows, gen, degrees), dxc, x, ax, h, grids


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", GRIDS)
@pytest.mark.parametrize("cols", WIDTHS)
def test_delta_matches_reference(isa, spec, cols, seeded):
    with kernels.use_isa(isa):
        graph, pre, x, h, grids = _delta_case(23, cols, [spec, GRIDS[1], spec, GRIDS[3], spec], seeded)
        _check_delta(graph, pre, x, h, cols, grids, CONSTS)
        _check_delta(graph, pre, x, h, cols, grids, CONSTS, want_dx=False)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", GRIDS)
@pytest.mark.parametrize("cols", WIDTHS)
@pytest.mark.parametrize("mode", MODES)
def test_update_matches_reference(isa, spec, cols, mode, seeded):
    with kernels.use_isa(isa):
        graph, dxc, x, ax, h, grids = _update_case(19, cols, [spec, GRIDS[2], spec, GRIDS[1], GRIDS[3], spec, spec],
                                                   seeded)
        c = 2 * 0.1 * 0.0137
        for u, n in ((grids[5], grids[6]), (grids[5], OFF_GRID), (OFF_GRID, grids[6]), (OFF_GRID, OFF_GRID)):
            _check_update(graph, dxc, x, ax, h, cols, [*grids[:5], u, n], CONSTS, c, mode)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", [(2, 1, 0), (4, 1, 0), (2, 85, 0), (2, 85, 20)])
@pytest.mark.parametrize("cols", (1, 7, 16))
def test_one_bit_width_for_every_site(isa, spec, cols, seeded):
    """Every grid of the same width and rows of at most 16 codes: the AVX-512 unit's specialised rows."""
    with kernels.use_isa(isa):
        graph, pre, x, h, grids = _delta_case(29, cols, [spec] * 5, seeded, degrees=skewed_degrees(29, seeded))
        _check_delta(graph, pre, x, h, cols, grids, CONSTS)
        graph, dxc, x, ax, h, grids = _update_case(29, cols, [spec] * 7, seeded, degrees=skewed_degrees(29, seeded))
        for mode in MODES:
            for u, n in ((grids[5], grids[6]), (grids[5], OFF_GRID), (OFF_GRID, grids[6])):
                _check_update(graph, dxc, x, ax, h, cols, [*grids[:5], u, n], CONSTS, 0.0291, mode)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", [(2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 20)])
@pytest.mark.parametrize("cols", (1, 7, 16, 17, 33))
@pytest.mark.parametrize("mode", MODES)
def test_the_last_step_with_its_aggregated_results_off(isa, spec, cols, mode, seeded):
    """The last SMP step's plan (nn/smp.py): A(X) and A(dX) off, so AX passes from smp_delta to smp_update
    as float32 values, and the update off or on. One width for every other site (cols <= 16: the
    AVX-512 unit's specialised rows) and mixed widths."""
    with kernels.use_isa(isa):
        for specs in ([spec] * 5, [spec, GRIDS[1], GRIDS[2], GRIDS[3], spec]):
            graph, pre, x, h, grids = _delta_case(31, cols, specs, seeded)
            grids[1] = OFF_GRID
            _check_delta(graph, pre, x, h, cols, grids, CONSTS)
            ax, dxc = kernels.smp_delta(*graph[:2], pre, x, h, graph[2], cols, grids, **CONSTS)[:2]
            assert ax.dtype == torch.float32 and ax.shape == (31, cols)
            u = (specs[2][0], 0.05, 1, specs[2][1], specs[2][2])
            for update, nxt in ((OFF_GRID, OFF_GRID), (u, OFF_GRID), (u, grids[0])):
                ugrids = [grids[4], OFF_GRID, grids[2], OFF_GRID, grids[3], update, nxt]
                _check_update(graph, dxc, x, ax, h, cols, ugrids, CONSTS, 0.0291, mode)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", (2, 4, 8))
def test_ties_round_half_to_even(isa, bits, seeded):
    # Scales and constants that are powers of two make x / scale land exactly on m + 0.5 often.
    cols, rows = 37, 40
    g = (bits, 0.25, (2**bits - 1) // 2, 1, 0)
    consts = dict(keep=0.5, smooth=0.25, eta=0.25)
    graph = (*_graph(rows, seeded)[:2], torch.full((rows,), 0.5))
    pre, x, ax, h = (_packed(rows, cols, g, seeded) for _ in range(4))
    with kernels.use_isa(isa):
        _check_delta(graph, pre, x, h, cols, [g] * 5, consts)
        for mode in MODES:
            _check_update(graph, pre, x, ax, h, cols, [g] * 5 + [(bits, 0.125, 1, 1, 0), g], consts, 0.5, mode)


@pytest.mark.parametrize("isa", ISAS)
def test_empty_shapes(isa, seeded):
    g = (2, 0.1, 1, 1, 0)
    with kernels.use_isa(isa):
        for rows, cols in ((0, 5), (4, 0), (0, 0)):
            graph = _graph(rows, seeded)
            t = _packed(rows, cols, g, seeded)
            _check_delta(graph, t, t, t, cols, [g] * 5, CONSTS)
            _check_update(graph, t, t, t, t, cols, [g] * 7, CONSTS, 0.01, "authors")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", (2, 8))
def test_high_degree_rows_and_many_blocks(isa, bits, seeded):
    # Rows of degree 5000 on maximal codes and zero points (the largest integer sums), and more rows than
    # one block of the kernels' energy partial sums.
    rows = 5000
    degrees = torch.ones(rows, dtype=torch.int64)
    degrees[[3, 2100, 4999]] = 5000
    spec = (bits, 1, 0)
    with kernels.use_isa(isa):
        graph, pre, x, h, grids = _delta_case(rows, 16, [spec] * 5, seeded, degrees)
        grids[0] = (bits, 0.01, 2**bits - 1, 1, 0)
        pre = kernels.pack(torch.full((rows, 16), 2**bits - 1, dtype=torch.uint8), bits)
        _check_delta(graph, pre, x, h, 16, grids, CONSTS)
        graph, dxc, x, ax, h, ugrids = _update_case(rows, 16, [spec] * 7, seeded, degrees)
        _check_update(graph, pre, x, ax, h, 16, [grids[0], *ugrids[1:]], CONSTS, 0.3, "exact")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(isa=st.sampled_from(ISAS), specs=st.lists(st.sampled_from(GRIDS), min_size=7, max_size=7),
       rows=st.integers(0, 30), cols=st.integers(0, 70), mode=st.sampled_from(MODES),
       c=st.floats(-2.0, 2.0), seed=st.integers(0, 2**31 - 1))
def test_fuzz(isa, specs, rows, cols, mode, c, seed):
    gen = torch.Generator().manual_seed(seed)
    with kernels.use_isa(isa):
        graph, pre, x, h, grids = _delta_case(rows, cols, specs[:5], gen)
        _check_delta(graph, pre, x, h, cols, grids, CONSTS)
        graph, dxc, x, ax, h, grids = _update_case(rows, cols, specs, gen)
        _check_update(graph, dxc, x, ax, h, cols, grids, CONSTS, c, mode)


@pytest.mark.parametrize("bits", (1, 2, 4, 8))
def test_opcheck(bits, seeded):
    spec = (bits, 1, 0)
    (indptr, indices, dinv), pre, x, h, grids = _delta_case(9, 21, [spec] * 5, seeded)
    torch.library.opcheck(torch.ops.qgnn.smp_delta.default,
                          (indptr, indices, pre, x, h, dinv, 21, *_fields(grids), 0.0, 0.9, 0.1, True))
    for mode in (0, 1):
        fields = _fields(grids + [grids[0], OFF_GRID])
        torch.library.opcheck(torch.ops.qgnn.smp_update.default,
                              (indptr, indices, pre, x, pre, h, dinv, 21, *fields, 0.0, 0.9, 0.1, 0.02, mode))
    fields = _fields(grids + [OFF_GRID, grids[1]])
    torch.library.opcheck(torch.ops.qgnn.smp_update.default,
                          (indptr, indices, None, x, pre, h, dinv, 21, *fields, 0.0, 0.9, 0.1, 0.0, 2))
    # the last step: AX and A(dX) off, AX in float32
    off_ax = [grids[0], OFF_GRID, *grids[2:]]
    torch.library.opcheck(torch.ops.qgnn.smp_delta.default,
                          (indptr, indices, pre, x, h, dinv, 21, *_fields(off_ax), 0.0, 0.9, 0.1, False))
    ax = torch.rand(9, 21, generator=seeded)
    fields = _fields([grids[0], OFF_GRID, grids[2], OFF_GRID, grids[3], OFF_GRID, OFF_GRID])
    torch.library.opcheck(torch.ops.qgnn.smp_update.default,
                          (indptr, indices, pre, x, ax, h, dinv, 21, *fields, 0.0, 0.9, 0.1, 0.02, 0))


def _bad_calls(check=True):
    g = (2, 0.1, 1, 1, 0)
    x = torch.zeros(4, 1, dtype=torch.int32)  # 4 rows of 16 2-bit codes
    d = torch.ones(4)
    ip, ix = torch.arange(5, dtype=torch.int64), torch.arange(4, dtype=torch.int32)
    delta = lambda *a, **k: kernels.smp_delta(*a, **k, keep=0.0, smooth=0.9, eta=0.1, check=check)  # noqa: E731
    update = lambda *a, **k: kernels.smp_update(*a, **k, keep=0.0, smooth=0.9, eta=0.1, c=0.0, check=check)  # noqa: E731
    return [
        (lambda: delta(ip, ix, x, x, x, d, 17, [g] * 5), "words"),
        (lambda: delta(torch.arange(6), ix, x, x, x, torch.ones(5), 16, [g] * 5), "rows"),
        (lambda: delta(ip, ix, x, x, x, d, 16, [g] * 4), "5 grids"),
        (lambda: delta(ip, ix, x, x, x, d, 16, [g, g, g, g, OFF_GRID]), "unsupported bit width"),
        (lambda: delta(ip, ix, x, x, x, d, 16, [g, g, g, g, (2, 0.1, 9, 1, 0)]), "zero point"),
        (lambda: delta(ip, ix, x.long(), x, x, d, 16, [g] * 5), "int32"),
        (lambda: delta(ip[:4], ix, x, x, x, d, 16, [g] * 5), "indptr"),
        (lambda: delta(ip, ix.long(), x, x, x, d, 16, [g] * 5), "indices"),
        (lambda: update(ip, ix, None, x, x, x, d, 16, [g] * 7, mode="authors"), "needs dxc"),
        (lambda: update(ip, ix, x, x, x, x, d, 16, [g] * 7, mode="fast"), "mode"),
        (lambda: update(ip, ix, x, x, x, x, d, 16, [g] * 6, mode="exact"), "7 grids"),
        (lambda: update(ip, ix, x, x, x, x, d, 16, [g, g, g, OFF_GRID, g, g, g], mode="exact"), "float32"),
        (lambda: update(ip, ix, x, x, torch.zeros(4, 15), x, d, 16, [g, g, g, OFF_GRID, g, g, g], mode="exact"),
         "15 columns"),
        (lambda: kernels.smp_update(ip, ix, x, x, x, x, d, 16, [g] * 7, 0.0, 0.9, 0.1, float("nan"), "authors"),
         "finite"),
    ]


@pytest.mark.parametrize("call,message", _bad_calls())
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(not kernels.extension_available(), reason="needs the compiled extension")
@pytest.mark.parametrize("call,message", [c for c in _bad_calls(check=False) if c[1] != "finite"])
def test_unchecked_calls_still_raise_in_the_op(call, message):
    # check=False (the packed runtime) leaves shapes, grids and the CSR to the op, which raises
    with pytest.raises((ValueError, RuntimeError)):
        call()


@pytest.mark.skipif(not kernels.extension_available(), reason="needs the compiled extension")
@pytest.mark.parametrize("isa", ISAS)
def test_malformed_csr_and_shapes_raise_instead_of_reading_out_of_bounds(isa):
    x, d = torch.zeros(4, 1, dtype=torch.int32), torch.ones(4)
    ip, ix = torch.arange(5, dtype=torch.int64), torch.arange(4, dtype=torch.int32)
    f5, f7 = _fields([(2, 0.1, 1, 1, 0)] * 5), _fields([(2, 0.1, 1, 1, 0)] * 7)
    consts = (0.0, 0.9, 0.1)
    with kernels.use_isa(isa):
        for indptr, indices in ((ip, torch.tensor([0, 1, 4, 2], dtype=torch.int32)),  # an index past the rows
                                (ip, torch.tensor([0, 1, -1, 2], dtype=torch.int32)),
                                (torch.tensor([0, 1, 9, 3, 4]), ix)):  # indptr past nnz
            with pytest.raises(RuntimeError, match="malformed CSR"):
                torch.ops.qgnn.smp_delta(indptr, indices, x, x, x, d, 16, *f5, *consts, False)
            with pytest.raises(RuntimeError, match="malformed CSR"):
                torch.ops.qgnn.smp_update(indptr, indices, x, x, x, x, d, 16, *f7, *consts, 0.0, 0)
        # A row whose integer sum could overflow int32: degree > (2^31 - 1) / 255 at 8 bits, zero 255.
        big = torch.zeros(8_500_000, dtype=torch.int32)
        g8 = _fields([(8, 0.1, 255, 1, 0)] * 5)
        with pytest.raises(RuntimeError, match="malformed CSR"):
            torch.ops.qgnn.smp_delta(torch.tensor([0, big.numel()]), big, torch.zeros(1, 1, dtype=torch.int32),
                                     torch.zeros(1, 1, dtype=torch.int32), torch.zeros(1, 1, dtype=torch.int32),
                                     torch.ones(1), 1, *g8, *consts, False)
        with pytest.raises(RuntimeError):
            torch.ops.qgnn.smp_delta(ip, ix, x, x, torch.zeros(3, 1, dtype=torch.int32), d, 16, *f5, *consts, False)
        with pytest.raises(RuntimeError):
            torch.ops.qgnn.smp_delta(ip, ix, x, x, x, d, 40, *f5, *consts, False)
        with pytest.raises(RuntimeError):
            torch.ops.qgnn.smp_update(ip, ix, None, x, x, x, d, 16, *f7, *consts, 0.0, 0)
