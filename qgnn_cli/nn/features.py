"""Sparse input features: the rows, columns and values of the nonzeros of X (N x F).

Citation-graph features are 1-2 % nonzero. Carrying only the nonzeros makes the first layer's input
site quantize ~50k values instead of ~4M and its product a gather-and-sum, in FP32 and quantized runs
alike. 0 is always on the grid (``lo <= 0 <= hi``), and its code is 0 except on a BT grid whose zero
point plus skew is not a multiple of its step (``QLRQuantizer.zero_code``; ``QLinear`` then takes the
dense input), so the result is the dense computation's, bit for bit, once the codes are integers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

# Sums of integer-valued float32 products are exact, in any order, while every partial sum stays
# below 2^24 in magnitude.
_EXACT = float(1 << 24)


class _CodesMatmulT(torch.autograd.Function):
    """``X @ w.T`` for sparse ``X`` whose values and ``w`` hold integers (quantized codes in training):
    :meth:`SparseFeatures.matmul_t`'s result and gradients, bit for bit, with the forward as one CSR
    product. The forward's sums are exact (the caller bounds them below 2^24), so their order does
    not matter; the gather-multiply-scatter it replaces cost more than the rest of the layer. The
    backward is the gather-multiply-scatter's own autograd backward, op for op (the gradients are not
    integers, so there the order is kept)."""

    @staticmethod
    def forward(ctx, values, w, x):
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            a = torch.sparse_csr_tensor(x.crow(), x.cols, values, x.shape)
            out = torch.sparse.mm(a, w.T.contiguous())
        ctx.save_for_backward(values, w)
        ctx.x = x
        return out

    @staticmethod
    def backward(ctx, grad):
        values, w = ctx.saved_tensors
        x = ctx.x
        g_terms = grad.index_select(0, x.rows)  # index_add_'s backward
        v = values.unsqueeze(1)
        w_t = w.T
        g_values = g_w = None
        if ctx.needs_input_grad[0]:
            # w.T[cols], gathered from a contiguous copy (the same values and layout; ~3x faster than
            # gathering rows of the transposed view); then the product's sum_to
            gathered = w_t.contiguous().index_select(0, x.cols)
            g_values = (g_terms * gathered).sum(1, keepdim=True).squeeze(1)
        if ctx.needs_input_grad[1]:
            g_gathered = g_terms * v
            # index_select's backward: a contiguous zero (F, out) accumulated into, handed back transposed
            g_w = g_gathered.new_zeros(w_t.shape).index_add_(0, x.cols, g_gathered).T
        return g_values, g_w, None


@dataclass(frozen=True)
class SparseFeatures:
    rows: torch.Tensor  # int64 (nnz,)
    cols: torch.Tensor  # int64 (nnz,)
    values: torch.Tensor  # float32 (nnz,)
    shape: tuple[int, int]
    # What depends on rows/cols only (CSR offsets, ...), built on first use and shared by with_values.
    structure: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dense(cls, x: torch.Tensor) -> "SparseFeatures":
        rows, cols = x.nonzero(as_tuple=True)
        return cls(rows, cols, x[rows, cols], (int(x.shape[0]), int(x.shape[1])))

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def with_values(self, values: torch.Tensor) -> "SparseFeatures":
        return SparseFeatures(self.rows, self.cols, values, self.shape, self.structure)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.values.dtype)
        out[self.rows, self.cols] = self.values
        return out

    def dense(self) -> torch.Tensor:
        """``to_dense()``, kept while ``values`` is the same, unchanged tensor (input features are)."""
        st = self._structure()
        c = st.get("dense")
        if c is None or c[0] is not self.values or c[1] != self.values._version:
            c = st["dense"] = (self.values, self.values._version, self.to_dense())
        return c[2]

    def _structure(self) -> dict:
        st = self.structure
        if st.get("rows") is not self.rows:
            st.clear()
            counts = torch.bincount(self.rows, minlength=self.shape[0])
            crow = torch.zeros(self.shape[0] + 1, dtype=torch.int64)
            torch.cumsum(counts, 0, out=crow[1:])
            st.update(rows=self.rows, crow=crow, max_row=int(counts.max()) if self.rows.numel() else 0,
                      sorted=self.rows.numel() < 2 or bool((self.rows[1:] >= self.rows[:-1]).all()))
        return st

    def crow(self) -> torch.Tensor:
        """CSR row offsets of the nonzeros (valid where ``rows`` is sorted, as ``from_dense`` lists them)."""
        return self._structure()["crow"]

    def matmul_t_codes(self, w: torch.Tensor, bound: float) -> torch.Tensor | None:
        """``matmul_t(w)`` (float32) for integer-valued values and ``w`` with ``|value| * |w| <= bound``
        per product, or None where the sums might not be exact (then ``matmul_t`` it is)."""
        st = self._structure()
        if not st["sorted"] or st["max_row"] * bound >= _EXACT:
            return None
        return _CodesMatmulT.apply(self.values, w, self)

    def matmul_t(self, w: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``X @ w.T`` for ``w`` (out, F), summed in ``dtype``; differentiable in values and ``w``."""
        # index_select, not w.T[cols]: the indexing's backward (index_put_ with accumulate) adds with
        # atomics across threads on CPU, so two threads gave a different weight gradient every step;
        # index_select's (index_add_) adds in index order, the same bits as one thread's index_put_.
        # Gathered from a contiguous copy, as _CodesMatmulT's backward does (faster on two threads).
        terms = self.values.to(dtype).unsqueeze(1) * w.to(dtype).T.contiguous().index_select(0, self.cols)
        out = torch.zeros(self.shape[0], w.shape[0], dtype=dtype).index_add_(0, self.rows, terms)
        return out.to(torch.float32)


def maybe_sparse(x: torch.Tensor, max_density: float = 0.05) -> torch.Tensor | SparseFeatures:
    """``x`` as :class:`SparseFeatures` when at most ``max_density`` of it is nonzero.

    The gather-and-sum moves ``nnz x out`` floats; past a few percent density (PubMed's 10 %) a dense
    matmul is faster (PubMed FP32 step, one thread: 0.47 s dense vs 2.3 s sparse, on a loaded machine).
    """
    if x.numel() and float((x != 0).float().mean()) <= max_density:
        return SparseFeatures.from_dense(x)
    return x

