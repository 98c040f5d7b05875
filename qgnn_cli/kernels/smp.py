"""``qgnn::smp_delta`` / ``qgnn::smp_update``: one SMP step on packed rows, each half with its aggregation.

One step of ``nn.smp.smp_propagate``, with every operand stored as packed codes on its site's grid
(``rounding.py``; the value of a code is ``(mult * code - zero) * scale``) and each of the step's two
aggregations fused with the elementwise work that consumes it, row by row::

    agg(t)    = spmm_requant(A + I, t, row_scale = dinv) onto the aggregation's output grid (spmm.py),
                or spmm's float32 values where that site is off (the last step's: nn/smp.py)
    smp_delta:  AX = agg(pre)                                      # pre: Q_x_in(X * dinv), packed
                x, ax, h = values of X, AX, H
                x_half = keep * x + smooth * ax + eta * h          # float32, left to right, no FMA
                dx = x_half - x
                returns AX, Q_dx_in(dx * dinv), dx (float32, on request), sum(dx * dx)
    smp_update: ADX = agg(dx_codes)                                # no aggregation in mode "appnp"
                x_half, dx as above (from X, AX, H), adx = values of ADX
                x_new = x_half + c * adx          (mode "authors")
                x_new = x_half - c * (dx - adx)   (mode "exact")
                x_new = x_half                    (mode "appnp")
                out   = Q_update(x_new) as codes, or x_new in float32 when the update site is off
                pre   = Q_next_in(value(out) * dinv) as codes, or (N, 0) when there is no next step
                returns out, pre, sum(dx * adx) (0 for "appnp")

``keep``, ``smooth``, ``eta`` and ``c`` are rounded to float32 first, as torch rounds a python scalar
multiplying a float32 tensor. The energy sums are float64 sums of the (exact) float64 products, the
identity ``tr(dX^T L dX) = sq - cross`` of the packed runtime's ``energy="identity"``; their summation
order is the kernels' own, so they match the reference to float64 rounding, not bit for bit. Every
other output matches the reference exactly.

Grids are passed field by field, one list entry per site: ``(agg_in, ax, x, h, dx_in)`` for
``smp_delta``; ``(agg_in, adx, x, ax, h, update, next_in)`` for ``smp_update``, where ``agg_in`` and
``adx`` are the A(dX) aggregation's input and output (ignored in mode "appnp"). Bits 32 marks a site
that is off: ``ax`` and ``adx`` (AX then passes between the two ops as float32 values), the update and
next_in. The CSR (``indptr`` int64, ``indices`` int32) is A + I over the
same rows; it is validated once by the caller (``PackedGraph``): the kernels still skip (and report)
any malformed row or out-of-range index instead of reading out of bounds.
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.pack import pack_reference, unpack_reference, words_per_row
from qgnn_cli.kernels.quantize import check_grid
from qgnn_cli.kernels.rounding import dequantize, quantize
from qgnn_cli.kernels.spmm import spmm_reference, spmm_requant_reference
from qgnn_cli.kernels.validate import check_packed, check_tensor

OFF = 32
MODES = ("authors", "exact", "appnp")
_UNUSED = (2, 1.0, 0, 1, 0)  # a valid placeholder for the A(dX) grids in mode "appnp"


def _scale(s: float) -> torch.Tensor:
    return torch.tensor(s, dtype=torch.float32)


def _values(packed, cols, g) -> torch.Tensor:
    """The values of packed rows on grid ``g``; an off site's rows are float32 values already."""
    if g[0] == OFF:
        return packed
    return dequantize(unpack_reference(packed, g[0], cols), _scale(g[1]), float(g[2]), g[3])


def _codes(x, g) -> torch.Tensor:
    return quantize(x, _scale(g[1]), float(g[2]), g[0], g[3], g[4])


def _aggregate(indptr, indices, packed, dinv, cols, g_in, g_out) -> torch.Tensor:
    """Packed rows on ``g_out``, or float32 values where ``g_out`` is off."""
    if g_out[0] == OFF:
        return spmm_reference(indptr, indices, None, packed, g_in[0], cols, g_in[3], g_in[1], g_in[2], dinv)
    return spmm_requant_reference(indptr, indices, None, packed, g_in[0], cols, g_in[3], g_in[1], g_in[2], dinv,
                                  *(g_out[k] for k in (0, 1, 2, 3, 4)))


def _sites(bits, scales, zeros, mults, skews) -> list[tuple]:
    return list(zip(bits, scales, zeros, mults, skews))


