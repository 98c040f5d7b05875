"""Quantized aggregation in eval mode is the packed SpMM's reference, bit for bit."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.data import gcn_norm
from qgnn_cli.kernels.quantize import quantize_pack_reference
from qgnn_cli.kernels.spmm import spmm_reference
from qgnn_cli.nn import GraphOperator, QAggregate
from qgnn_cli.quant import QLRQuantizer
from tests.nn.graphs import ring_graph

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("bits,bt", [(2, "none"), (4, "none"), (8, "none"), (2, "bt*"), (2, "bt")])
def test_eval_aggregation_equals_spmm_reference(bits, bt, seeded):
    g = ring_graph(40, 9)
    op = GraphOperator.from_adj(g.adj)
    x = torch.randn(40, 5, generator=seeded) * 2 + 0.5
    agg = QAggregate(QLRQuantizer(bits, bt), QLRQuantizer(32))
    agg.train()(x, op)
    agg.eval()
    _, scale, zero, mult, skew = agg.input_q.grid()
    packed = quantize_pack_reference(x * op.dinv.unsqueeze(1), bits, scale, zero, mult, skew)
    expected = spmm_reference(op.indptr, op.indices.int(), None, packed, bits, 5, mult, scale, zero, op.dinv)
    with torch.no_grad():
        assert torch.equal(agg(x, op), expected)


def test_unquantized_aggregation_is_a_hat(seeded):
    g = ring_graph(30, 7)
    op = GraphOperator.from_adj(g.adj)
    x = torch.randn(30, 4, generator=seeded)
    a_hat = gcn_norm(g.adj).to_torch_sparse().to_dense()
    torch.testing.assert_close(QAggregate()(x, op), a_hat @ x)


def test_gradients_flow_through_quantized_aggregation(seeded):
    g = ring_graph(20, 4)
    op = GraphOperator.from_adj(g.adj)
    x = torch.randn(20, 3, generator=seeded, requires_grad=True)
    agg = QAggregate(QLRQuantizer(4), QLRQuantizer(4)).train()
    agg(x, op).pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert agg.input_q.alpha.grad.abs() > 0 and agg.output_q.alpha.grad.abs() > 0


@pytest.mark.parametrize("output_on", [True, False])
@pytest.mark.parametrize("bits,bt", [(2, "none"), (8, "none"), (2, "bt*")])
def test_fused_training_aggregation_is_the_unfused_one_bit_for_bit(bits, bt, output_on, seeded, monkeypatch):
    """nn/aggregate.py's one-node training aggregation against the module's unfused ops: the same
    output, input gradient, alpha gradients and running ranges, as int32 bit patterns; with the
    output site off too (the last SMP step's)."""
    from qgnn_cli.quant import qlr

    g = ring_graph(40, 9)
    op = GraphOperator.from_adj(g.adj)
    x0 = torch.randn(40, 5, generator=seeded) * 2 + 0.5
    w = torch.randn(40, 5, generator=seeded)

    def run(fused: bool):
        torch.manual_seed(0)
        agg = QAggregate(QLRQuantizer(bits, bt), QLRQuantizer(bits, bt) if output_on else QLRQuantizer()).train()
        agg(x0, op)  # first batch: ranges and alphas
        monkeypatch.setattr(qlr, "FUSED", fused)
        x = (x0 * 1.7).requires_grad_()
        y = agg(x, op)
        (y * w).sum().backward()
        monkeypatch.setattr(qlr, "FUSED", True)
        tensors = [y.detach(), x.grad, agg.input_q.alpha.grad, agg.input_q.running_max]
        if output_on:
            tensors += [agg.output_q.alpha.grad, agg.output_q.running_min]
        return [t.contiguous().view(torch.int32).reshape(-1).tolist() for t in tensors]

    assert run(True) == run(False)
