"""QLR: quantization with a learned range, one module per tensor site (METHOD.md §2).

Range: ``lo = min(0, alpha * min(x))``, ``hi = max(0, alpha * max(x))``; scale and zero point from
``rounding.qparams`` (so BT's 8-bit fine grid comes from ``mult = 85``). In training, min/max are the
current batch's: a range that lags behind growing activations clips exactly the largest values and,
through the masked STE used then, cut their gradient, which stalls training (a moving-average range trained
Cora INT4 to 15 % where the batch range reaches 80 %). The running min/max buffers track the batches
(first batch, then an exponential moving average, momentum 0.1) and are the range frozen in eval mode,
unless an eval forward runs under ``quant/calibrate.py``'s :func:`clean_ranges`: then each site takes
the min/max of the tensor it quantizes there as its frozen range (the training loop does this at every
epoch's evaluation; see that module for why). ``alpha`` is the site's only parameter,
initialised by grid search on the first batch (``quant/init.py``) and then trained through the LSQ
gradient of ``quant/ste.py``.

A site with ``bits = 32`` is off: it passes tensors through and reports ``grid()[0] == 32``.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from qgnn_cli.kernels import rounding
from qgnn_cli.quant.bt import bt_mult, check_bt, skew_of
from qgnn_cli.quant.init import search_alpha
from qgnn_cli.quant.ste import TrainSite, centred_codes, centred_zero, site_grid

OFF = 32
MOMENTUM = 0.1
# alpha is kept above this so a large learning rate cannot flip or collapse the range.
MIN_ALPHA = 1e-3
_MIN_ALPHA_F32 = float(torch.tensor(MIN_ALPHA, dtype=torch.float32))  # the bound clamp applies, in float32
# Training steps go through one fused autograd node per site (quant/ste.py's TrainSite); False runs the
# unfused reference chain, which computes the same bits (tests/quant/test_qlr.py compares them).
FUSED = True


def check_site_bits(bits: int) -> int:
    if bits != OFF:
        rounding.check_bits(bits)
    return bits


class QLRQuantizer(nn.Module):
    """Fake quantizer of one tensor site; ``bits`` in {1, 2, 4, 8} or 32 (off), ``bt`` in none/bt/bt*."""

    def __init__(self, bits: int = OFF, bt: str = "none"):
        super().__init__()
        self.bits = check_site_bits(bits)
        self.bt = check_bt(bt, bits) if bits != OFF else "none"
        self.mult = bt_mult(self.bt)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("running_min", torch.tensor(0.0))
        self.register_buffer("running_max", torch.tensor(0.0))
        self.register_buffer("skew", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("initialized", torch.tensor(False))
        self._qmax = rounding.qmax_of(bits) if bits != OFF else 0
        self._min_alpha, self._min_alpha_arg = _MIN_ALPHA_F32, MIN_ALPHA
        self._py_cache = self._const_cache = self._nonzero_cache = None
        self.calibrating = False  # set by quant/calibrate.py's clean_ranges

    def __getstate__(self):
        # the per-tensor caches hold weak references (not picklable) and are rebuilt on use
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {**state, "_py_cache": None, "_const_cache": None, "_nonzero_cache": None}

    @property
    def enabled(self) -> bool:
        return self.bits != OFF

    def extra_repr(self) -> str:
        return f"bits={self.bits}, bt={self.bt!r}" if self.enabled else "off"

    # -- range ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def _observe(self, x: torch.Tensor, total: int | None) -> tuple[float, float]:
        """Update the running range from a training batch; return the batch's (min, max)."""
        lo, hi = torch.aminmax(x.detach())
        if total is not None and total > x.numel():  # implicit zeros belong to the tensor too
            lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
        if not bool(self.initialized):
            self.running_min.copy_(lo)
            self.running_max.copy_(hi)
            self.skew.fill_(skew_of(x, self.bt, total))
            alpha = search_alpha(x, float(lo), float(hi), self.bits, self.mult, int(self.skew))
            self.alpha.fill_(alpha)
            self.initialized.fill_(True)
        else:
            self.running_min.lerp_(lo, MOMENTUM)
            self.running_max.lerp_(hi, MOMENTUM)
        return float(lo), float(hi)

    def _python_state(self) -> tuple[bool, int]:
        """``(initialized, skew)`` as python values, re-read only when a buffer changed (an in-place
        write bumps its version; ``load_state_dict`` and ``.to`` write in place or swap the tensor)."""
        init, skew = self._buffers["initialized"], self._buffers["skew"]
        c = self._py_cache
        if c is None or c[0] is not init or c[1] != init._version or c[2] is not skew or c[3] != skew._version:
            c = self._py_cache = (init, init._version, skew, skew._version, bool(init), int(skew))
        return c[4], c[5]

    def _observe_batch(self, x: torch.Tensor, total: int | None) -> tuple[float, float]:
        """:meth:`_observe` for an initialised site, without autograd (called inside TrainSite's
        forward): the same statistics, the running range's two updates in one call. A constant
        input (one that needs no gradient: the input features) is the same tensor every step, so
        its min/max are kept, keyed on the tensor and its version counter."""
        lo, hi = self._batch_range(x, total)
        buffers = self._buffers  # not nn.Module.__getattr__: this runs for every site and step
        torch._foreach_lerp_([buffers["running_min"], buffers["running_max"]], [lo, hi], MOMENTUM)
        return lo.item(), hi.item()

    def _batch_range(self, x: torch.Tensor, total: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's (min, max) as 0-d tensors, the implicit zeros of a sparse one included."""
        lo, hi = torch.aminmax(x) if x.requires_grad else self._constant_aminmax(x)
        if total is not None and total > x.numel():  # implicit zeros belong to the tensor too
            lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
        return lo, hi

    def _constant_aminmax(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``torch.aminmax(x)``, remembered for the last tensor seen (weakly) until it is written to."""
        c = self._const_cache
        if c is None or c[0]() is not x or c[1] != x._version:
            c = self._const_cache = (weakref.ref(x), x._version, *torch.aminmax(x))
        return c[2], c[3]

    def _constant_nonzeros(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For a constant input: the flat positions of its nonzeros, their values, and a zero buffer of
        its shape (for a gradient's products), remembered for the last tensor seen until it is written to."""
        c = self._nonzero_cache
        if c is None or c[0]() is not x or c[1] != x._version:
            flat = x.reshape(-1).nonzero().squeeze(1)
            c = self._nonzero_cache = (weakref.ref(x), x._version, flat, x.reshape(-1)[flat], torch.zeros_like(x))
        return c[2], c[3], c[4]

    def _fused(self, x: torch.Tensor, total: int | None, value: bool):
        """The training forward through TrainSite, or None where the reference chain must run (the
        first batch, which searches alpha)."""
        if not FUSED:
            return None
        initialized, skew = self._python_state()
        if not initialized:
            return None
        return TrainSite.apply(x, self._parameters["alpha"], self, total, value, skew)

    def _train_qparams(self, lo: float, hi: float) -> tuple[torch.Tensor, float]:
        """``qparams`` of the batch range with the scalar arithmetic in python: a site costs a few
        tensor ops instead of a dozen autograd nodes (the gradient is the same: scale is linear in
        alpha, and the zero point, ``round(-lo / s)``, does not depend on alpha at all). Training
        needs no bit-exact grid; eval takes :meth:`qparams`, the rule's float32 arithmetic."""
        levels = self.mult * rounding.qmax_of(self.bits)
        width = (max(hi, 0.0) - min(lo, 0.0)) / levels
        alpha = self.alpha.clamp(min=MIN_ALPHA)
        if float(alpha.detach()) * width < rounding.EPS:  # an all-zero batch: the rule's smallest scale
            return torch.tensor(rounding.EPS), 0.0
        zero = min(max(round(-min(lo, 0.0) / width), 0), levels)  # round: half to even, as torch
        return alpha * width, float(zero)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale (differentiable in alpha) and zero point of the frozen (running) range."""
        if not bool(self.initialized):
            raise RuntimeError("quantizer used in eval mode before any training batch set its range")
        alpha = self.alpha.clamp(min=MIN_ALPHA)
        return rounding.qparams(alpha * self.running_min, alpha * self.running_max, self.bits, self.mult)

    def _eval_grid(self, x: torch.Tensor, total: int | None) -> tuple[torch.Tensor, float, int]:
        """(scale, zero, skew) of the frozen range for quantizing ``x``. Under ``clean_ranges`` the range
        is first re-taken from ``x``'s own min/max (an uninitialised site still fails in qparams, as in
        plain eval). Without autograd, cached until alpha or the range change (tensor version
        counters), since eval runs every epoch."""
        if self.calibrating and self._python_state()[0]:
            with torch.no_grad():
                lo, hi = self._batch_range(x.detach(), total)
                self.running_min.copy_(lo)
                self.running_max.copy_(hi)
        if torch.is_grad_enabled():
            scale, zero = self.qparams()
            return scale, float(zero), int(self.skew)
        key = (self.alpha._version, self.running_min._version, self.running_max._version, self.skew._version,
               self.alpha.data_ptr(), self.running_min.data_ptr())
        if getattr(self, "_cache_key", None) != key:
            scale, zero = self.qparams()
            self._cache, self._cache_key = (scale, float(zero), int(self.skew)), key
        return self._cache

    def grid(self) -> tuple[int, float, int, int, int]:
        """``(bits, scale, zero, mult, skew)`` of the frozen range, as python numbers (bits 32: off)."""
        if not self.enabled:
            return (OFF, 1.0, 0, 1, 0)
        with torch.no_grad():
            scale, zero = self.qparams()
        return (self.bits, float(scale), int(zero), self.mult, int(self.skew))

    @torch.no_grad()
    def zero_code(self, x: torch.Tensor, total: int | None = None) -> float:
        """The centred code of 0.0 on the grid that ``codes(x, total)`` uses next. It leaves the site as
        it was, except under ``clean_ranges``, where it sets the range that ``codes(x, total)`` sets
        anyway. It is 0 unless a BT grid moves it (zero point and skew rounded to a multiple of 85), and
        only where it is 0 do sums over the nonzeros of a sparse tensor equal the dense sums."""
        if not self.enabled or self.mult == 1:
            return 0.0
        initialized, skew = self._python_state()
        if not self.training:
            _, zero, skew = self._eval_grid(x, total)
        else:  # the batch's range, as TrainSite and the first batch's _observe take it
            lo, hi = self._batch_range(x, total)
            _, _, zero = site_grid(self.alpha, self, float(lo), float(hi))
            if not initialized:
                skew = skew_of(x, self.bt, total)
        return centred_zero(float(zero), int(skew), self.bits, self.mult)

    # -- quantization --------------------------------------------------------------------------------
    def codes(self, x: torch.Tensor, total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(centred, scale)`` with ``centred * scale`` the fake-quantized ``x``; centred holds integers.

        Ops that sum codes (aggregation, matmul) use the pair so their sums are exact, as in the packed
        kernels. ``total``: the number of elements ``x`` stands for when it holds only the nonzeros of a
        sparse tensor (the range statistics count the zeros). Must not be called on an off site.
        """
        if self.training:
            fused = self._fused(x, total, False)
            if fused is not None:
                return fused
            scale, zero = self._train_qparams(*self._observe(x, total))
            skew = int(self.skew)
        else:
            scale, zero, skew = self._eval_grid(x, total)
        return centred_codes(x, scale, zero, self.bits, self.mult, skew), scale

    def forward(self, x: torch.Tensor, total: int | None = None) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.training:
            fused = self._fused(x, total, True)
            if fused is not None:
                return fused
        centred, scale = self.codes(x, total)
        return centred * scale
