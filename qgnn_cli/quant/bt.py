"""BT and BT*: 2-bit codes as an 8-bit grid truncated to the levels {0, 85, 170, 255} (METHOD.md §3).

BT quantizes on the 8-bit grid (``mult = 85``: ``qparams(lo, hi, 2, mult=85)`` gives the 8-bit scale
and zero point) and rounds each 8-bit code to the nearest multiple of 85. BT* first adds the tensor's
skewness rounded to an integer (``skew``), measured once, when the site's range is initialised.
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels.rounding import BT_MULT

BT_MODES = ("none", "bt", "bt*")


def check_bt(mode: str, bits: int) -> str:
    if mode not in BT_MODES:
        raise ValueError(f"unknown truncation mode {mode!r}: expected one of {BT_MODES}")
    if mode != "none" and bits != 2:
        raise ValueError(f"truncation mode {mode!r} needs 2 bits, got {bits}")
    return mode


def bt_mult(mode: str) -> int:
    """The fine-grid multiplier of a mode: 85 for BT/BT*, 1 for plain b-bit."""
    return BT_MULT if mode != "none" else 1


def skewness(x: torch.Tensor, total: int | None = None) -> float:
    """Skewness E[(x - mean)^3] / std^3 (population moments, float64); 0 for a constant tensor.

    ``total`` > ``x.numel()`` counts that many elements in all, the missing ones zeros (the nonzeros of
    a sparse tensor stand for the whole).
    """
    x = x.detach().to(torch.float64).reshape(-1)
    n = max(total or x.numel(), x.numel())
    zeros = n - x.numel()
    mean = x.sum() / n
    centred = x - mean

    def moment(k: int) -> torch.Tensor:
        return (centred.pow(k).sum() + zeros * (-mean) ** k) / n

    var = moment(2)
    if float(var) <= 0.0:
        return 0.0
    return float(moment(3) / var.pow(1.5))


def skew_of(x: torch.Tensor, mode: str, total: int | None = None) -> int:
    """The integer shift BT* adds to 8-bit codes (0 for BT and plain modes), within the grid's bounds."""
    if mode != "bt*":
        return 0
    return int(max(-255, min(255, round(skewness(x, total)))))
