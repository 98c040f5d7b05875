"""``QLinear``: a linear layer with quantized input, weight and output sites; bias in float.

Forward, with ``ca``/``cw`` the integer-valued centred codes of input and weight (``quant/ste.py``)::

    out = Q_out(((ca @ cw.T) * (a_scale * w_scale)) + bias)

which is ``kernels/gemm.py``'s reference with a per-tensor weight grid. The integer sums are exact in
float32 while they stay below 2^24; in eval mode they are taken in float64, exact always, as the
integer kernels are. The input may be :class:`~qgnn_cli.nn.features.SparseFeatures` (the nonzeros of
a sparse feature matrix): the same products, summed over the nonzeros only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qgnn_cli.quant.qlr import QLRQuantizer


def _matmul_t(a, w: torch.Tensor, exact: bool) -> torch.Tensor:
    """``a @ w.T`` for dense ``a`` or sparse features; in float64 when ``exact``."""
    dtype = torch.float64 if exact else torch.float32
    if not isinstance(a, torch.Tensor):
        return a.matmul_t(w, dtype)
    if not exact:
        return a @ w.T
    return (a.to(dtype) @ w.to(dtype).T).to(torch.float32)


class QLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 input_q: QLRQuantizer | None = None, weight_q: QLRQuantizer | None = None,
                 output_q: QLRQuantizer | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.input_q = input_q or QLRQuantizer()
        self.weight_q = weight_q or QLRQuantizer()
        self.output_q = output_q or QLRQuantizer()
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation

    def sites(self) -> list[tuple[str, QLRQuantizer]]:
        """The quantizers in the order forward applies them."""
        return [("input", self.input_q), ("weight", self.weight_q), ("output", self.output_q)]

    def forward(self, x) -> torch.Tensor:
        sparse = not isinstance(x, torch.Tensor)
        values, total = (x.values, x.numel) if sparse else (x, None)
        if self.input_q.enabled and self.weight_q.enabled:
            ca, a_scale = self.input_q.codes(values, total)
            cw, w_scale = self.weight_q.codes(self.weight)
            prod = _matmul_t(x.with_values(ca) if sparse else ca, cw, exact=not self.training)
            out = prod * (a_scale * w_scale)
        else:  # float on at least one side: fake-quantize each side and multiply in float
            a = self.input_q(values, total)
            out = _matmul_t(x.with_values(a) if sparse else a, self.weight_q(self.weight), exact=False)
        if self.bias is not None:
            out = out + self.bias
        return self.output_q(out)