def _half(x, ax, h, cols, gx, gax, gh, keep, smooth, eta):
    xv = _values(x, cols, gx)
    half = keep * xv + smooth * _values(ax, cols, gax) + eta * _values(h, cols, gh)  # smp_propagate's expression
    return half, half - xv


def smp_delta_reference(indptr, indices, pre, x, h, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth,
                        eta, want_dx):
    g_in, g_ax, gx, gh, g_dx = _sites(bits, scales, zeros, mults, skews)
    ax = _aggregate(indptr, indices, pre, dinv, cols, g_in, g_ax)
    _, dx = _half(x, ax, h, cols, gx, g_ax, gh, keep, smooth, eta)
    codes = pack_reference(_codes(dx * dinv.unsqueeze(1), g_dx), g_dx[0])
    sq = (dx.to(torch.float64) * dx.to(torch.float64)).sum()
    return ax, codes, dx if want_dx else dx.new_empty((0, cols)), sq


def smp_update_reference(indptr, indices, dxc, x, ax, h, dinv, cols, bits, scales, zeros, mults, skews, keep,
                         smooth, eta, c, mode):
    g_in, g_adx, gx, g_ax, gh, gu, gn = _sites(bits, scales, zeros, mults, skews)
    half, dx = _half(x, ax, h, cols, gx, g_ax, gh, keep, smooth, eta)
    if MODES[mode] == "appnp":
        new, cross = half, torch.zeros((), dtype=torch.float64)
    else:
        adx = _values(_aggregate(indptr, indices, dxc, dinv, cols, g_in, g_adx), cols, g_adx)
        new = half + c * adx if MODES[mode] == "authors" else half - c * (dx - adx)
        cross = (dx.to(torch.float64) * adx.to(torch.float64)).sum()
    if gu[0] == OFF:
        out, value = new, new
    else:
        codes = _codes(new, gu)
        out = pack_reference(codes, gu[0])
        value = dequantize(codes, _scale(gu[1]), float(gu[2]), gu[3])
    if gn[0] == OFF:
        pre = torch.zeros((x.shape[0], 0), dtype=torch.int32)
    else:
        pre = pack_reference(_codes(value * dinv.unsqueeze(1), gn), gn[0])
    return out, pre, cross


def _delta_fake(indptr, indices, pre, x, h, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth, eta,
                want_dx):
    n = x.shape[0]
    return (x.new_empty((n, cols), dtype=torch.float32) if bits[1] == OFF
            else x.new_empty((n, words_per_row(cols, bits[1])), dtype=torch.int32),
            x.new_empty((n, words_per_row(cols, bits[4])), dtype=torch.int32),
            x.new_empty((n if want_dx else 0, cols), dtype=torch.float32), x.new_empty((), dtype=torch.float64))


def _update_fake(indptr, indices, dxc, x, ax, h, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth, eta,
                 c, mode):
    n = x.shape[0]
    out = (x.new_empty((n, cols), dtype=torch.float32) if bits[5] == OFF
           else x.new_empty((n, words_per_row(cols, bits[5])), dtype=torch.int32))
    pre = x.new_empty((n, 0 if bits[6] == OFF else words_per_row(cols, bits[6])), dtype=torch.int32)
    return out, pre, x.new_empty((), dtype=torch.float64)


_GRIDS = "int[] bits, float[] scales, int[] zeros, int[] mults, int[] skews"
define(f"smp_delta(Tensor indptr, Tensor indices, Tensor pre, Tensor x, Tensor h, Tensor dinv, int cols, {_GRIDS}, "
       "float keep, float smooth, float eta, bool want_dx) -> (Tensor, Tensor, Tensor, Tensor)",
       smp_delta_reference, _delta_fake)
define(f"smp_update(Tensor indptr, Tensor indices, Tensor? dxc, Tensor x, Tensor ax, Tensor h, Tensor dinv, int cols, "
       f"{_GRIDS}, float keep, float smooth, float eta, float c, int mode) -> (Tensor, Tensor, Tensor)",
       smp_update_reference, _update_fake)


def _fields(grids: list[tuple], may_be_off: set[int], check: bool = True) -> tuple[list, ...]:
    if check:
        for i, g in enumerate(grids):
            if len(g) != 5:
                raise ValueError(f"grid {i} must be (bits, scale, zero, mult, skew), got {g!r}")
            if not (g[0] == OFF and i in may_be_off):
                check_grid(int(g[0]), float(g[1]), int(g[2]), int(g[3]), int(g[4]))
    return tuple([f(g[k]) for g in grids] for k, f in enumerate((int, float, int, int, int)))


def _check_finite(**consts: float) -> None:
    for name, v in consts.items():
        if not abs(float(v)) < float("inf"):
            raise ValueError(f"{name} must be finite, got {v}")


