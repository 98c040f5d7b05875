"""The per-site operations of packed inference, and the stage clock that times them.

A :class:`Grid` is one quantizer site's frozen ``(bits, scale, zero, mult, skew)``. Sites followed by a
packed op become codes through ``kernels.quantize_pack``, or, between two packed ops, inside the
producing kernel's epilogue (a :class:`Handover`); the other sites are applied in float with
:func:`fake_quant`, which returns exactly what the training forward computes for the site
(``centred * scale`` of ``quant/ste.py``, with ``rounding.py``'s rule), using in-place passes.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from dataclasses import dataclass

import torch

from qgnn_cli.kernels import Chain, rounding
from qgnn_cli.quant import OFF

STAGES = ("gemm", "aggregation", "requant", "other")


@dataclass(frozen=True)
class Grid:
    bits: int
    scale: float
    zero: int
    mult: int = 1
    skew: int = 0

    @classmethod
    def from_entry(cls, entry: dict) -> "Grid":
        return cls(int(entry["bits"]), float(entry["scale"]), int(entry["zero"]), int(entry["mult"]), int(entry["skew"]))

    @property
    def enabled(self) -> bool:
        return self.bits != OFF

    @property
    def levels(self) -> int:
        return self.mult * rounding.qmax_of(self.bits)

    def scale_t(self) -> torch.Tensor:
        """The scale as the 0-d float32 tensor training divides and multiplies by."""
        return torch.tensor(self.scale, dtype=torch.float32)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``kernels.quantize_pack`` without its per-call NaN scan (an extra pass over ``x``): the grid
        was checked once at load, and ``x`` comes from the model's own float32 ops."""
        if x.dtype != torch.float32 or x.dim() != 2:
            raise ValueError(f"expected 2-D float32 activations, got {x.dtype} {tuple(x.shape)}")
        return torch.ops.qgnn.quantize_pack(x.contiguous(), self.bits, self.scale, self.zero, self.mult, self.skew)


def site_stage(grid: Grid) -> tuple:
    """The epilogue-chain stage of a site: its fake quantization, or nothing when the site is off."""
    return (("fake_quant", grid.bits, grid.scale, grid.zero, grid.mult, grid.skew),) if grid.enabled else ()


@dataclass(frozen=True, eq=False)
class Handover:
    """From a packed op's float output to the next packed op's input codes, inside the producing
    kernel: ``stages`` (``kernels/chain.py``: the op's own output site, then whatever training does
    before the next input site) run in the epilogue, then the values are quantized onto ``dst``."""

    stages: tuple
    dst: Grid
    row: torch.Tensor | None = None  # for a "mul_row" stage (D^-1/2)
    col: torch.Tensor | None = None  # for an "add_col" stage (a bias)

    @functools.cached_property
    def chain(self) -> Chain | None:
        """The stages as the ops take them, built once (None when there are none)."""
        return Chain.of(list(self.stages), self.row, self.col) if self.stages else None

    def chain_args(self) -> tuple:
        """``(chain, chain_row, chain_col)`` as the ops and ``apply_chain_reference`` take them."""
        return self.chain.args() if self.chain is not None else (None, None, None)


def fake_quant(x: torch.Tensor, grid: Grid, inplace: bool = False) -> torch.Tensor:
    """The site's value ``(mult * code - zero) * scale`` of every element (``x`` itself when off).

    For ``mult = 1``: ``clamp(round(x / s), -z, L - z) * s``, the same integers as
    ``clamp(round(x / s) + z, 0, L) - z`` (exact in float32; huge quotients clamp alike).
    """
    if not grid.enabled:
        return x
    scale = grid.scale_t()
    if grid.mult != 1 or grid.skew != 0:
        return rounding.fake_quantize(x, scale, float(grid.zero), grid.bits, grid.mult, grid.skew)
    out = x if inplace else x.clone()
    out.div_(scale).round_().clamp_(float(-grid.zero), float(grid.levels - grid.zero))
    return out.mul_(scale)


