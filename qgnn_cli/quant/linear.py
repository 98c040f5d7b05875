"""``QLinear``: a linear layer with quantized input, weight and output sites; bias in float.

Forward, with ``ca``/``cw`` the integer-valued centred codes of input and weight (``quant/ste.py``)::

    out = Q_out(act(((ca @ cw.T) * (a_scale * w_scale)) + bias))

with ``act`` ReLU or the identity. The activation is fused before the output site, as integer kernels
fuse it into re-quantization: a ReLU output's grid spends no level on negatives, which at 2 bits is
the difference between one positive level and three. This is is ``kernels/gemm.py``'s reference with a per-tensor weight grid. The integer sums are exact in
float32 while they stay below 2^24; in eval mode they are taken in float64, exact always, as the
integer kernels are. The input may be :class:`~qgnn_cli.nn.features.SparseFeatures` (the nonzeros of
a sparse feature matrix): the same products, summed over the nonzeros only.

``dropout`` (training only) is applied to the input *after* its quantizer, to the centred codes: the
site then sees the same tensor in training and in eval, so the range it freezes fits the eval input.
Dropping before the quantizer would scale the kept values by 1/(1-p) (x5 at the paper's FP32 rate
0.8) and freeze a range that wide, wasting most of the grid at eval. Scaled codes stay integers
(1/(1-p) is 2 or 5 for p = 0.5, 0.8), so the sums stay exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
                 output_q: QLRQuantizer | None = None, dropout: float = 0.0, relu: bool = False):
        super().__init__()
        self.dropout, self.relu = dropout, relu
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
            ca = F.dropout(ca, self.dropout, self.training)
            cw, w_scale = self.weight_q.codes(self.weight)
            prod = _matmul_t(x.with_values(ca) if sparse else ca, cw, exact=not self.training)
            out = prod * (a_scale * w_scale)
        else:  # float on at least one side: fake-quantize each side and multiply in float
            a = F.dropout(self.input_q(values, total), self.dropout, self.training)
            out = _matmul_t(x.with_values(a) if sparse else a, self.weight_q(self.weight), exact=False)
        if self.bias is not None:
            out = out + self.bias
        return self.output_q(F.relu(out) if self.relu else out)
