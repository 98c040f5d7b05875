"""``qgnn::spmm`` / ``qgnn::spmm_requant``: sparse aggregation over packed b-bit node features.

For a CSR matrix (``indptr`` int64 [N+1], ``indices`` int32 [nnz], addressing the M rows of
``packed``) and features stored as packed codes on one grid (``bits``, ``scale``, ``zero``,
``mult``; see ``rounding.py``)::

    S[i, f]   = sum_{e in row i} w_e * (mult * code[indices[e], f] - zero)
    out[i, f] = float32(S[i, f]) * float32(scale) * row_scale[i]        (left to right, float32)

Without ``values`` every ``w_e = 1`` and ``S`` is an exact integer sum: the kernels accumulate
integers and match this reference bit for bit. This is how GCN's ``A_hat = D^-1/2 (A+I) D^-1/2``
runs: aggregate codes of the pre-scaled rows ``D^-1/2 X`` over the unweighted ``A + I`` and pass
``row_scale = D^-1/2``. With ``values`` (float32 edge weights) ``S`` is a float sum and kernels match
within float32 rounding. ``row_scale`` is optional (ones).

``spmm_requant`` returns ``quantize_pack(spmm(...), out grid)`` without materialising the float
output: the next propagation step can read it directly. An epilogue chain (``chain.py``) runs its
per-element stages on the float rows first.
"""

from __future__ import annotations

import warnings

import torch

from qgnn_cli.kernels.chain import Chain, apply_chain_reference, check_chain
from qgnn_cli.kernels.library import define
from qgnn_cli.kernels.pack import unpack_reference, words_per_row
from qgnn_cli.kernels.quantize import check_grid, quantize_pack_reference
from qgnn_cli.kernels.rounding import qmax_of
from qgnn_cli.kernels.validate import check_csr, check_packed, check_tensor


def spmm_reference(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    values: torch.Tensor | None,
    packed: torch.Tensor,
    bits: int,
    cols: int,
    mult: int,
    scale: float,
    zero: int,
    row_scale: torch.Tensor | None,
) -> torch.Tensor:
    num_rows, num_src = indptr.numel() - 1, packed.shape[0]
    # float64 holds every integer sum exactly, so the cast to float32 rounds like the kernels' int->float.
    centred = unpack_reference(packed, bits, cols).to(torch.float64) * mult - zero
    weights = (
        values.to(torch.float64)
        if values is not None
        else torch.ones(indices.numel(), dtype=torch.float64, device=indices.device)
    )
    with warnings.catch_warnings():  # "sparse CSR support is in beta" on every call
        warnings.simplefilter("ignore", UserWarning)
        adj = torch.sparse_csr_tensor(
            indptr, indices.to(torch.int64), weights, (num_rows, num_src), check_invariants=False
        )
    out = (adj @ centred if indices.numel() else torch.zeros(num_rows, cols, dtype=torch.float64))
    out = out.to(torch.float32) * torch.tensor(scale, dtype=torch.float32)
    if row_scale is not None:
        out = out * row_scale.unsqueeze(1)
    return out


def spmm_requant_reference(
    indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale,
    out_bits, out_scale, out_zero, out_mult, out_skew, chain=None, chain_row=None, chain_col=None,
) -> torch.Tensor:
    out = spmm_reference(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale)
    out = apply_chain_reference(out, chain, chain_row, chain_col)
    return quantize_pack_reference(out, out_bits, out_scale, out_zero, out_mult, out_skew)


def _spmm_fake(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale):
    return packed.new_empty((indptr.shape[0] - 1, cols), dtype=torch.float32)


def _spmm_requant_fake(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale,
                       out_bits, out_scale, out_zero, out_mult, out_skew, chain=None, chain_row=None, chain_col=None):
    return packed.new_empty((indptr.shape[0] - 1, words_per_row(cols, out_bits)), dtype=torch.int32)


_ARGS = ("Tensor indptr, Tensor indices, Tensor? values, Tensor packed, int bits, int cols, "
         "int mult, float scale, int zero, Tensor? row_scale")
define(f"spmm({_ARGS}) -> Tensor", spmm_reference, _spmm_fake)
define(
    f"spmm_requant({_ARGS}, int out_bits, float out_scale, int out_zero, int out_mult, int out_skew, "
    "Tensor? chain=None, Tensor? chain_row=None, Tensor? chain_col=None) -> Tensor",
    spmm_requant_reference,
    _spmm_requant_fake,
)


def _check_spmm_inputs(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale) -> None:
    check_packed(packed, bits, cols)
    check_grid(bits, scale, zero, mult)
    max_degree = check_csr(indptr, indices, packed.shape[0])
    if values is None and max_degree * max(mult * qmax_of(bits), zero) >= 2**31:
        raise ValueError(f"a row of degree {max_degree} would overflow the 32-bit integer accumulator")
    if values is not None:
        check_tensor(values, "values", torch.float32, 1)
        if values.shape != indices.shape:
            raise ValueError(f"values has {values.numel()} entries, indices {indices.numel()}")
    if row_scale is not None:
        check_tensor(row_scale, "row_scale", torch.float32, 1)
        if row_scale.numel() != indptr.numel() - 1:
            raise ValueError(f"row_scale has {row_scale.numel()} entries for {indptr.numel() - 1} rows")


def spmm(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    packed: torch.Tensor,
    bits: int,
    cols: int,
    scale: float,
    zero: int,
    *,
    mult: int = 1,
    values: torch.Tensor | None = None,
    row_scale: torch.Tensor | None = None,
    check: bool = True,
) -> torch.Tensor:
    """Aggregate packed rows over a CSR matrix (see the module docstring); float32 (N, cols).

    ``check=False`` skips the O(nnz) validation for tensors the caller has already validated and
    not modified since (the packed runtime validates its graph once at load).
    """
    if check:
        _check_spmm_inputs(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale)
    return torch.ops.qgnn.spmm(indptr, indices, values, packed, bits, cols, mult, float(scale), int(zero), row_scale)


def spmm_requant(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    packed: torch.Tensor,
    bits: int,
    cols: int,
    scale: float,
    zero: int,
    out_bits: int,
    out_scale: float,
    out_zero: int,
    *,
    mult: int = 1,
    out_mult: int = 1,
    out_skew: int = 0,
    values: torch.Tensor | None = None,
    row_scale: torch.Tensor | None = None,
    chain: Chain | None = None,
    check: bool = True,
) -> torch.Tensor:
    """:func:`spmm` followed by re-quantization onto the output grid; packed int32 (N, words).

    ``chain``: per-element stages applied to the float rows before the output grid (``chain.py``).
    """
    chain_args = chain.args() if chain is not None else (None, None, None)
    if check:
        _check_spmm_inputs(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale)
        check_grid(out_bits, out_scale, out_zero, out_mult, out_skew)
        check_chain(*chain_args, indptr.numel() - 1, cols)
    return torch.ops.qgnn.spmm_requant(
        indptr, indices, values, packed, bits, cols, mult, float(scale), int(zero), row_scale,
        out_bits, float(out_scale), int(out_zero), int(out_mult), int(out_skew), *chain_args,
    )