def code_values(grid: Grid) -> torch.Tensor:
    """The float32 value ``(mult * code - zero) * scale`` of every code of the grid (what training computes)."""
    codes = torch.arange(2**grid.bits, dtype=torch.float32)
    return (codes * grid.mult - float(grid.zero)) * grid.scale_t()


def _byte_values(grid: Grid) -> torch.Tensor:
    """(256, 8 / bits) float32: the values of the codes a byte holds, LSB first (``kernels/pack.py``)."""
    per, b = 8 // grid.bits, grid.bits
    byte = torch.arange(256, dtype=torch.int64)
    codes = torch.stack([(byte >> (k * b)) & (2**b - 1) for k in range(per)], dim=1)
    return code_values(grid)[codes].contiguous()


_BYTE_VALUES: dict[Grid, torch.Tensor] = {}


def dequant(packed: torch.Tensor, grid: Grid, cols: int, into: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 values of packed codes, by one table lookup per byte (no unpacked intermediate).

    ``into``: a contiguous float32 (rows, cols) tensor to write them to when the rows have no padding
    codes (a fresh 128 MB result costs more in page faults than the lookup on the 2M-node bench)."""
    table = _BYTE_VALUES.get(grid)
    if table is None:
        table = _BYTE_VALUES.setdefault(grid, _byte_values(grid))
    raw = packed.contiguous().view(torch.uint8)
    rows, nbytes = raw.shape
    if raw.numel() < _SMALL:
        return _dequant_small(raw, grid, cols)
    per = table.shape[1]
    index = _index_buffer(raw.numel()).copy_(raw.reshape(-1))
    if (into is not None and nbytes * per == cols and into.dtype == torch.float32 and into.is_contiguous()
            and tuple(into.shape) == (rows, cols)):
        torch.index_select(table, 0, index, out=into.view(rows * nbytes, per))
        return into
    out = table.index_select(0, index).view(rows, nbytes * per)
    return out if out.shape[1] == cols else out[:, :cols].contiguous()


_SCRATCH = threading.local()


def _index_buffer(n: int) -> torch.Tensor:
    """An int32 buffer of ``n`` elements, kept per thread: a fresh one above glibc's 32 MB mmap
    threshold is mapped anew on every call (the 2M-node INT4 GCN's last dequantization took 15.6k page
    faults, ~40 ms, for its 64 MB of byte indices)."""
    buf = getattr(_SCRATCH, "index", None)
    if buf is None or buf.numel() < n:
        buf = _SCRATCH.index = torch.empty(n, dtype=torch.int32)
    return buf[:n]


# Below this many bytes, decode with shifts: elementwise ops on small tensors stay on one thread, while
# index_select starts a parallel region, which costs milliseconds when other jobs hold the cores.
_SMALL = 1 << 15


def _dequant_small(raw: torch.Tensor, grid: Grid, cols: int) -> torch.Tensor:
    b, per = grid.bits, 8 // grid.bits
    codes = torch.stack([(raw >> (k * b)) & (2**b - 1) for k in range(per)], dim=2).view(raw.shape[0], -1)
    values = codes[:, :cols].to(torch.float32)
    if grid.mult != 1:
        values = values * grid.mult
    return (values - float(grid.zero)) * grid.scale_t()


def requant(x: torch.Tensor, grid: Grid, inplace: bool = False) -> torch.Tensor:
    """:func:`fake_quant` through the packing kernel and :func:`dequant`: two passes instead of four
    (``inplace``: the values overwrite ``x`` where :func:`dequant` can write them there)."""
    if not grid.enabled:
        return x
    return dequant(grid.pack(x), grid, x.shape[1], into=x if inplace else None)


class StageClock:
    """Seconds spent per stage (``STAGES``); ``with clock("gemm"): ...``."""

    def __init__(self) -> None:
        self.seconds = {name: 0.0 for name in STAGES}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


_NULL = contextlib.nullcontext()


def no_clock(name: str):  # noqa: ARG001 - the same signature as StageClock
    return _NULL
