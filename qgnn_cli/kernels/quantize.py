"""``qgnn::quantize_pack``: float32 rows to packed codes on one grid (the rule in ``rounding.py``)."""

from __future__ import annotations

import torch

from qgnn_cli.finite import all_finite
from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.pack import pack_reference, words_per_row
from qgnn_cli.kernels.rounding import check_bits, qmax_of, quantize


def quantize_pack_reference(
    x: torch.Tensor, bits: int, scale: float, zero: int, mult: int, skew: int
) -> torch.Tensor:
    scale32 = torch.tensor(scale, dtype=torch.float32)
    return pack_reference(quantize(x, scale32, float(zero), bits, mult, skew), bits)


def _fake(x, bits, scale, zero, mult, skew):
    return x.new_empty((x.shape[0], words_per_row(x.shape[1], bits)), dtype=torch.int32)


define(
    "quantize_pack(Tensor x, int bits, float scale, int zero, int mult, int skew) -> Tensor",
    quantize_pack_reference,
    _fake,
)


def check_grid(bits: int, scale: float, zero: int, mult: int = 1, skew: int = 0) -> None:
    """Raise ``ValueError`` unless ``(bits, scale, zero, mult, skew)`` is a valid grid."""
    check_bits(bits)
    if not (scale > 0.0 and scale < float("inf")):
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    if mult < 1 or mult * qmax_of(bits) > 255:
        raise ValueError(f"mult {mult} with {bits} bits exceeds the 8-bit fine grid")
    if not 0 <= zero <= mult * qmax_of(bits):
        raise ValueError(f"zero point {zero} outside [0, {mult * qmax_of(bits)}]")
    if abs(skew) > 255:
        raise ValueError(f"skew {skew} outside [-255, 255]")


def quantize_pack(
    x: torch.Tensor, bits: int, scale: float, zero: int, mult: int = 1, skew: int = 0
) -> torch.Tensor:
    """Quantize a (rows, cols) float32 tensor on a grid and pack the codes (see ``pack.py``)."""
    check_grid(bits, scale, zero, mult, skew)
    if x.dtype != torch.float32 or x.dim() != 2:
        raise ValueError(f"quantize_pack expects 2-D float32, got {x.dtype} {tuple(x.shape)}")
    if not all_finite(x):
        raise ValueError("quantize_pack: input contains NaN or Inf")
    return torch.ops.qgnn.quantize_pack(x.contiguous(), bits, float(scale), int(zero), int(mult), int(skew))
