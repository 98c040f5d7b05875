"""``qgnn::site_codes``: a training site's codes, its masked quotient and (optionally) its value in one pass.

For a grid ``(bits, scale, zero, mult, skew)`` (``rounding.py``) and ``L = mult * qmax``::

    t        = x / scale                                 # the rule's true float32 division
    u        = clamp(t, -zero, L - zero)
    centred  = round(u) + 0                              # mult = 1, skew = 0
    centred  = clamp(round((round(u) + zero + skew) / mult), 0, qmax) * mult - zero   # BT / BT*
    masked_t = t * (1 - sign(|t - u|))                   # t inside the range, 0 outside
    value    = centred * scale                           # only when asked for

``round(u)`` equals ``clamp(round(t) + zero, 0, L) - zero`` because the bounds are integers, so
``centred`` is ``rounding.quantize``'s code, centred (``mult * code - zero``); ``masked_t`` is all the
straight-through/LSQ backward needs of ``t`` and its mask (``quant/ste.py``). The reference below is
the PyTorch op chain the training step ran before this op existed, and the test oracle: the compiled
kernels give the same float32 bits, signed zeros and NaNs included (``tests/kernels/test_site.py``).
One pass instead of ten to fifteen tensor ops is what a training step on a small graph needs: each
op costs more in dispatch and allocation than in arithmetic there.
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.rounding import qmax_of

_ONE = torch.tensor(1.0)
_ZERO = torch.tensor(0.0)


def site_codes_reference(x: torch.Tensor, scale: float, zero: float, bits: int, mult: int, skew: int,
                         value: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.tensor(scale, dtype=torch.float32)
    qmax = qmax_of(bits)
    levels = mult * qmax
    t = x.contiguous() / s  # contiguous outputs, as the compiled kernels write them
    u = t.clamp(-zero, levels - zero)
    outside = torch.sub(t, u).abs_().sign_()  # 0.0 inside [lo, hi], 1.0 outside
    if mult != 1 or skew != 0:
        m = torch.tensor(float(mult))
        centred = u.round_().add_(_ONE, alpha=zero + skew).div_(m).round_().clamp_(0.0, float(qmax))
        centred = centred.mul_(m).add_(_ONE, alpha=-zero)
    else:
        centred = u.round_().add_(_ZERO)
    masked_t = t.mul_(torch.sub(_ONE, outside, out=outside))
    return centred, masked_t, centred * s if value else x.new_empty(0)


def _fake(x, scale, zero, bits, mult, skew, value):
    like = lambda: torch.empty_like(x, memory_format=torch.contiguous_format)  # noqa: E731
    return like(), like(), like() if value else x.new_empty(0)


define(
    "site_codes(Tensor x, float scale, float zero, int bits, int mult, int skew, bool value)"
    " -> (Tensor, Tensor, Tensor)",
    site_codes_reference,
    _fake,
)


def site_codes(x: torch.Tensor, scale: float, zero: float, bits: int, mult: int = 1, skew: int = 0,
               value: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(centred, masked_t, value or None)`` of float32 ``x`` on a grid (see the module docstring).

    ``scale`` must be a float32 number (the site's scale tensor's value), ``zero`` an integer in
    ``[0, mult * qmax]``; the training sites (``quant/ste.py``) pass nothing else, and the kernels only
    read ``x``, so no other input can make them read out of bounds.
    """
    centred, masked_t, out = torch.ops.qgnn.site_codes(x, scale, zero, bits, mult, skew, value)
    return centred, masked_t, out if value else None
