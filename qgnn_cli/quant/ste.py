"""The straight-through estimator: integer-valued centred codes with LSQ gradients.

Forward, for a grid ``(bits, scale, zero, mult, skew)`` (``kernels/rounding.py``)::

    centred = mult * code(x) - zero          # float32 holding an integer; value = centred * scale

Every quantized op in training multiplies ``centred`` by ``scale`` itself (after an exact integer
sum, as the packed kernels do), so this function hands out ``centred`` and lets autograd see the
``* scale``. Its backward is chosen so that the gradients of ``value = centred * scale`` are:

* ``d value / d x = 1`` everywhere, clipped values included (the plain straight-through estimator,
  not the usual one masked to zero outside the range ``[-zero * s, (L - zero) * s]``, ``L = mult *
  qmax``). At 2 bits the ranges clip 10-90 % of a tensor and the gradient passes ~50 sites on its way
  to the weights: masked, it died and CiteSeer INT2-BT* never left loss ln 6 (6.7 % test accuracy,
  seed 0; 62.5 % unmasked). On Cora, K=10, seeds 0-2, unmasked vs masked: INT8 81.6 / 81.3, INT4
  81.1 / 80.9, INT2-BT* 75.5 / 75.2, INT2 75.0 / 65.0 (masked INT2 reached 76.1 only with a
  squared-error alpha search, which fell to 71.1 unmasked, so the search stays the paper's); see
  benchmarks/RESULTS.md. The range still learns from what it clips, through the scale gradient below;
* ``d value / d s = centred - x / s`` inside (LSQ's ``round(x/s) - x/s``: the true rounding error,
  not the near-zero term the authors rebuild from the already-rounded output), ``centred`` outside.

Since ``value = centred * s``, that means ``d centred / d x = 1 / s`` and
``d centred / d s = -mask * x / s**2``. LSQ's ``1/sqrt(n * qmax)`` gradient scaling is left out: the
ranges are trained with Adam, which normalises each parameter's step anyway.
"""

from __future__ import annotations

import functools
import struct

import torch

from qgnn_cli.kernels import rounding
from qgnn_cli.kernels.site import site_codes as kernel_site_codes


class CentredCodes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, zero, bits: int, mult: int, skew: int):
        # rounding.quantize's steps, kept in float32 (every intermediate is a small integer, so the
        # values are the same as going through uint8 codes; tests compare with rounding.fake_quantize).
        qmax = rounding.qmax_of(bits)
        levels = mult * qmax
        t = x / scale
        base = torch.clamp(torch.round(t) + zero, 0.0, float(levels))
        if mult != 1 or skew != 0:
            centred = torch.clamp(torch.round((base + skew) / mult), 0.0, float(qmax)) * mult - zero
        else:
            centred = base - zero
        mask = (t >= -zero) & (t <= levels - zero)  # x inside [lo, hi] = [-zero * s, (levels - zero) * s]
        ctx.save_for_backward(t, scale, mask)
        return centred

    @staticmethod
    def backward(ctx, grad):
        t, scale, mask = ctx.saved_tensors
        inside = grad * mask
        grad_x = grad / scale if ctx.needs_input_grad[0] else None
        grad_scale = None
        if ctx.needs_input_grad[1]:  # -mask * x / s^2 = -mask * t / s
            grad_scale = (-(inside * t).sum() / scale).reshape(scale.shape)
        return grad_x, grad_scale, None, None, None, None


def centred_codes(x, scale: torch.Tensor, zero: float, bits: int, mult: int = 1, skew: int = 0) -> torch.Tensor:
    """``mult * code - zero`` as float32, with the STE/LSQ backward described in the module docstring.

    ``scale`` is a 0-d float32 tensor (``x / scale`` must be the rule's true float32 division);
    ``zero`` a python number holding an integer.
    """
    return CentredCodes.apply(x, scale, zero, bits, mult, skew)


