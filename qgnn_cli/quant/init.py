"""Grid-search initialisation of a site's range multiplier ``alpha`` (METHOD.md §2).

``alpha`` is chosen to minimise mean |Q(x) - x| on the first training batch: candidates 0.1, 0.2, ...,
1.0 for 2 bits (and BT), 0.02, 0.04, ..., 1.0 for the other widths.

Deviation: plain 2-bit sites (not BT/BT*) minimise the mean *squared* error instead. With four levels
the absolute-error optimum clips hard (alpha 0.2 on Cora's logits), and the masked STE then passes no
gradient for the clipped values, so some seeds never leave loss ln(C). The squared error weighs the
clipped tails more and picks a wider range: Cora INT2, K=10, seeds 0-2, 65.0 % -> 75.0 % (one seed
at 51.3 % before); BT/BT*, whose 8-bit fine grid clips differently, lost with it (74.4 -> 69.9) and
keep the absolute error (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import torch

from qgnn_cli.kernels import rounding

# Above this many elements the error is measured on an evenly strided subset: the search then costs
# the same on Cora's 3.9M input features as on a 64-wide hidden layer, and the range (min/max) is
# still taken from the whole tensor by the caller.
_MAX_SAMPLES = 1 << 18


def alpha_candidates(bits: int) -> list[float]:
    if bits == 2:
        return [round(0.1 * i, 10) for i in range(1, 11)]
    return [round(0.02 * i, 10) for i in range(1, 51)]


def uses_squared_error(bits: int, mult: int) -> bool:
    """Whether the search minimises mean (Q(x) - x)^2 (plain 2-bit) rather than mean |Q(x) - x|."""
    return bits == 2 and mult == 1


def search_alpha(x: torch.Tensor, lo: float, hi: float, bits: int, mult: int, skew: int) -> float:
    """The candidate alpha whose grid over ``[alpha*lo, alpha*hi]`` has the least mean |Q(x) - x|
    (squared for plain 2-bit, see :func:`uses_squared_error`)."""
    flat = x.detach().reshape(-1).to(torch.float32)
    if flat.numel() > _MAX_SAMPLES:
        flat = flat[:: (flat.numel() + _MAX_SAMPLES - 1) // _MAX_SAMPLES]
    power = 2 if uses_squared_error(bits, mult) else 1
    best, best_err = 1.0, float("inf")
    for alpha in alpha_candidates(bits):
        scale, zero = rounding.qparams(alpha * lo, alpha * hi, bits, mult)
        err = float((rounding.fake_quantize(flat, scale, zero, bits, mult, skew) - flat).abs().pow(power).mean())
        if err < best_err:  # strict: ties keep the smaller alpha, deterministically
            best, best_err = alpha, err
    return best
