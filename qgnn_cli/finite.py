"""``all_finite``: the NaN / Inf check every layer runs on its inputs, in one reduction pass.

``bool(torch.isfinite(t).all())`` first writes a bool tensor as large as ``t``: on one thread it took
17 ms on Cora's 2708 x 1433 features, against 1.2 ms for ``torch.aminmax``, whose minimum and maximum
propagate NaN and carry the infinities, so both are finite exactly when every entry is.
"""

from __future__ import annotations

import torch


def all_finite(t: torch.Tensor) -> bool:
    """True when no entry of ``t`` is NaN or infinite (an empty tensor has none)."""
    if t.numel() == 0 or not t.is_floating_point():
        return True  # integers are always finite
    if t.layout == torch.sparse_coo:  # the stored entries (summed where repeated); the rest are zeros
        return all_finite(t.coalesce().values())
    if t.layout != torch.strided:  # compressed sparse layouts
        return all_finite(t.values())
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))
