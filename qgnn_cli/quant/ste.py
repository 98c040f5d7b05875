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

import torch

from qgnn_cli.kernels import rounding


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
      in float32 (no bool comparisons, whose CPU kernels cost 3-4x an arithmetic op, and no bool ->
      float conversion in the backward);
    * the backward returns alpha's gradient directly: ``d scale / d alpha`` (``width``, or 0 where
      the clamp holds alpha at ``MIN_ALPHA``) applied to the scale gradient, whose two terms (the
      codes' ``-sum(mask * g * t) / s`` and the product's ``sum(g * centred)`` or the consumer's)
      are added as autograd adds them.

    ``forward(x, alpha, site, total, value)``: ``site`` is the :class:`QLRQuantizer` (for its
    buffers; its range must be initialised), ``value`` chooses the output: ``centred * scale``, or
    the pair ``(centred, scale)`` for ops that sum codes first.
    """

    @staticmethod
    def forward(ctx, x, alpha, site, total, value: bool):
        lo, hi = site._observe_batch(x, total)
        qmax, mult = site._qmax, site.mult
        levels = mult * qmax
        width = (max(hi, 0.0) - min(lo, 0.0)) / levels
        a = alpha.item()
        ctx.eps = max(a, site._min_alpha) * width < rounding.EPS
        if ctx.eps:  # an all-zero batch: the rule's smallest scale, and no gradient for alpha
            scale, zero = torch.tensor(rounding.EPS), 0.0
        else:
            zero = float(min(max(round(-min(lo, 0.0) / width), 0), levels))  # round: half to even
            scale = alpha.clamp(min=site._min_alpha_arg) * width
        ctx.width, ctx.alpha_free, ctx.value = width, a >= site._min_alpha, value
        t = x / scale
        u = t.clamp(-zero, levels - zero)
        skew = site._skew_int()
        if mult != 1 or skew != 0:
            centred = torch.round(u).add_(zero + skew).div_(mult).round_().clamp_(0.0, float(qmax))
            centred = centred.mul_(mult).sub_(zero)
        else:
            centred = torch.round(u).add_(0.0)
        inside = torch.sub(t, u).abs_().sign_().neg_().add_(1.0)  # 1.0 inside [lo, hi], 0.0 outside
        ctx.t, ctx.inside = t, inside
        if value:
            ctx.centred, ctx.scale = centred, scale
            return centred * scale
        ctx.scale = scale.detach()  # an alias: holding the output itself would make a reference cycle
        return centred, scale

    @staticmethod
    def backward(ctx, grad, grad_scale=None):
        scale = ctx.scale
        g_codes = grad * scale if ctx.value else grad
        grad_x = g_codes / scale if ctx.needs_input_grad[0] else None
        grad_alpha = None
        if ctx.needs_input_grad[1] and not ctx.eps:
            from_codes = -((g_codes * ctx.inside) * ctx.t).sum() / scale
            other = (grad * ctx.centred).sum() if ctx.value else grad_scale
            total = other + from_codes
            grad_alpha = total * ctx.width if ctx.alpha_free else torch.zeros_like(total)
        return grad_x, grad_alpha, None, None, None
