"""The QLR quantizer: the formula, the STE, the LSQ gradient, alpha search, BT/BT*."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.kernels import rounding
from qgnn_cli.quant import QLRQuantizer, skewness
from qgnn_cli.quant.init import alpha_candidates, search_alpha

pytestmark = pytest.mark.usefixtures("one_thread")


def fixed(bits: int, lo: float, hi: float, bt: str = "none", alpha: float = 1.0) -> QLRQuantizer:
    """A quantizer whose frozen range is [lo, hi] (as if trained), in eval mode."""
    q = QLRQuantizer(bits, bt)
    with torch.no_grad():
        q.running_min.fill_(lo)
        q.running_max.fill_(hi)
        q.alpha.fill_(alpha)
        q.initialized.fill_(True)
    return q.eval()


X = torch.tensor([-1.7, -0.4, 0.0, 0.6, 1.5, 2.2, 3.0])


def test_formula_and_masks_on_a_hand_computed_case():
    # 2 bits over [-1, 2]: scale 1, zero 1; round half to even puts 1.5 on 2.
    q = fixed(2, -1.0, 2.0)
    assert q.grid() == (2, 1.0, 1, 1, 0)
    x = X.clone().requires_grad_()
    y = q(x)
    assert y.tolist() == [-1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 7  # straight through, also outside [-1, 2] (quant/ste.py)
    # LSQ: round(x/s) - x/s inside (0.4, 0, 0.4, 0.5), the clamped centred code outside (-1, 2, 2);
    # d scale / d alpha = (hi - lo) / 3 = 1.
    assert q.alpha.grad.item() == pytest.approx(4.3, abs=1e-5)


def test_eval_forward_equals_the_rounding_rule_bit_for_bit(seeded):
    x = torch.randn(300, 7, generator=seeded) * 3
    for bits, bt in [(1, "none"), (2, "none"), (4, "none"), (8, "none"), (2, "bt"), (2, "bt*")]:
        q = QLRQuantizer(bits, bt)
        q.train()(x)  # first batch: range, alpha search, skew
        q.eval()
        b, scale, zero, mult, skew = q.grid()
        expected = rounding.fake_quantize(x, torch.tensor(scale, dtype=torch.float32), float(zero), b, mult, skew)
        assert torch.equal(q(x), expected), (bits, bt)
        assert all(isinstance(v, int) for v in (b, zero, mult, skew)) and isinstance(scale, float)


def test_off_site_passes_through():
    q = QLRQuantizer(32)
    x = torch.randn(5)
    assert q(x) is x and q.grid()[0] == 32 and not q.enabled


def test_alpha_receives_a_gradient_and_moves(seeded):
    x = torch.randn(2000, generator=seeded)
    q = QLRQuantizer(4).train()
    q(x)
    start = q.alpha.item()
    opt = torch.optim.Adam([q.alpha], lr=0.01)
    losses = []
    for step in range(30):
        opt.zero_grad()
        loss = (q(x) - 1.5 * x).pow(2).mean()  # asks for a wider range than the data's
        loss.backward()
        if step == 0:  # the searched alpha clips this target: the gradient must ask to widen
            assert q.alpha.grad.item() < -0.05
        losses.append(loss.item())
        opt.step()
    # Not a per-step bound: near its optimum alpha's gradient is legitimately ~0. Over 1000 random
    # inputs alpha rose by at least 0.18 and the loss fell by at least 4 %.
    assert q.alpha.item() > start + 0.1
    assert losses[-1] < 0.99 * losses[0]


def test_range_tracks_batches_and_freezes_in_eval():
    q = QLRQuantizer(8).train()
    q(torch.tensor([-1.0, 1.0]))
    assert (q.running_min.item(), q.running_max.item()) == (-1.0, 1.0)
    q(torch.tensor([-2.0, 3.0]))
    assert q.running_max.item() == pytest.approx(1.2)  # EMA, momentum 0.1
    q.eval()
    grid = q.grid()
    q(torch.tensor([-50.0, 50.0]))
    assert q.grid() == grid


def test_bt_levels_are_exactly_the_multiples_of_85():
    q = fixed(2, 0.0, 255.0, "bt")  # 8-bit grid with scale 1: the code is round(x)
    assert q.grid() == (2, 1.0, 0, 85, 0)
    x = torch.arange(0.0, 256.0)
    codes = rounding.quantize(x, torch.tensor(1.0), 0.0, 2, 85, 0)
    assert set((codes.long() * 85).tolist()) == {0, 85, 170, 255}
    assert set(q(x).tolist()) == {0.0, 85.0, 170.0, 255.0}
    assert q(torch.tensor([42.0, 43.0, 127.0, 128.0])).tolist() == [0.0, 85.0, 85.0, 170.0]


def test_bt_star_shifts_by_the_rounded_skewness():
    x = torch.cat([torch.zeros(900), torch.full((100,), 10.0)])  # skewness 8/3 -> 3
    assert skewness(x) == pytest.approx(8 / 3)
    q = QLRQuantizer(2, "bt*").train()
    q(x)
    assert int(q.skew) == 3
    assert QLRQuantizer(2, "bt").train()(x) is not None


def test_skewness_of_nonzeros_with_total_equals_dense(seeded):
    dense = torch.zeros(50, 40)
    dense[torch.rand(50, 40, generator=seeded) < 0.05] = 1.0
    values = dense[dense != 0]
    assert skewness(values, total=dense.numel()) == pytest.approx(skewness(dense))


@pytest.mark.parametrize("bits,mult", [(2, 1), (2, 85), (4, 1)])
def test_alpha_search_minimises_mean_abs_error(seeded, bits, mult):
    x = torch.randn(5000, generator=seeded)
    lo, hi = float(x.min()), float(x.max())
    best = search_alpha(x, lo, hi, bits, mult, 0)
    assert best in alpha_candidates(bits)

    def err(a):
        s, z = rounding.qparams(a * lo, a * hi, bits, mult)
        return float((rounding.fake_quantize(x, s, z, bits, mult) - x).abs().mean())

    assert err(best) == min(err(a) for a in alpha_candidates(bits))
    assert len(alpha_candidates(4)) == 50 and alpha_candidates(4)[-1] == 1.0


def test_bad_widths_and_modes_are_rejected():
    with pytest.raises(ValueError):
        QLRQuantizer(3)
    with pytest.raises(ValueError):
        QLRQuantizer(4, "bt*")


def test_no_grad_eval_cache_follows_alpha_and_range(seeded):
    x = torch.randn(500, generator=seeded)
    q = QLRQuantizer(4).train()
    q(x)
    q.eval()

    def by_rule():
        _, scale, zero, mult, skew = q.grid()
        return rounding.fake_quantize(x, torch.tensor(scale), float(zero), 4, mult, skew)

    with torch.no_grad():
        assert torch.equal(q(x), by_rule())
        q.alpha.mul_(0.5)  # in-place changes bump the version counters the cache is keyed on
        assert torch.equal(q(x), by_rule())
        q.running_max.mul_(3.0)
        assert torch.equal(q(x), by_rule())


def _bits(t):
    return None if t is None else (tuple(t.shape), t.contiguous().view(torch.int32).reshape(-1).tolist())


def _train_step(fused: bool, bits: int, bt: str, x0, total, value: bool, alpha: float, w, monkeypatch):
    from qgnn_cli.quant import qlr

    q = QLRQuantizer(bits, bt).train()
    q(x0, total)  # first batch: range, alpha search, skew (always the reference chain)
    with torch.no_grad():
        q.alpha.fill_(alpha)
    monkeypatch.setattr(qlr, "FUSED", fused)
    x = (x0 * 1.3).requires_grad_()
    if value:
        y = q(x, total)
        loss = (y * w).sum()
    else:
        centred, scale = q.codes(x, total)
        y = centred * scale
        loss = (centred * w).sum() * scale
    loss.backward()
    return [_bits(t) for t in (y.detach(), x.grad, q.alpha.grad, q.running_min, q.running_max)]


@pytest.mark.parametrize("bits,bt", [(1, "none"), (2, "none"), (4, "none"), (8, "none"), (2, "bt"), (2, "bt*")])
@pytest.mark.parametrize("kind", ["randn", "positive", "sparse", "zeros", "tiny"])
def test_fused_training_site_is_the_reference_chain_bit_for_bit(bits, bt, kind, seeded, monkeypatch):
    """quant/ste.py's TrainSite against the unfused chain (alpha.clamp * width -> CentredCodes -> * scale):
    the same forward values, input and alpha gradients and running range, as int32 bit patterns (so
    the sign of zero counts too), for value and (codes, scale) outputs, alpha free and clamped."""
    x0 = {"randn": lambda: torch.randn(300, 7, generator=seeded) * 3,
          "positive": lambda: torch.rand(300, 7, generator=seeded) ** 3,
          "sparse": lambda: torch.randn(500, generator=seeded).exp(),  # nonzeros of a 5000-element tensor
          "zeros": lambda: torch.zeros(50),  # an all-zero batch: the rule's smallest scale, no alpha gradient
          "tiny": lambda: torch.randn(300, generator=seeded) * 1e-9}[kind]()
    total = 5000 if kind == "sparse" else None
    w = torch.randn(x0.shape, generator=seeded)
    for value in (True, False):
        for alpha in (1.0, 0.37, 2.5, 5e-4):  # 5e-4: held at MIN_ALPHA by the clamp
            ref = _train_step(False, bits, bt, x0, total, value, alpha, w, monkeypatch)
            got = _train_step(True, bits, bt, x0, total, value, alpha, w, monkeypatch)
            assert got == ref, (value, alpha)
