"""qgnn::smp_delta / smp_update: every compiled path against the PyTorch reference.

Codes and float outputs must equal the reference exactly (the same float32 operations in the same
order, the one rounding rule); the energy sums are float64 sums of exact products in another order,
so they match to float64 rounding: |got - ref| <= 1e-12 * sum |products|.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qgnn_cli import kernels
from qgnn_cli.kernels.smp import MODES, OFF, smp_delta_reference, smp_update_reference

from ._graphs import isas, random_codes, random_zero

ISAS = isas()
WIDTHS = (1, 3, 16, 17, 33, 130)
GRIDS = [(1, 1, 0), (2, 1, 0), (4, 1, 0), (8, 1, 0), (2, 85, 0), (2, 85, 20), (2, 85, -42)]  # (bits, mult, skew)
CONSTS = dict(keep=0.0, smooth=0.9, eta=0.1)  # SMP's mu = 9, eta = 0.1: 1 - (1 + mu) eta is 0 in float64


def _grid(spec, gen, scale=None):
    bits, mult, skew = spec
    s = float(torch.rand(1, generator=gen)) * 0.2 + 1e-3 if scale is None else scale
    return (bits, s, random_zero(bits, mult, gen), mult, skew)


def _packed(rows, cols, grid, gen):
    return kernels.pack(random_codes(rows, cols, grid[0], gen), grid[0])


def _dinv(rows, gen):
    d = torch.rand(rows, generator=gen) + 0.05
    d[::5] = 1.0  # isolated nodes: A + I has degree 1
    return d


def _inputs(rows, cols, specs, gen):
    grids = [_grid(s, gen) for s in specs]
    return [_packed(rows, cols, g, gen) for g in grids[:4]], grids


def _close(got, ref, bound):
    assert got.dtype == torch.float64 and got.dim() == 0
    assert abs(float(got) - float(ref)) <= 1e-12 * bound + 1e-300, (float(got), float(ref))


def _check_delta(x, ax, h, dinv, cols, grids, consts, want_dx=True):
    got = kernels.smp_delta(x, ax, h, dinv, cols, grids, **consts, want_dx=want_dx)
    args = (x, ax, h, dinv, cols, *(list(f) for f in zip(*grids)), consts["keep"], consts["smooth"], consts["eta"])
    ref = smp_delta_reference(*args, want_dx)
    assert torch.equal(got[0], ref[0])
    assert got[1].shape == ref[1].shape and torch.equal(got[1], ref[1])
    dx = smp_delta_reference(*args, True)[1].double()
    _close(got[2], ref[2], float((dx * dx).sum()))


def _check_update(x, ax, h, adx, dinv, cols, grids, consts, c, mode):
    got = kernels.smp_update(x, ax, h, adx, dinv, cols, grids, **consts, c=c, mode=mode)
    g = [list(f) for f in zip(*grids)]
    ref = smp_update_reference(x, ax, h, adx, dinv, cols, *g, consts["keep"], consts["smooth"], consts["eta"], c,
                               MODES.index(mode))
    assert got[0].dtype == ref[0].dtype and torch.equal(got[0], ref[0])
    assert got[1].shape == ref[1].shape and torch.equal(got[1], ref[1])
    _close(got[2], ref[2], float(ref[2].abs()) + 1.0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", GRIDS)
@pytest.mark.parametrize("cols", WIDTHS)
def test_delta_matches_reference(isa, spec, cols, seeded):
    with kernels.use_isa(isa):
        (x, ax, h, _), grids = _inputs(23, cols, [spec, GRIDS[1], GRIDS[3], spec], seeded)
        dinv = _dinv(23, seeded)
        _check_delta(x, ax, h, dinv, cols, grids, CONSTS)
        _check_delta(x, ax, h, dinv, cols, grids, CONSTS, want_dx=False)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("spec", GRIDS)
@pytest.mark.parametrize("cols", WIDTHS)
@pytest.mark.parametrize("mode", MODES)
def test_update_matches_reference(isa, spec, cols, mode, seeded):
    with kernels.use_isa(isa):
        (x, ax, h, adx), grids = _inputs(19, cols, [spec, GRIDS[2], spec, GRIDS[1]], seeded)
        dinv = _dinv(19, seeded)
        upd, nxt = _grid(spec, seeded), _grid(GRIDS[3], seeded)
        c = 2 * 0.1 * 0.0137
        for u, n in ((upd, nxt), (upd, (OFF, 1.0, 0, 1, 0)), ((OFF, 1.0, 0, 1, 0), nxt), ((OFF, 1.0, 0, 1, 0),) * 2):
            _check_update(x, ax, h, None if mode == "appnp" else adx, dinv, cols, [*grids, u, n], CONSTS, c, mode)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bits", (2, 4, 8))
def test_ties_round_half_to_even(isa, bits, seeded):
    # Scales and constants that are powers of two make x / scale land exactly on m + 0.5 often.
    cols = 37
    spec = (bits, 1, 0)
    grids = [(bits, 0.25, (2**bits - 1) // 2, 1, 0)] * 4
    consts = dict(keep=0.5, smooth=0.25, eta=0.25)
    x, ax, h, adx = (_packed(40, cols, g, seeded) for g in grids)
    dinv = torch.full((40,), 0.5)
    with kernels.use_isa(isa):
        _check_delta(x, ax, h, dinv, cols, grids, consts)
        for mode in MODES:
            _check_update(x, ax, h, adx, dinv, cols, [*grids, _grid(spec, seeded, 0.125), grids[0]], consts, 0.5, mode)


@pytest.mark.parametrize("isa", ISAS)
def test_empty_shapes(isa, seeded):
    grids = [(2, 0.1, 1, 1, 0)] * 4
    with kernels.use_isa(isa):
        for rows, cols in ((0, 5), (4, 0), (0, 0)):
            x = _packed(rows, cols, grids[0], seeded)
            dinv = torch.ones(rows)
            _check_delta(x, x, x, dinv, cols, grids, CONSTS)
            _check_update(x, x, x, x, dinv, cols, grids + grids[:2], CONSTS, 0.01, "authors")


@pytest.mark.parametrize("isa", ISAS)
def test_many_rows_cross_the_energy_blocks(isa, seeded):
    # More rows than one block of the kernels' energy partial sums, and rows beyond it.
    (x, ax, h, adx), grids = _inputs(5000, 16, [GRIDS[1]] * 4, seeded)
    dinv = _dinv(5000, seeded)
    with kernels.use_isa(isa):
        _check_delta(x, ax, h, dinv, 16, grids, CONSTS)
        _check_update(x, ax, h, adx, dinv, 16, [*grids, grids[0], grids[1]], CONSTS, 0.3, "exact")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(isa=st.sampled_from(ISAS), specs=st.lists(st.sampled_from(GRIDS), min_size=6, max_size=6),
       rows=st.integers(0, 30), cols=st.integers(0, 70), mode=st.sampled_from(MODES),
       c=st.floats(-2.0, 2.0), seed=st.integers(0, 2**31 - 1))
def test_fuzz(isa, specs, rows, cols, mode, c, seed):
    gen = torch.Generator().manual_seed(seed)
    (x, ax, h, adx), grids = _inputs(rows, cols, specs[:4], gen)
    dinv = _dinv(rows, gen)
    with kernels.use_isa(isa):
        _check_delta(x, ax, h, dinv, cols, grids, CONSTS)
        extra = [_grid(specs[4], gen), _grid(specs[5], gen)]
        _check_update(x, ax, h, None if mode == "appnp" else adx, dinv, cols, grids + extra, CONSTS, c, mode)


@pytest.mark.parametrize("bits", (1, 2, 4, 8))
def test_opcheck(bits, seeded):
    spec = (bits, 1, 0)
    (x, ax, h, adx), grids = _inputs(9, 21, [spec] * 4, seeded)
    dinv = _dinv(9, seeded)
    fields = [list(f) for f in zip(*grids)]
    torch.library.opcheck(torch.ops.qgnn.smp_delta.default, (x, ax, h, dinv, 21, *fields, 0.0, 0.9, 0.1, True))
    fields6 = [list(f) for f in zip(*(grids + [grids[0], (OFF, 1.0, 0, 1, 0)]))]
    for mode in (0, 1):
        torch.library.opcheck(torch.ops.qgnn.smp_update.default,
                              (x, ax, h, adx, dinv, 21, *fields6, 0.0, 0.9, 0.1, 0.02, mode))
    fields6 = [list(f) for f in zip(*(grids + [(OFF, 1.0, 0, 1, 0), grids[1]]))]
    torch.library.opcheck(torch.ops.qgnn.smp_update.default,
                          (x, ax, h, None, dinv, 21, *fields6, 0.0, 0.9, 0.1, 0.0, 2))


def _bad_calls():
    g = (2, 0.1, 1, 1, 0)
    x = torch.zeros(4, 1, dtype=torch.int32)  # 4 rows of 16 2-bit codes
    d = torch.ones(4)
    delta = lambda *a, **k: kernels.smp_delta(*a, **k, keep=0.0, smooth=0.9, eta=0.1)  # noqa: E731
    update = lambda *a, **k: kernels.smp_update(*a, **k, keep=0.0, smooth=0.9, eta=0.1, c=0.0)  # noqa: E731
    return [
        (lambda: delta(x, x, x, d, 17, [g] * 4), "words"),
        (lambda: delta(x, x, x, torch.ones(5), 16, [g] * 4), "rows"),
        (lambda: delta(x, x, x, d, 16, [g] * 3), "4 grids"),
        (lambda: delta(x, x, x, d, 16, [g, g, g, (OFF, 1.0, 0, 1, 0)]), "unsupported bit width"),
        (lambda: delta(x, x, x, d, 16, [g, g, g, (2, 0.1, 9, 1, 0)]), "zero point"),
        (lambda: delta(x.long(), x, x, d, 16, [g] * 4), "int32"),
        (lambda: update(x, x, x, None, d, 16, [g] * 6, mode="authors"), "needs adx"),
        (lambda: update(x, x, x, x, d, 16, [g] * 6, mode="fast"), "mode"),
        (lambda: update(x, x, x, x, d, 16, [g] * 5, mode="exact"), "6 grids"),
        (lambda: kernels.smp_update(x, x, x, x, d, 16, [g] * 6, 0.0, 0.9, 0.1, float("nan"), "authors"), "finite"),
    ]


@pytest.mark.parametrize("call,message", _bad_calls())
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(not kernels.extension_available(), reason="needs the compiled extension")
def test_direct_op_calls_with_wrong_shapes_raise():
    x, d = torch.zeros(4, 1, dtype=torch.int32), torch.ones(4)
    fields = [[2] * 4, [0.1] * 4, [1] * 4, [1] * 4, [0] * 4]
    with pytest.raises(RuntimeError):
        torch.ops.qgnn.smp_delta(x, x, torch.zeros(3, 1, dtype=torch.int32), d, 16, *fields, 0.0, 0.9, 0.1, False)
    with pytest.raises(RuntimeError):
        torch.ops.qgnn.smp_delta(x, x, x, d, 40, *fields, 0.0, 0.9, 0.1, False)
    fields6 = [f + f[:2] for f in fields]
    with pytest.raises(RuntimeError):
        torch.ops.qgnn.smp_update(x, x, x, None, d, 16, *fields6, 0.0, 0.9, 0.1, 0.0, 0)
