"""SMP propagation: lambda fixed at 0 is APPNP; the multiplier and slack follow METHOD.md §4."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.nn import GraphOperator, SitePlan, SMPParams, SMPPropagation, dirichlet_energy, update_multipliers
from tests.nn.graphs import ring_graph

pytestmark = pytest.mark.usefixtures("one_thread")


def pair(bits: int, bt: str = "none"):
    g = ring_graph(30, 6)
    op = GraphOperator.from_adj(g.adj)
    plan = SitePlan(bits, bt)
    smp = SMPPropagation(10, SMPParams(lambda_init=0.0, eta_lambda=0.0), plan)
    appnp = SMPPropagation(10, SMPParams(mode="appnp"), plan)
    return op, smp, appnp


@pytest.mark.parametrize("bits,bt", [(32, "none"), (4, "none"), (2, "bt*")])
def test_smp_with_lambda_fixed_at_zero_equals_appnp(bits, bt, seeded):
    op, smp, appnp = pair(bits, bt)
    h = torch.randn(30, 4, generator=seeded)
    assert torch.equal(smp.train()(h, op), appnp.train()(h, op))  # also sets the ranges
    missing, unexpected = appnp.load_state_dict(smp.state_dict(), strict=False)
    assert not missing and all(".agg_dx." in k for k in unexpected)
    with torch.no_grad():
        assert torch.equal(smp.eval()(h, op), appnp.eval()(h, op))


def test_multiplier_and_slack_updates_follow_the_formula(seeded):
    g = ring_graph(25, 5)
    op = GraphOperator.from_adj(g.adj)
    p = SMPParams(alpha_th=5.0, eta_lambda=1e-3)  # a budget the first step stays under: lambda ascends
    prop = SMPPropagation(3, p, SitePlan()).eval()
    h = torch.randn(25, 3, generator=seeded)
    trace: list = []
    prop(h, op, trace)
    # Step 0 by hand, from X^0 = H.
    x = h
    x_half = (1 - (1 + p.mu) * p.eta) * x + p.mu * p.eta * op.a_hat(x) + p.eta * h
    dx = x_half - x
    s = p.s_init + 2 * p.eta_s * p.lambda_init * p.s_init
    lam = p.lambda_init + p.eta_lambda * (p.alpha_th * op.num_entries - s * s - float(dirichlet_energy(dx, op)))
    assert lam > p.lambda_init
    assert trace[0] == pytest.approx((lam, s, float(dirichlet_energy(dx, op))))
    assert len(trace) == 3



def test_multiplier_stays_non_negative_when_the_energy_exceeds_the_budget(seeded):
    p = SMPParams(alpha_th=1e-4, eta_lambda=1e-2)
    assert update_multipliers(1e-3, 1e-3, 1e4, p, budget=1.0)[0] == 0.0  # unprojected: about -100
    lam, _ = update_multipliers(0.0, 1e-3, 0.5, p, budget=1.0)
    assert lam == pytest.approx(1e-2 * (1.0 - 1e-6 - 0.5))  # below the budget it ascends as before
    g = ring_graph(25, 5)
    op = GraphOperator.from_adj(g.adj)
    trace: list = []
    SMPPropagation(6, p, SitePlan()).eval()(100 * torch.randn(25, 3, generator=seeded), op, trace)
    assert min(e for _, _, e in trace) > op.num_entries * p.alpha_th  # every step over budget
    assert all(lam == 0.0 for lam, _, _ in trace)

def test_exact_gradient_variant_differs_from_the_authors(seeded):
    g = ring_graph(25, 5)
    op = GraphOperator.from_adj(g.adj)
    h = torch.randn(25, 3, generator=seeded)
    big = dict(lambda_init=0.5, eta_lambda=0.0)
    authors = SMPPropagation(5, SMPParams(**big), SitePlan()).eval()(h, op)
    exact = SMPPropagation(5, SMPParams(grad="exact", **big), SitePlan()).eval()(h, op)
    assert not torch.allclose(authors, exact)


def test_sites_are_listed_step_by_step():
    prop = SMPPropagation(2, SMPParams(), SitePlan(4))
    names = [n for n, _ in prop.sites()]
    assert names[:5] == ["steps.0.agg_x.input", "steps.0.agg_x.output", "steps.0.agg_dx.input",
                         "steps.0.agg_dx.output", "steps.0.update"]
    assert len(names) == 10
    assert len(SMPPropagation(2, SMPParams(mode="appnp"), SitePlan(4)).sites()) == 6


def test_the_last_step_hands_its_results_on_in_float():
    """The last step's aggregated results and update are the model's output: off. Every step's
    aggregation inputs (the packed SpMM's operands) and the other steps' sites stay quantized."""
    prop = SMPPropagation(3, SMPParams(), SitePlan(2, "bt*"))
    off = {n for n, q in prop.sites() if not q.enabled}
    assert off == {"steps.2.agg_x.output", "steps.2.agg_dx.output", "steps.2.update"}
    assert all(q.bits == 2 and q.bt == "bt*" for n, q in prop.sites() if n not in off)
    appnp = SMPPropagation(3, SMPParams(mode="appnp"), SitePlan(2))
    assert {n for n, q in appnp.sites() if not q.enabled} == {"steps.2.agg_x.output", "steps.2.update"}


@pytest.mark.parametrize("bits,bt", [(8, "none"), (2, "none"), (2, "bt*")])
def test_fused_training_propagation_is_the_unfused_one_bit_for_bit(bits, bt, seeded, monkeypatch):
    """nn/smp.py's one-node training steps against the module-by-module loop: the same output,
    gradients of h (used by every step, and as X^0 by the first) and of every alpha, multiplier trace
    and running ranges, as int32 bit patterns."""
    from qgnn_cli.quant import qlr

    g = ring_graph(30, 6)
    op = GraphOperator.from_adj(g.adj)
    h0 = torch.randn(30, 4, generator=seeded)
    w = torch.randn(30, 4, generator=seeded)

    def run(fused: bool):
        torch.manual_seed(0)
        prop = SMPPropagation(6, SMPParams(alpha_th=0.01, eta_lambda=1e-2), SitePlan(bits, bt)).train()
        prop(h0, op)  # first batch: ranges and alphas
        monkeypatch.setattr(qlr, "FUSED", fused)
        h = (h0 * 1.3).requires_grad_()
        trace: list = []
        y = prop(h, op, trace)
        (y * w).sum().backward()
        monkeypatch.setattr(qlr, "FUSED", True)
        tensors = [y.detach(), h.grad] + [q.alpha.grad for _, q in prop.sites() if q.enabled]
        tensors += [b for n, b in prop.named_buffers() if "running" in n]
        bits_of = [t.contiguous().view(torch.int32).reshape(-1).tolist() for t in tensors]
        return bits_of, trace

    assert run(True) == run(False)
