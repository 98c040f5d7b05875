"""``qgnn::smp_delta`` / ``qgnn::smp_update``: the elementwise part of one SMP step on packed rows.

One step of ``nn.smp.smp_propagate`` between its two aggregations, with every operand stored as packed
codes on its site's grid (``rounding.py``; the value of a code is ``(mult * code - zero) * scale``)::

    x, ax, h, adx = values of X, A(X), H, A(dX)
    x_half = keep * x + smooth * ax + eta * h                   # float32, left to right, no FMA
    dx     = x_half - x
    smp_delta:  dx_codes = Q_dx_in(dx * dinv[i]);  sq = sum(dx * dx)
    smp_update: x_new = x_half + c * adx             (mode "authors")
                x_new = x_half - c * (dx - adx)      (mode "exact")
                x_new = x_half                       (mode "appnp"; adx unused)
                out   = Q_update(x_new) as codes, or x_new in float32 when the update site is off
                pre   = Q_next_in(value(out) * dinv[i]) as codes, or (N, 0) when there is no next step
                cross = sum(dx * adx)                (0 for "appnp")

``keep``, ``smooth``, ``eta`` and ``c`` are rounded to float32 first, as torch rounds a python scalar
multiplying a float32 tensor. ``sq`` and ``cross`` are float64 sums of the (exact) float64 products:
the energy identity ``tr(dX^T L dX) = sq - cross`` of the packed runtime's ``energy="identity"``; their
summation order is the kernels' own, so they match the reference to float64 rounding, not bit for bit.
Every other output matches the reference exactly. Grids are passed field by field, one list entry per
site: ``(x, ax, h, dx_in)`` for ``smp_delta``, ``(x, ax, h, adx, update, next_in)`` for ``smp_update``;
bits 32 marks a site that is off (only ``update`` and ``next_in`` may be).
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.pack import pack_reference, unpack_reference, words_per_row
from qgnn_cli.kernels.quantize import check_grid
from qgnn_cli.kernels.rounding import dequantize, quantize
from qgnn_cli.kernels.validate import check_packed, check_tensor

OFF = 32
MODES = ("authors", "exact", "appnp")
_UNUSED = (2, 1.0, 0, 1, 0)  # a valid placeholder for the adx grid in mode "appnp"


def _values(packed: torch.Tensor, cols: int, site: int, bits, scales, zeros, mults) -> torch.Tensor:
    codes = unpack_reference(packed, bits[site], cols)
    return dequantize(codes, torch.tensor(scales[site], dtype=torch.float32), float(zeros[site]), mults[site])


def _codes(x: torch.Tensor, site: int, bits, scales, zeros, mults, skews) -> torch.Tensor:
    return quantize(x, torch.tensor(scales[site], dtype=torch.float32), float(zeros[site]), bits[site], mults[site],
                    skews[site])


def _half(x, ax, h, cols, grids, keep, smooth, eta):
    xv, axv, hv = (_values(t, cols, s, *grids[:4]) for s, t in enumerate((x, ax, h)))
    half = keep * xv + smooth * axv + eta * hv  # nn.smp.smp_propagate's expression
    return xv, half, half - xv


def smp_delta_reference(x, ax, h, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth, eta, want_dx):
    grids = (bits, scales, zeros, mults, skews)
    _, _, dx = _half(x, ax, h, cols, grids, keep, smooth, eta)
    codes = pack_reference(_codes(dx * dinv.unsqueeze(1), 3, *grids), bits[3])
    sq = (dx.to(torch.float64) * dx.to(torch.float64)).sum()
    return codes, dx if want_dx else dx.new_empty((0, cols)), sq


def smp_update_reference(x, ax, h, adx, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth, eta, c, mode):
    grids = (bits, scales, zeros, mults, skews)
    _, half, dx = _half(x, ax, h, cols, grids, keep, smooth, eta)
    if MODES[mode] == "appnp":
        new, cross = half, torch.zeros((), dtype=torch.float64)
    else:
        adxv = _values(adx, cols, 3, bits, scales, zeros, mults)
        new = half + c * adxv if MODES[mode] == "authors" else half - c * (dx - adxv)
        cross = (dx.to(torch.float64) * adxv.to(torch.float64)).sum()
    if bits[4] == OFF:
        out, value = new, new
    else:
        codes = _codes(new, 4, *grids)
        out = pack_reference(codes, bits[4])
        value = dequantize(codes, torch.tensor(scales[4], dtype=torch.float32), float(zeros[4]), mults[4])
    if bits[5] == OFF:
        pre = torch.zeros((x.shape[0], 0), dtype=torch.int32)
    else:
        pre = pack_reference(_codes(value * dinv.unsqueeze(1), 5, *grids), bits[5])
    return out, pre, cross


def _delta_fake(x, ax, h, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth, eta, want_dx):
    n = x.shape[0]
    return (x.new_empty((n, words_per_row(cols, bits[3])), dtype=torch.int32),
            x.new_empty((n if want_dx else 0, cols), dtype=torch.float32), x.new_empty((), dtype=torch.float64))


def _update_fake(x, ax, h, adx, dinv, cols, bits, scales, zeros, mults, skews, keep, smooth, eta, c, mode):
    n = x.shape[0]
    out = (x.new_empty((n, cols), dtype=torch.float32) if bits[4] == OFF
           else x.new_empty((n, words_per_row(cols, bits[4])), dtype=torch.int32))
    pre = x.new_empty((n, 0 if bits[5] == OFF else words_per_row(cols, bits[5])), dtype=torch.int32)
    return out, pre, x.new_empty((), dtype=torch.float64)


_GRIDS = "int[] bits, float[] scales, int[] zeros, int[] mults, int[] skews"
define(f"smp_delta(Tensor x, Tensor ax, Tensor h, Tensor dinv, int cols, {_GRIDS}, float keep, float smooth, "
       "float eta, bool want_dx) -> (Tensor, Tensor, Tensor)", smp_delta_reference, _delta_fake)
define(f"smp_update(Tensor x, Tensor ax, Tensor h, Tensor? adx, Tensor dinv, int cols, {_GRIDS}, float keep, "
       "float smooth, float eta, float c, int mode) -> (Tensor, Tensor, Tensor)", smp_update_reference, _update_fake)


def _fields(grids: list[tuple], may_be_off: set[int]) -> tuple[list, ...]:
    for i, g in enumerate(grids):
        if len(g) != 5:
            raise ValueError(f"grid {i} must be (bits, scale, zero, mult, skew), got {g!r}")
        if g[0] == OFF and i in may_be_off:
            continue
        check_grid(int(g[0]), float(g[1]), int(g[2]), int(g[3]), int(g[4]))
    bits, scales, zeros, mults, skews = ([f(g[k]) for g in grids] for k, f in enumerate((int, float, int, int, int)))
    return bits, scales, zeros, mults, skews


def _check_finite(**consts: float) -> None:
    for name, v in consts.items():
        if not abs(float(v)) < float("inf"):
            raise ValueError(f"{name} must be finite, got {v}")


def _check_rows(tensors: dict, grids: list[tuple], cols: int, dinv: torch.Tensor) -> None:
    check_tensor(dinv, "dinv", torch.float32, 1)
    n = dinv.numel()
    for (name, t), g in zip(tensors.items(), grids):
        check_packed(t, int(g[0]), cols, name)
        if t.shape[0] != n:
            raise ValueError(f"{name} has {t.shape[0]} rows, dinv {n}")


def smp_delta(x, ax, h, dinv, cols: int, grids: list[tuple], keep: float, smooth: float, eta: float,
              want_dx: bool = False):
    """``(dx codes on grids[3], dx float32 or (0, cols), sum(dx * dx))`` (see the module docstring).

    ``grids``: the sites of ``x``, ``ax``, ``h`` and the ``A(dX)`` aggregation's input.
    """
    if len(grids) != 4:
        raise ValueError(f"smp_delta takes 4 grids (x, ax, h, dx_in), got {len(grids)}")
    _check_rows({"x": x, "ax": ax, "h": h}, grids, cols, dinv)
    _check_finite(keep=keep, smooth=smooth, eta=eta)
    return torch.ops.qgnn.smp_delta(x.contiguous(), ax.contiguous(), h.contiguous(), dinv.contiguous(), int(cols),
                                    *_fields(grids, set()), float(keep), float(smooth), float(eta), bool(want_dx))


def smp_update(x, ax, h, adx, dinv, cols: int, grids: list[tuple], keep: float, smooth: float, eta: float,
               c: float, mode: str):
    """``(X codes on grids[4] or float32 X, next aggregation's input codes or (N, 0), sum(dx * adx))``.

    ``grids``: the sites of ``x``, ``ax``, ``h``, ``adx``, the update and the next step's ``A(X)``
    input (the last two may be off: bits 32). ``adx`` is None in mode ``appnp``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(grids) != 6:
        raise ValueError(f"smp_update takes 6 grids (x, ax, h, adx, update, next_in), got {len(grids)}")
    rows = {"x": x, "ax": ax, "h": h}
    if mode == "appnp":
        adx, grids = None, [*grids[:3], _UNUSED, *grids[4:]]
    elif adx is None:
        raise ValueError(f"mode {mode!r} needs adx")
    else:
        rows["adx"] = adx
    _check_rows(rows, grids, cols, dinv)
    _check_finite(keep=keep, smooth=smooth, eta=eta, c=c)
    fields = _fields(grids, {4, 5})
    return torch.ops.qgnn.smp_update(x.contiguous(), ax.contiguous(), h.contiguous(),
                                     None if adx is None else adx.contiguous(), dinv.contiguous(), int(cols), *fields,
                                     float(keep), float(smooth), float(eta), float(c), MODES.index(mode))
