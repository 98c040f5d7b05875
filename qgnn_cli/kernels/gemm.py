"""``qgnn::gemm``: packed activations times packed weights, zero points folded in.

Activations ``A`` (n x k) are packed codes on one grid (``a_bits``, ``a_scale``, ``a_zero``,
``a_mult``); weights ``W`` (o x k, one row per output channel, as ``nn.Linear`` stores them) are
packed codes with a per-channel ``w_scale`` (float32 [o]) and ``w_zero`` (int32 [o]) and one
``w_mult``. With ``ca = a_mult * qa - a_zero`` and ``cw = w_mult * qw - w_zero``::

    D[r, c]   = sum_k ca[r, k] * cw[c, k]                                    (exact integer)
    out[r, c] = float32(D[r, c]) * (float32(a_scale) * w_scale[c]) + bias[c]   (float32)

Kernels compute ``D`` in integer arithmetic (the zero points folded through row and column sums of
the codes) and match this reference bit for bit. A per-tensor weight grid is the special case of
equal entries in ``w_scale`` / ``w_zero``.

``gemm_requant`` returns ``quantize_pack(gemm(...), out grid)`` without materialising the float
output (at n = 2M and 128 outputs that is 1 GB written and re-read): the packed activations of the
next layer. An epilogue chain (``chain.py``) runs its per-element stages on the float rows first.
"""

from __future__ import annotations

import torch

from qgnn_cli.finite import all_finite
from qgnn_cli.kernels.chain import Chain, apply_chain_reference, check_chain
from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.pack import unpack_reference
from qgnn_cli.kernels.pack import words_per_row
from qgnn_cli.kernels.quantize import check_grid, quantize_pack_reference
from qgnn_cli.kernels.rounding import qmax_of
from qgnn_cli.kernels.validate import check_packed, check_tensor


def gemm_reference(
    a_packed, a_bits, k, a_mult, a_scale, a_zero, w_packed, w_bits, w_mult, w_scale, w_zero, bias
) -> torch.Tensor:
    ca = unpack_reference(a_packed, a_bits, k).to(torch.float64) * a_mult - a_zero
    cw = unpack_reference(w_packed, w_bits, k).to(torch.float64) * w_mult - w_zero.to(torch.float64).unsqueeze(1)
    exact = ca @ cw.T  # float64 holds these integer sums exactly
    out = exact.to(torch.float32) * (torch.tensor(a_scale, dtype=torch.float32) * w_scale)
    if bias is not None:
        out = out + bias
    return out


def _gemm_fake(a_packed, a_bits, k, a_mult, a_scale, a_zero, w_packed, w_bits, w_mult, w_scale, w_zero, bias):
    return a_packed.new_empty((a_packed.shape[0], w_packed.shape[0]), dtype=torch.float32)


define(
    "gemm(Tensor a_packed, int a_bits, int k, int a_mult, float a_scale, int a_zero, "
    "Tensor w_packed, int w_bits, int w_mult, Tensor w_scale, Tensor w_zero, Tensor? bias) -> Tensor",
    gemm_reference,
    _gemm_fake,
)


def gemm_requant_reference(
    a_packed, a_bits, k, a_mult, a_scale, a_zero, w_packed, w_bits, w_mult, w_scale, w_zero, bias,
    out_bits, out_scale, out_zero, out_mult, out_skew, chain=None, chain_row=None, chain_col=None,
) -> torch.Tensor:
    out = gemm_reference(a_packed, a_bits, k, a_mult, a_scale, a_zero, w_packed, w_bits, w_mult, w_scale, w_zero, bias)
    out = apply_chain_reference(out, chain, chain_row, chain_col)
    return quantize_pack_reference(out, out_bits, out_scale, out_zero, out_mult, out_skew)


def _gemm_requant_fake(a_packed, a_bits, k, a_mult, a_scale, a_zero, w_packed, w_bits, w_mult, w_scale, w_zero, bias,
                       out_bits, out_scale, out_zero, out_mult, out_skew, chain=None, chain_row=None, chain_col=None):
    return a_packed.new_empty((a_packed.shape[0], words_per_row(w_packed.shape[0], out_bits)), dtype=torch.int32)