def _check_graph(indptr, indices, dinv) -> None:
    """O(1) checks. The O(nnz) ones ran once when the graph was prepared (``PackedGraph``); the kernels
    still check every row's range and degree (against the int32 sums) and every index, and raise."""
    check_tensor(indptr, "indptr", torch.int64, 1)
    check_tensor(indices, "indices", torch.int32, 1)
    check_tensor(dinv, "dinv", torch.float32, 1)
    if indptr.numel() != dinv.numel() + 1:
        raise ValueError(f"indptr has {indptr.numel()} entries for {dinv.numel()} rows")


def _check_rows(tensors: dict, grids: list[tuple], cols: int, rows: int) -> None:
    for (name, t), g in zip(tensors.items(), grids):
        if int(g[0]) == OFF:  # an off site's rows: float32 values
            check_tensor(t, name, torch.float32, 2)
            if t.shape[1] != cols:
                raise ValueError(f"{name} has {t.shape[1]} columns, expected {cols}")
        else:
            check_packed(t, int(g[0]), cols, name)
        if t.shape[0] != rows:
            raise ValueError(f"{name} has {t.shape[0]} rows, dinv {rows}")


def smp_delta(indptr, indices, pre, x, h, dinv, cols: int, grids: list[tuple], keep: float, smooth: float,
              eta: float, want_dx: bool = False, check: bool = True):
    """``(AX codes, dx codes, dx float32 or (0, cols), sum(dx * dx))`` (see the module docstring).

    ``grids``: the sites ``agg_x.input`` (of ``pre``), ``agg_x.output``, of ``x``, of ``h``, and ``agg_dx.input``.
    ``agg_x.output`` may be off (bits 32: the last step's): AX comes back as float32 values.
    ``check=False`` skips the checks here for inputs the caller built from a validated model and graph
    (the packed runtime: at Cora's size they cost about as much as the step); the op still checks
    every grid, shape and index itself, and raises.
    """
    if len(grids) != 5:
        raise ValueError(f"smp_delta takes 5 grids (agg_in, ax, x, h, dx_in), got {len(grids)}")
    fields = _fields(grids, {1}, check)
    if check:
        _check_rows({"pre": pre, "x": x, "h": h}, [grids[0], grids[2], grids[3]], cols, dinv.numel())
        _check_graph(indptr, indices, dinv)
        _check_finite(keep=keep, smooth=smooth, eta=eta)
    return torch.ops.qgnn.smp_delta(indptr, indices, pre.contiguous(), x.contiguous(), h.contiguous(),
                                    dinv.contiguous(), int(cols), *fields, float(keep), float(smooth), float(eta),
                                    bool(want_dx))


def smp_update(indptr, indices, dxc, x, ax, h, dinv, cols: int, grids: list[tuple], keep: float, smooth: float,
               eta: float, c: float, mode: str, check: bool = True):
    """``(X codes on the update site or float32 X, next aggregation's input codes or (N, 0), sum(dx * adx))``.

    ``grids``: ``agg_dx.input`` (of ``dxc``), ``agg_dx.output``, the sites of ``x``, ``ax``, ``h``, the update
    and the next step's ``agg_x.input``. Off (bits 32) may be: ``agg_dx.output`` (A(dX) then enters in
    float32), ``ax``'s site (``ax`` is then smp_delta's float32 AX), the update and the next input.
    ``dxc`` is None in mode ``appnp``. ``check=False``: as for :func:`smp_delta`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(grids) != 7:
        raise ValueError(f"smp_update takes 7 grids (agg_in, adx, x, ax, h, update, next_in), got {len(grids)}")
    rows = {"x": x, "ax": ax, "h": h}
    row_grids = [grids[2], grids[3], grids[4]]
    if mode == "appnp":
        dxc, grids = None, [_UNUSED, _UNUSED, *grids[2:]]
    elif dxc is None:
        raise ValueError(f"mode {mode!r} needs dxc")
    else:
        rows["dxc"], row_grids = dxc, [*row_grids, grids[0]]
    fields = _fields(grids, {1, 3, 5, 6}, check)
    if check:
        _check_rows(rows, row_grids, cols, dinv.numel())
        _check_graph(indptr, indices, dinv)
        _check_finite(keep=keep, smooth=smooth, eta=eta, c=c)
    return torch.ops.qgnn.smp_update(indptr, indices, None if dxc is None else dxc.contiguous(), x.contiguous(),
                                     ax.contiguous(), h.contiguous(), dinv.contiguous(), int(cols), *fields,
                                     float(keep), float(smooth), float(eta), float(c), MODES.index(mode))
