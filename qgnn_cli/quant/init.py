"""Grid-search initialisation of a site's range multiplier ``alpha`` (METHOD.md §2).

``alpha`` is chosen to minimise mean |Q(x) - x| on the first training batch: candidates 0.1, 0.2, ...,
1.0 for 2 bits (and BT), 0.02, 0.04, ..., 1.0 for the other widths.
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


def search_alpha(x: torch.Tensor, lo: float, hi: float, bits: int, mult: int, skew: int) -> float:
    """The candidate alpha whose grid over ``[alpha*lo, alpha*hi]`` has the least mean |Q(x) - x|."""
    flat = x.detach().reshape(-1).to(torch.float32)
    if flat.numel() > _MAX_SAMPLES:
        flat = flat[:: (flat.numel() + _MAX_SAMPLES - 1) // _MAX_SAMPLES]
    best, best_err = 1.0, float("inf")
    for alpha in alpha_candidates(bits):
        scale, zero = rounding.qparams(alpha * lo, alpha * hi, bits, mult)
        err = float((rounding.fake_quantize(flat, scale, zero, bits, mult, skew) - flat).abs().mean())
        if err < best_err:  # strict: ties keep the smaller alpha, deterministically
            best, best_err = alpha, err
    return best