@functools.lru_cache(maxsize=256)
def centred_zero(zero: float, skew: int, bits: int, mult: int) -> float:
    """The centred code of 0.0 on a grid (its scale does not matter: 0 / scale is 0): 0 unless a BT
    grid's zero point plus skew is off its step."""
    with torch.no_grad():
        return float(centred_codes(torch.zeros(1), torch.tensor(1.0), zero, bits, mult, skew))


def f32(v: float) -> float:
    """``v`` rounded to float32 (nearest, ties to even), as a python float; OverflowError past float32."""
    return _F32.unpack(_F32.pack(v))[0]


_F32 = struct.Struct("f")


class TrainSite(torch.autograd.Function):
    """A training-mode site in one autograd node: the range statistics, the grid, the codes and their
    STE/LSQ backward, with the scale ``clamp(alpha, MIN_ALPHA) * width`` built inside.

    It computes, bit for bit, what the unfused chain ``scale = alpha.clamp(min) * width`` ->
    :class:`CentredCodes` -> (``value``: ``centred * scale``) computes, forward and backward, in
    fewer and cheaper tensor ops (that chain is kept for eval, for the first batch and as the tests'
    reference; ``tests/quant/test_qlr.py`` compares the two bit for bit):

    * ``u = clamp(t, -zero, L - zero)`` once, with ``t = x / scale``: ``round(u)`` equals
      ``clamp(round(t) + zero, 0, L) - zero`` (the bounds are integers; ``+ 0.0`` turns the ``-0``
      that ``round`` gives for ``t`` in ``[-0.5, 0)`` into the ``+0`` of the unfused form), and
      ``t`` is inside the range exactly where ``t - u == 0``, so the mask is ``1 - sign(|t - u|)``
      in float32 (no bool -> float conversion in the backward); the codes, ``t`` times that mask and
      the value are one ``qgnn::site_codes`` pass (``kernels/site.py``; 11-15 us on Cora's 2708 x 7
      against 42-69 us for its ten to fifteen tensor ops);
    * the 0-d arithmetic (the scale, the scale gradient's tail, alpha's gradient) runs on python
      floats rounded to float32 after each operation, which is float32 arithmetic exactly: a float32
      product is exact in float64, and a float64 quotient or sum rounded to float32 is the correctly
      rounded float32 result (53 >= 2 * 24 + 2 bits); it falls back to tensors on float32 overflow;
    * the backward returns alpha's gradient directly: ``d scale / d alpha`` (``width``, or 0 where
      the clamp holds alpha at ``MIN_ALPHA``) applied to the scale gradient, whose two terms (the
      codes' ``-sum(mask * g * t) / s`` and the product's ``sum(g * centred)`` or the consumer's)
      are added as autograd adds them.

    ``forward(x, alpha, site, total, value, skew)``: ``site`` is the :class:`QLRQuantizer` (for its
    buffers; its range must be initialised), ``skew`` its BT* shift, ``value`` chooses the output: ``centred * scale``, or
    the pair ``(centred, scale)`` for ops that sum codes first.
    """

    @staticmethod
    def forward(ctx, x, alpha, site, total, value: bool, skew: int):
        ctx.site, out = site_forward(x, alpha, site, total, value, skew)
        return out

    @staticmethod
    def backward(ctx, grad, grad_scale=None):
        grad_x, grad_alpha = site_backward(ctx.site, grad, grad_scale, ctx.needs_input_grad[0],
                                           ctx.needs_input_grad[1])
        return grad_x, grad_alpha, None, None, None, None


class SiteState:
    """What a fused site's backward needs (see :class:`TrainSite`)."""

    __slots__ = ("eps", "width", "width_f", "scale_f", "alpha_free", "value", "masked_t", "centred", "scale")


