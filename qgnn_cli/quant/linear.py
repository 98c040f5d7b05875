"""``QLinear``: a linear layer with quantized input, weight and output sites; bias in float.

Forward, with ``ca``/``cw`` the integer-valued centred codes of input and weight (``quant/ste.py``)::

    out = Q_out(act(((ca @ cw.T) * (a_scale * w_scale)) + bias))

with ``act`` ReLU or the identity. The activation is fused before the output site, as integer kernels
fuse it into re-quantization: a ReLU output's grid spends no level on negatives, which at 2 bits is the
difference between one positive level and three. This is ``kernels/gemm.py``'s reference with a
per-tensor weight grid. The integer sums are exact in float32 while they stay below 2^24; in eval mode
they are taken in float64, exact always, as the integer kernels are. The input may be
:class:`~qgnn_cli.nn.features.SparseFeatures` (the nonzeros of a sparse feature matrix): the same
products, summed over the nonzeros only, where the code of 0 is 0 (a BT input grid may give 0 another
code: then the input is made dense).

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

from qgnn_cli.quant import qlr
from qgnn_cli.quant.qlr import QLRQuantizer
from qgnn_cli.quant.ste import alpha_grad, centred_zero, site_codes, site_grid

# The constant-input path below pays off while most of the input is zeros (PubMed's features: 10 %
# nonzero); past this density the dense ops are as cheap.
_MAX_CONSTANT_DENSITY = 0.5


def _matmul_t(a, w: torch.Tensor, exact: bool) -> torch.Tensor:
    """``a @ w.T`` for dense ``a`` or sparse features; in float64 when ``exact``."""
    dtype = torch.float64 if exact else torch.float32
    if not isinstance(a, torch.Tensor):
        return a.matmul_t(w, dtype)
    if not exact:
        return a @ w.T
    return (a.to(dtype) @ w.to(dtype).T).to(torch.float32)


class _ConstantInputDropout(torch.autograd.Function):
    """Training forward of the input site plus dropout for a constant dense input (the feature matrix,
    the same tensor every step, no gradient): ``(dropout(centred), scale)``, bit for bit what
    ``F.dropout(input_q.codes(x))`` gives, with its backward (alpha's gradient).

    Zeros of ``x`` have the code of 0 and a zero contribution to the scale gradient, so the codes,
    the dropout product and the gradient's products are computed on the nonzeros only (their flat
    positions and values kept per tensor), and only the grid is per step. What stays dense is what
    fixes the bits: the dropout noise (``F.dropout``'s own ``empty_like(x).bernoulli_(1 - p)``, the
    same random stream; ``/ (1 - p)`` on the values used), the product handed to the matmul, and the
    scale gradient's sum, taken over a dense buffer that is zero off the nonzeros (the same sum:
    ``x + 0`` is ``x``, so the zero terms only ever decide the sign of a zero total). On PubMed
    (19717 x 500) the dense site and dropout were ~15 full-size passes a step; this is ~4.
    """

    @staticmethod
    def forward(ctx, x, alpha, site, p: float, skew: int):
        flat, values, buf = site._constant_nonzeros(x)
        lo, hi = site._observe_batch(x, None)
        st, scale, zero = site_grid(alpha, site, lo, hi)
        centred, masked_t, _ = site_codes(values, st, scale, zero, site, skew)
        c0 = centred_zero(zero, skew, site.bits, site.mult)
        noise = torch.empty_like(x).bernoulli_(1 - p)  # F.dropout's noise, drawn the same way
        kept = noise.view(-1)[flat].div_(1 - p)
        out = torch.zeros_like(x) if c0 == 0.0 else (torch.full_like(x, c0) * noise.div_(1 - p))
        out.view(-1)[flat] = centred * kept
        st.value, st.centred, st.scale = False, None, scale.detach()
        ctx.st, ctx.kept, ctx.flat, ctx.buf, ctx.masked_t = st, kept, flat, buf, masked_t
        return out, scale

    @staticmethod
    def backward(ctx, grad, grad_scale):
        st = ctx.st
        grad_alpha = None
        if ctx.needs_input_grad[1] and not st.eps:
            g_codes = grad.reshape(-1)[ctx.flat] * ctx.kept  # dropout's backward, on the nonzeros
            buf = ctx.buf
            buf.view(-1)[ctx.flat] = g_codes * ctx.masked_t
            masked = buf.sum()
            grad_alpha = alpha_grad(st, masked, grad_scale)
        return None, grad_alpha, None, None, None


_DROPOUT_SCALES: dict[float, float] = {}


def _dropout_scale(p: float) -> float:
    """The factor F.dropout gives kept entries: ``1 / (1 - p)`` as its float32 ``div_`` computes it."""
    k = _DROPOUT_SCALES.get(p)
    if k is None:
        k = _DROPOUT_SCALES[p] = float(torch.ones(1).div_(1 - p))
    return k


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

    def _constant_input(self, x: torch.Tensor):
        """``(dropout(centred), scale)`` through :class:`_ConstantInputDropout` where it applies
        (training, a mostly-zero constant dense input, dropout on), else None."""
        q = self.input_q
        # CPU only: there F.dropout draws its noise as below (CUDA's fused dropout draws differently).
        if not (self.training and qlr.FUSED and self.dropout > 0.0 and not x.requires_grad and x.dim() == 2
                and x.is_contiguous() and x.dtype == torch.float32 and x.device.type == "cpu"):
            return None
        initialized, skew = q._python_state()
        if not initialized or q._constant_nonzeros(x)[0].numel() > _MAX_CONSTANT_DENSITY * x.numel():
            return None
        return _ConstantInputDropout.apply(x, q._parameters["alpha"], q, self.dropout, skew)

    def _codes_matmul_t(self, a, cw: torch.Tensor):
        """Training's sparse product of codes as one exact CSR product (``nn/features.py``), where the
        dropout keeps the codes integers; else None."""
        if not (self.training and qlr.FUSED and cw.device.type == "cpu"):
            return None
        k = _dropout_scale(self.dropout) if self.dropout > 0.0 else 1.0
        if not k.is_integer():
            return None
        levels = lambda q: q.mult * q._qmax  # noqa: E731  (|centred| <= levels)
        return a.matmul_t_codes(cw, levels(self.input_q) * k * levels(self.weight_q))

    def forward(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) and self.input_q.zero_code(x.values, x.numel) != 0.0:
            x = x.dense()  # the implicit zeros have a nonzero code: sums over the nonzeros would miss it
        sparse = not isinstance(x, torch.Tensor)
        values, total = (x.values, x.numel) if sparse else (x, None)
        if self.input_q.enabled and self.weight_q.enabled:
            ca = self._constant_input(x) if not sparse else None
            if ca is not None:
                ca, a_scale = ca
            else:
                ca, a_scale = self.input_q.codes(values, total)
                ca = F.dropout(ca, self.dropout, self.training)
            cw, w_scale = self.weight_q.codes(self.weight)
            prod = self._codes_matmul_t(x.with_values(ca), cw) if sparse else None
            if prod is None:
                prod = _matmul_t(x.with_values(ca) if sparse else ca, cw, exact=not self.training)
            out = prod * (a_scale * w_scale)
        else:  # float on at least one side: fake-quantize each side and multiply in float
            a = F.dropout(self.input_q(values, total), self.dropout, self.training)
            out = _matmul_t(x.with_values(a) if sparse else a, self.weight_q(self.weight), exact=False)
        if self.bias is not None:
            out = out + self.bias
        return self.output_q(F.relu(out) if self.relu else out)
