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
        self.offsets = (torch.arange(self.bytes_per_row, dtype=torch.int64) * 256)

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
        raw = packed.contiguous().view(torch.uint8)
        idx = raw.to(torch.int64)
        idx += self.offsets
        return self.table.take(idx).view(torch.int32)