define(
    "gemm_requant(Tensor a_packed, int a_bits, int k, int a_mult, float a_scale, int a_zero, "
    "Tensor w_packed, int w_bits, int w_mult, Tensor w_scale, Tensor w_zero, Tensor? bias, "
    "int out_bits, float out_scale, int out_zero, int out_mult, int out_skew, "
    "Tensor? chain=None, Tensor? chain_row=None, Tensor? chain_col=None) -> Tensor",
    gemm_requant_reference,
    _gemm_requant_fake,
)


def _check_gemm_inputs(a_packed, a_bits, k, a_scale, a_zero, w_packed, w_bits, w_scale, w_zero, a_mult, w_mult, bias):
    check_packed(a_packed, a_bits, k, "a_packed")
    check_packed(w_packed, w_bits, k, "w_packed")
    check_grid(a_bits, a_scale, a_zero, a_mult)
    out_features = w_packed.shape[0]
    check_tensor(w_scale, "w_scale", torch.float32, 1)
    check_tensor(w_zero, "w_zero", torch.int32, 1)
    if w_scale.numel() != out_features or w_zero.numel() != out_features:
        raise ValueError(f"w_scale and w_zero need {out_features} entries (one per output channel)")
    if out_features and (int(w_zero.min()) < 0 or int(w_zero.max()) > w_mult * qmax_of(w_bits)):
        raise ValueError("w_zero outside the weight grid")
    if out_features and not (bool((w_scale > 0).all()) and all_finite(w_scale)):
        raise ValueError("w_scale must be positive and finite")
    if k * 255 * 255 >= 2**31:
        raise ValueError(f"k={k} would overflow the 32-bit integer accumulator")
    if bias is not None:
        check_tensor(bias, "bias", torch.float32, 1)
        if bias.numel() != out_features:
            raise ValueError(f"bias has {bias.numel()} entries for {out_features} output channels")


def gemm(
    a_packed: torch.Tensor,
    a_bits: int,
    k: int,
    a_scale: float,
    a_zero: int,
    w_packed: torch.Tensor,
    w_bits: int,
    w_scale: torch.Tensor,
    w_zero: torch.Tensor,
    *,
    a_mult: int = 1,
    w_mult: int = 1,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Packed (n x k) activations times packed (o x k) weights; float32 (n, o). See module docstring."""
    _check_gemm_inputs(a_packed, a_bits, k, a_scale, a_zero, w_packed, w_bits, w_scale, w_zero, a_mult, w_mult, bias)
    return torch.ops.qgnn.gemm(
        a_packed.contiguous(), a_bits, k, a_mult, float(a_scale), int(a_zero),
        w_packed.contiguous(), w_bits, w_mult, w_scale.contiguous(), w_zero.contiguous(), bias,
    )


def gemm_requant(
    a_packed: torch.Tensor,
    a_bits: int,
    k: int,
    a_scale: float,
    a_zero: int,
    w_packed: torch.Tensor,
    w_bits: int,
    w_scale: torch.Tensor,
    w_zero: torch.Tensor,
    out_bits: int,
    out_scale: float,
    out_zero: int,
    *,
    a_mult: int = 1,
    w_mult: int = 1,
    out_mult: int = 1,
    out_skew: int = 0,
    bias: torch.Tensor | None = None,
    chain: Chain | None = None,
) -> torch.Tensor:
    """:func:`gemm` followed by re-quantisation onto the output grid; packed int32 (n, words).

    ``chain``: per-element stages applied to the float rows before the output grid (``chain.py``).
    """
    _check_gemm_inputs(a_packed, a_bits, k, a_scale, a_zero, w_packed, w_bits, w_scale, w_zero, a_mult, w_mult, bias)
    check_grid(out_bits, out_scale, out_zero, out_mult, out_skew)
    chain_args = chain.args() if chain is not None else (None, None, None)
    check_chain(*chain_args, a_packed.shape[0], w_packed.shape[0])
    return torch.ops.qgnn.gemm_requant(
        a_packed.contiguous(), a_bits, k, a_mult, float(a_scale), int(a_zero),
        w_packed.contiguous(), w_bits, w_mult, w_scale.contiguous(), w_zero.contiguous(), bias,
        out_bits, float(out_scale), int(out_zero), int(out_mult), int(out_skew), *chain_args,
    )
