"""The one rounding rule: how a float becomes a b-bit code and back.

Every producer of codes follows these functions bit for bit: the fake quantizer used in training
(``qgnn_cli.quant``), the packed CPU kernels (``csrc/cpu``) and the CUDA kernels (``csrc/cuda``,
through ``csrc/common/codes.h``).

A *grid* is ``(bits, scale, zero, mult, skew)``. ``mult`` and ``skew`` exist for BT/BT* (METHOD.md
§3), where a 2-bit code is an 8-bit code rounded to a multiple of 85; plain b-bit quantization has
``mult = 1, skew = 0``. In float32::

    qmax  = 2**bits - 1                    # largest code
    base  = clamp(round(x / scale) + zero, 0, mult * qmax)      # code on the fine grid
    code  = clamp(round((base + skew) / mult), 0, qmax)          # = base when mult = 1, skew = 0
    value = (mult * code - zero) * scale

``zero`` and ``skew`` are integers. ``round`` is round-half-to-even (``torch.round``, C
``nearbyint`` in the default rounding mode, CUDA ``rintf``, and the SIMD convert instructions).
``x / scale`` is a true float32 division, never a multiplication by the reciprocal, so every
implementation gets the same quotient. Integer sums of ``mult * code - zero`` are exact, which is
what lets the packed kernels reproduce training bit for bit (see ``kernels/spmm.py``).

Ranges become grids with :func:`qparams`: for ``[lo, hi]`` with ``lo <= 0 <= hi`` and a fine grid of
``L = mult * qmax`` steps, ``scale = max((hi - lo) / L, EPS)`` and ``zero = clamp(round(-lo / scale), 0, L)``.
"""

from __future__ import annotations

import torch

EPS = 1e-8
SUPPORTED_BITS = (1, 2, 4, 8)
BT_MULT = 85  # 255 / 3: the 8-bit grid truncated to the four levels {0, 85, 170, 255}


def check_bits(bits: int) -> int:
    """Return ``bits`` if it is a supported code width, else raise ``ValueError``."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"unsupported bit width {bits}: expected one of {SUPPORTED_BITS}")
    return bits


def qmax_of(bits: int) -> int:
    return 2 ** check_bits(bits) - 1


def qparams(lo, hi, bits: int, mult: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point (float32 tensors; zero holds an integer) for the range ``[lo, hi]``.

    Differentiable in ``lo`` and ``hi`` through ``scale`` (the zero point is rounded).
    """
    levels = float(mult * qmax_of(bits))
    lo = torch.clamp(torch.as_tensor(lo, dtype=torch.float32), max=0.0)
    hi = torch.clamp(torch.as_tensor(hi, dtype=torch.float32), min=0.0)
    scale = torch.clamp((hi - lo) / levels, min=EPS)
    zero = torch.clamp(torch.round(-lo.detach() / scale.detach()), 0.0, levels)
    return scale, zero


def quantize(x: torch.Tensor, scale, zero, bits: int, mult: int = 1, skew: int = 0) -> torch.Tensor:
    """Codes (uint8) of ``x`` on the grid; ``scale``/``zero`` broadcast against ``x``."""
    qmax = float(qmax_of(bits))
    base = torch.clamp(torch.round(x.to(torch.float32) / scale) + zero, 0.0, mult * qmax)
    if mult != 1 or skew != 0:
        base = torch.clamp(torch.round((base + skew) / mult), 0.0, qmax)
    return base.to(torch.uint8)


def dequantize(codes: torch.Tensor, scale, zero, mult: int = 1) -> torch.Tensor:
    """Float32 values of ``codes``."""
    return (codes.to(torch.float32) * mult - zero) * scale


def fake_quantize(x: torch.Tensor, scale, zero, bits: int, mult: int = 1, skew: int = 0) -> torch.Tensor:
    """``dequantize(quantize(x))`` in float32 (no gradient; ``qgnn_cli.quant`` adds the STE)."""
    return dequantize(quantize(x, scale, zero, bits, mult, skew), scale, zero, mult)
