"""Code-to-code tables: a chain of per-element float sites between two packed ops, applied to packed bytes.

Between a GCN layer's aggregation and the next linear layer the eval forward is, per element of
column ``c``::

    code_next = Q_next( fq_update( relu( deq_agg(code) + bias[c] ) ) )

a function of the aggregated code and the column only. :class:`CodeMap` evaluates that chain once for
every (column, code) with the very same float32 operations the runtime would apply (``siteops``) and
the reference rounding rule, then folds it into one 256-entry table per byte position of a packed
row (a byte holds ``8 / b`` codes, LSB first; ``kernels/pack.py``). Applying it is one table lookup per
byte instead of a dozen float passes over the N x F matrix, with bit-identical codes.
"""

from __future__ import annotations

import torch

from qgnn_cli.export.siteops import Grid, fake_quant
from qgnn_cli.kernels import rounding, words_per_row


class CodeMap:
    def __init__(self, src: Grid, bias: torch.Tensor, update: Grid, dst: Grid):
        if src.bits != dst.bits or not (src.enabled and dst.enabled):
            raise ValueError("a code map needs enabled source and target grids of one bit width")
        self.bits, cols = src.bits, int(bias.numel())
        self.cols = cols
        codes = torch.arange(2**src.bits, dtype=torch.float32)
        values = (codes * src.mult - float(src.zero)) * src.scale_t()  # as siteops.dequant computes them
        table = torch.relu(values.unsqueeze(0) + bias.unsqueeze(1))  # (cols, codes): a[i, c] + bias[c]
        table = fake_quant(table, update)
        col_map = rounding.quantize(table, dst.scale_t(), float(dst.zero), dst.bits, dst.mult, dst.skew)
        self.column_map = col_map  # uint8 (cols, 2**bits)
        self.table = self._byte_table(col_map)  # uint8 (bytes_per_row * 256,)
        self.offsets = torch.arange(self.bytes_per_row, dtype=torch.int32) * 256

    @property
    def bytes_per_row(self) -> int:
        return words_per_row(self.cols, self.bits) * 4

    def _byte_table(self, col_map: torch.Tensor) -> torch.Tensor:
        b, per = self.bits, 8 // self.bits
        mask = 2**b - 1
        byte = torch.arange(256, dtype=torch.int64)
        table = torch.zeros(self.bytes_per_row, 256, dtype=torch.int64)
        for j in range(self.bytes_per_row):
            for k in range(per):
                col = j * per + k
                if col >= self.cols:  # padding codes stay zero, as pack() leaves them
                    break
                code = (byte >> (k * b)) & mask
                table[j] |= col_map[col, code].to(torch.int64) << (k * b)
        return table.to(torch.uint8).reshape(-1)

    def apply(self, packed: torch.Tensor) -> torch.Tensor:
        """Packed int32 rows on the source grid -> packed int32 rows on the target grid."""
        return _lookup(self.table, packed, self.offsets)


class RowCodeMap:
    """Per-row tables for ``code_next = Q_next(deq(code) * row_scale[i])``: a linear layer's output site,
    the ``D^-1/2`` pre-scaling of aggregation and the aggregation's input site, on packed rows.

    One 256-entry byte table per row (N x 256 bytes, built once per graph and grid pair): the price
    of replacing five float passes over the N x F output of the GEMM by one lookup per byte.
    """

    def __init__(self, src: Grid, dst: Grid, row_scale: torch.Tensor, cols: int):
        if src.bits != dst.bits or not (src.enabled and dst.enabled):
            raise ValueError("a row code map needs enabled source and target grids of one bit width")
        self.bits, self.cols = src.bits, cols
        codes = torch.arange(2**src.bits, dtype=torch.float32)
        values = (codes * src.mult - float(src.zero)) * src.scale_t()  # the site's fake-quantized values
        pre = values.unsqueeze(0) * row_scale.unsqueeze(1)  # (N, codes): x * dinv_col, element by element
        code_map = rounding.quantize(pre, dst.scale_t(), float(dst.zero), dst.bits, dst.mult, dst.skew)
        b, per = self.bits, 8 // self.bits
        byte = torch.arange(256, dtype=torch.int64)
        table = torch.zeros(code_map.shape[0], 256, dtype=torch.uint8)
        for k in range(per):
            part = code_map.index_select(1, (byte >> (k * b)) & (2**b - 1))
            table |= part << (k * b) if k else part
        self.table = table.reshape(-1)
        rows = code_map.shape[0]
        dtype = torch.int32 if rows * 256 < 2**31 else torch.int64
        self.row_offsets = (torch.arange(rows, dtype=dtype) * 256).unsqueeze(1)
        words = words_per_row(cols, b)
        used = cols * b - (words - 1) * 32  # bits of the last word that hold codes
        self.last_word_mask = None if used == 32 else (1 << used) - 1

    def apply(self, packed: torch.Tensor) -> torch.Tensor:
        out = _lookup(self.table, packed, self.row_offsets)
        if self.last_word_mask is not None:  # padding codes stay zero, as pack() leaves them
            out[:, -1] &= self.last_word_mask
        return out


def _lookup(table: torch.Tensor, packed: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``table[byte + offset]`` for every byte of the packed rows (int32 indices where they fit: half the
    traffic of int64, and ``index_select`` takes them)."""
    raw = packed.contiguous().view(torch.uint8)
    idx = raw.to(offsets.dtype)
    idx += offsets
    return table.index_select(0, idx.view(-1)).view(raw.shape).view(torch.int32)