def site_forward(x, alpha, site, total, value: bool, skew: int, lohi: tuple[float, float] | None = None):
    """TrainSite's forward without the autograd node: ``(state, out)``, ``out`` the value or
    ``(centred, scale)``. For fused ops that run several sites inside one node; no autograd here.
    ``lohi``: the batch's (min, max), already observed (the site's range is then not updated here)."""
    lo, hi = site._observe_batch(x, total) if lohi is None else lohi
    st, scale, zero = site_grid(alpha, site, lo, hi)
    st.value = value
    centred, st.masked_t, out = site_codes(x, st, scale, zero, site, skew, value)
    if value:
        st.centred, st.scale = centred, scale
        return st, out
    st.centred = None
    st.scale = scale.detach()  # an alias: holding the output itself would make a reference cycle
    return st, (centred, scale)


def site_grid(alpha, site, lo: float, hi: float):
    """``(state, scale, zero)`` of a training batch's range: QLRQuantizer._train_qparams's grid,
    the scale a 0-d float32 tensor (the rule's smallest scale, and no alpha gradient, for an all-zero
    batch), the zero point a python float."""
    st = SiteState()
    levels = site.mult * site._qmax
    width = (max(hi, 0.0) - min(lo, 0.0)) / levels
    a = alpha.item()
    a_clamped = max(a, site._min_alpha)  # alpha.clamp(min=MIN_ALPHA) in float32
    st.eps = a_clamped * width < rounding.EPS
    scale_f = width_f = None
    if st.eps:
        scale, zero = torch.tensor(rounding.EPS), 0.0
    else:
        zero = float(min(max(round(-min(lo, 0.0) / width), 0), levels))  # round: half to even
        try:
            width_f = f32(width)
            scale_f = f32(a_clamped * width_f)
            scale = torch.scalar_tensor(scale_f)  # a 0-d float32; 1.4 us against torch.tensor's 3.3
        except OverflowError:
            scale_f, scale = None, alpha.clamp(min=site._min_alpha_arg) * width
    st.width, st.width_f, st.scale_f = width, width_f, scale_f
    st.alpha_free = a >= site._min_alpha
    return st, scale, zero


def site_codes(x: torch.Tensor, st: SiteState, scale: torch.Tensor, zero: float, site, skew: int,
               value: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(centred, masked_t, value or None)`` of ``x`` on a batch's grid (:func:`site_grid`'s ``st``,
    ``scale``, ``zero``): CentredCodes's codes, ``t = x / scale`` times its mask (``t`` inside the range,
    0 outside), which is all the backward needs of the two (``(g * mask) * t`` and ``g * (mask * t)``
    are the same float32 products for a 0/1 mask), and ``centred * scale`` if asked for; one
    ``qgnn::site_codes`` pass (``kernels/site.py``)."""
    scale_f = st.scale_f if st.scale_f is not None else float(scale)
    return kernel_site_codes(x, scale_f, zero, site.bits, site.mult, skew, value)


def site_backward(st: SiteState, grad, grad_scale, need_x: bool, need_alpha: bool):
    """``(grad_x, grad_alpha)`` of a fused site from the gradient of its output (the value, or the
    codes and ``grad_scale``, the consumer's gradient for the scale)."""
    scale = st.scale
    g_codes = grad * scale if st.value else grad
    grad_x = g_codes / scale if need_x else None
    grad_alpha = None
    if need_alpha and not st.eps:
        masked = (g_codes * st.masked_t).sum()
        other = (grad * st.centred).sum() if st.value else grad_scale
        grad_alpha = alpha_grad(st, masked, other)
    return grad_x, grad_alpha


def alpha_grad(st: SiteState, masked: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """alpha's gradient from the scale gradient's two terms: the codes' ``masked`` (``sum(mask * g * t)``)
    and ``other`` (the product's or the consumer's), added as autograd adds them, in float32."""
    if st.scale_f is not None:
        try:
            total = f32(other.item() + f32(-masked.item() / st.scale_f))
            return torch.scalar_tensor(f32(total * st.width_f) if st.alpha_free else 0.0)
        except OverflowError:
            pass
    total = other + (-masked / st.scale)
    return total * st.width if st.alpha_free else torch.zeros_like(total)
