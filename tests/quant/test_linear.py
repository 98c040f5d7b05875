"""QLinear in eval mode is the packed GEMM's reference, bit for bit; sparse inputs change nothing."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.kernels.gemm import gemm_reference
from qgnn_cli.kernels.quantize import quantize_pack_reference
from qgnn_cli.nn import SparseFeatures
from qgnn_cli.quant import QLinear, QLRQuantizer

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_linear(bits: int, x: torch.Tensor, bt: str = "none") -> QLinear:
    lin = QLinear(x.shape[1], 5, input_q=QLRQuantizer(bits, bt), weight_q=QLRQuantizer(bits, bt),
                  output_q=QLRQuantizer(32))
    lin.train()(x)  # sets the ranges
    return lin.eval()


@pytest.mark.parametrize("bits,bt", [(2, "none"), (4, "none"), (2, "bt*")])
def test_eval_forward_equals_gemm_reference(bits, bt, seeded):
    x = torch.randn(40, 24, generator=seeded)
    lin = trained_linear(bits, x, bt)
    _, a_scale, a_zero, a_mult, a_skew = lin.input_q.grid()
    _, w_scale, w_zero, w_mult, w_skew = lin.weight_q.grid()
    with torch.no_grad():
        got = lin(x)
        a_packed = quantize_pack_reference(x, bits, a_scale, a_zero, a_mult, a_skew)
        w_packed = quantize_pack_reference(lin.weight, bits, w_scale, w_zero, w_mult, w_skew)
        out = lin.weight.shape[0]
        expected = gemm_reference(a_packed, bits, 24, a_mult, a_scale, a_zero, w_packed, bits, w_mult,
                                  torch.full((out,), w_scale), torch.full((out,), w_zero, dtype=torch.int32),
                                  lin.bias)
    assert torch.equal(got, expected)


def test_sparse_input_gives_the_dense_result(seeded):
    x = torch.zeros(30, 50)
    x[torch.rand(30, 50, generator=seeded) < 0.1] = 0.25
    x[0, 0] = -0.5
    lin = trained_linear(4, x)
    lin_sparse = trained_linear(4, SparseFeatures.from_dense(x))
    assert torch.equal(lin.input_q.running_min, lin_sparse.input_q.running_min)
    lin_sparse.load_state_dict(lin.state_dict())
    with torch.no_grad():
        assert torch.equal(lin(x), lin_sparse(SparseFeatures.from_dense(x)))
    assert torch.equal(SparseFeatures.from_dense(x).to_dense(), x)


def test_gradients_reach_weights_bias_and_alphas(seeded):
    x = torch.randn(20, 8, generator=seeded)
    lin = QLinear(8, 3, input_q=QLRQuantizer(4), weight_q=QLRQuantizer(4), output_q=QLRQuantizer(4)).train()
    lin(x).pow(2).sum().backward()
    for name, p in lin.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bits,bt", [(8, "none"), (4, "none"), (2, "bt*"), (2, "bt")])
@pytest.mark.parametrize("negative", [False, True])  # True: zero point > 0, and at 2 bits BT the code of 0 is not 0
def test_constant_dense_input_path_is_the_dense_one_bit_for_bit(bits, bt, negative, seeded, monkeypatch):
    """quant/linear.py's training path for a mostly-zero constant dense input (codes, dropout and the
    gradient on the nonzeros) against the dense ops: the same output, weight, bias and alpha
    gradients and running ranges, as int32 bit patterns, the dropout drawing the same noise."""
    from qgnn_cli.quant import qlr

    x = torch.zeros(50, 40)
    keep = torch.rand(50, 40, generator=seeded) < 0.1
    x[keep] = torch.rand(int(keep.sum()), generator=seeded) * 0.3
    if negative:
        x[0, :3] = torch.tensor([-0.2, -0.05, -0.11])
    w = torch.randn(50, 6, generator=seeded)

    def run(fused: bool):
        torch.manual_seed(3)
        lin = QLinear(40, 6, input_q=QLRQuantizer(bits, bt), weight_q=QLRQuantizer(bits, bt),
                      output_q=QLRQuantizer(bits, bt), dropout=0.5).train()
        lin(x)  # first batch: ranges and alphas
        monkeypatch.setattr(qlr, "FUSED", fused)
        out = [lin(x) for _ in range(2)][-1]  # the second step reuses the cached nonzeros
        (out * w).sum().backward()
        monkeypatch.setattr(qlr, "FUSED", True)
        tensors = [out.detach(), lin.weight.grad, lin.bias.grad, lin.input_q.alpha.grad, lin.weight_q.alpha.grad,
                   lin.input_q.running_min, lin.input_q.running_max]
        return [t.contiguous().view(torch.int32).reshape(-1).tolist() for t in tensors]

    assert run(True) == run(False)


@pytest.mark.parametrize("bits,bt", [(8, "none"), (2, "bt*")])
def test_training_sparse_codes_product_is_the_gather_scatter_one_bit_for_bit(bits, bt, seeded, monkeypatch):
    """nn/features.py's CSR product of integer codes (training, sparse input) against the
    gather-multiply-scatter: the same output and weight, bias and alpha gradients, as int32 bit patterns."""
    from qgnn_cli.quant import qlr

    x = torch.zeros(60, 45)
    keep = torch.rand(60, 45, generator=seeded) < 0.08
    x[keep] = torch.rand(int(keep.sum()), generator=seeded)
    sx = SparseFeatures.from_dense(x)
    w = torch.randn(60, 6, generator=seeded)

    def run(fused: bool):
        torch.manual_seed(5)
        lin = QLinear(45, 6, input_q=QLRQuantizer(bits, bt), weight_q=QLRQuantizer(bits, bt),
                      output_q=QLRQuantizer(bits, bt), dropout=0.5).train()
        lin(sx)
        monkeypatch.setattr(qlr, "FUSED", fused)
        out = lin(sx)
        (out * w).sum().backward()
        monkeypatch.setattr(qlr, "FUSED", True)
        tensors = [out.detach(), lin.weight.grad, lin.bias.grad, lin.input_q.alpha.grad, lin.weight_q.alpha.grad]
        return [t.contiguous().view(torch.int32).reshape(-1).tolist() for t in tensors]

    assert run(True) == run(False)


@pytest.mark.parametrize("case", ["very sparse", "negative"])
def test_sparse_input_whose_zero_has_a_nonzero_code_gives_the_dense_result(case, seeded):
    """A BT* input grid can give 0 a nonzero code: a skew of 43 or more (features sparser than ~0.05 %)
    or a zero point off the 85-step (negative features). The sparse path must then sum it too."""
    x = torch.zeros(300, 200)
    if case == "very sparse":
        at = torch.randperm(x.numel(), generator=seeded)[:8]
        x.view(-1)[at] = torch.rand(8, generator=seeded) + 0.5
    else:
        keep = torch.rand(300, 200, generator=seeded) < 0.03
        x[keep] = torch.rand(int(keep.sum()), generator=seeded) - 0.3
    sx = SparseFeatures.from_dense(x)
    lin = trained_linear(2, x, "bt*")
    lin_sparse = trained_linear(2, sx, "bt*")
    assert lin.input_q.zero_code(x) != 0.0  # the case is the one named
    assert lin_sparse.input_q.zero_code(sx.values, sx.numel) == lin.input_q.zero_code(x)
    assert torch.equal(lin.input_q.skew, lin_sparse.input_q.skew)
    lin_sparse.load_state_dict(lin.state_dict())
    with torch.no_grad():
        assert torch.equal(lin(x), lin_sparse(sx))
        lin.train(), lin_sparse.train()
        assert lin_sparse.input_q.zero_code(sx.values, sx.numel) == lin.input_q.zero_code(x) != 0.0
        assert torch.equal(lin(x), lin_sparse(sx))
