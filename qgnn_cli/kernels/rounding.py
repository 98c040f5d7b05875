"""The one rounding rule: how a float becomes a b-bit code and back.

Every producer of codes follows these functions bit for bit: the fake quantizer used in training
(``qgnn_cli.quant``), the packed CPU kernels (``csrc/cpu``) and the CUDA kernels (``csrc/cuda``).

For a tensor with range ``[lo, hi]`` (``lo <= 0 <= hi``) and ``b`` bits, in float32::

    qmax  = 2**b - 1
    scale = max((hi - lo) / qmax, EPS)
    zero  = clamp(round(-lo / scale), 0, qmax)            # an integer, stored as float32
    code  = clamp(round(x / scale) + zero, 0, qmax)       # uint8
    value = (code - zero) * scale

``round`` is round-half-to-even (``torch.round``, C ``nearbyint`` in the default rounding mode, and
the SIMD convert instructions all do this). ``x / scale`` is a true float32 division, never
multiplication by a reciprocal, so that every implementation gets the same quotient.
"""

from __future__ import annotations

import torch

EPS = 1e-8
SUPPORTED_BITS = (1, 2, 4, 8)


def check_bits(bits: int) -> int:
    """Return ``bits`` if it is a supported code width, else raise ``ValueError``."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"unsupported bit width {bits}: expected one of {SUPPORTED_BITS}")
    return bits


def qparams(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point (both float32 tensors) for the range ``[lo, hi]``."""
    qmax = float(2 ** check_bits(bits) - 1)
    lo = torch.clamp(torch.as_tensor(lo, dtype=torch.float32), max=0.0)
    hi = torch.clamp(torch.as_tensor(hi, dtype=torch.float32), min=0.0)
    scale = torch.clamp((hi - lo) / qmax, min=EPS)
    zero = torch.clamp(torch.round(-lo / scale), 0.0, qmax)
    return scale, zero


def quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes (uint8) of ``x`` on the grid ``(scale, zero)``; scale/zero broadcast against ``x``."""
    qmax = float(2 ** check_bits(bits) - 1)
    q = torch.clamp(torch.round(x.to(torch.float32) / scale) + zero, 0.0, qmax)
    return q.to(torch.uint8)


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Float32 values of ``codes``."""
    return (codes.to(torch.float32) - zero) * scale


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """``dequantize(quantize(x))`` in float32, without going through uint8."""
    qmax = float(2 ** check_bits(bits) - 1)
    q = torch.clamp(torch.round(x / scale) + zero, 0.0, qmax)
    return (q - zero) * scale
