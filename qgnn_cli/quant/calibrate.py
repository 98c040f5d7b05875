"""Clean eval ranges: the frozen range of every site taken from a dropout-free forward.

In training a site's range is alpha times the min/max of the current batch, and that batch carries
dropout: at p = 0.8 the surviving activations are scaled by 5, so a hidden layer's and the MLP
output's extremes are several times those of the same tensor without dropout (PubMed INT2: the MLP
output spans [-92, 68] in training, [-19, 14] at eval). A frozen range tracked on training batches
(METHOD.md §2, the moving average of ``quant/qlr.py``) is therefore far wider than what eval
quantizes, and at 2 bits its four levels collapse most of the eval tensor onto one or two codes.

Under :func:`clean_ranges`, an eval forward sets each enabled site's frozen range to the min/max of
the tensor it quantizes there, site by site in forward order, so every site sees the inputs that a
later plain eval with the frozen ranges gives it: the pass computes exactly what the frozen model,
and its packed export, compute afterwards (``tests/quant/test_calibrate.py``). alpha still scales
that range, so it keeps the meaning it is trained with: the fraction of the tensor's own extent kept.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from qgnn_cli.quant.qlr import QLRQuantizer

EVAL_RANGES = ("clean", "ema")  # clean: calibrated at every evaluation; ema: tracked on training batches


@contextmanager
def clean_ranges(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Eval forwards inside recalibrate every enabled site of ``model`` (no-op with ``enabled=False``)."""
    sites = [m for m in model.modules() if isinstance(m, QLRQuantizer) and m.enabled] if enabled else []
    for q in sites:
        q.calibrating = True
    try:
        yield
    finally:
        for q in sites:
            q.calibrating = False
