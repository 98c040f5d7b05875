"""The packed SMP propagation (export/smp_runtime.py): the fused code-to-code path against the float one.

The fused path (``qgnn::smp_delta`` / ``smp_update`` between packed aggregations, for the leading steps
whose aggregation inputs and X are codes, then float steps) must give the very numbers of the float path
(``smp_propagate`` with packed aggregations) and of the QAT model's eval forward, for every
propagation mode.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qgnn_cli.export import PackedGraph, PackedModel, pack_model
from qgnn_cli.export.ptq import calibrate, quantized_config
from qgnn_cli.export.siteops import StageClock
from qgnn_cli.export.smp_runtime import _forward_float, _packed_steps
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import TrainConfig, model_from_config, node_features


def _float_path(packed: PackedModel, graph, energy: str) -> torch.Tensor:
    g = PackedGraph.of(graph)
    with torch.no_grad():
        out = _forward_float(packed, g, packed.features(graph), StageClock(), energy)
    return F.log_softmax(out, dim=-1)


@pytest.mark.parametrize("bits,bt", [(2, "none"), (4, "none"), (8, "none"), (2, "bt*")])
def test_fused_path_equals_the_float_path(cora, quantized, bits, bt):
    model, config = quantized("smp", bits, bt)
    packed = PackedModel(*pack_model(model, config.to_dict()))
    assert _packed_steps(packed) == config.layers  # the last step too, its float results included
    assert torch.equal(packed.forward(cora), _float_path(packed, cora, "exact"))
    # identity energy: float64 sums in the kernels vs float32 sums in torch; lambda moves by rounding only
    fast, ref = packed.forward(cora, energy="identity"), _float_path(packed, cora, "identity")
    assert float((fast.argmax(1) == ref.argmax(1)).float().mean()) >= 0.999
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prop,grad", [("smp", "exact"), ("appnp", "authors"), ("smp", "authors")])
@pytest.mark.parametrize("bits", (2, 4))
def test_every_propagation_mode_matches_the_quantized_model(cora, prop, grad, bits):
    torch.manual_seed(1)
    base = TrainConfig(model="smp", layers=5, hidden=16, bits=32, prop=prop, smp_grad=grad).validated()
    config = quantized_config(base, bits)
    model = model_from_config(config, cora.num_features, cora.num_classes)
    x, op = node_features(cora, config), GraphOperator.from_adj(cora.adj)
    calibrate(model, x, op)
    with torch.no_grad():
        ref = model(x, op)
    packed = PackedModel(*pack_model(model, config.to_dict()))
    assert _packed_steps(packed) == 5
    assert torch.equal(packed.forward(cora, x), ref)


@pytest.mark.parametrize("site_bits,packed_steps", [({"update": 32}, 1), ({"linear": 32}, 0)])
def test_a_site_off_ends_the_packed_steps(cora, fp32_models, site_bits, packed_steps):
    """Update sites off: step 0 runs on codes and hands float X on; H off (``linear``): no step can."""
    from qgnn_cli.export.ptq import post_training_quantize

    fp32, config = fp32_models["smp"]
    model, qconfig, _ = post_training_quantize(fp32, config, cora, 2, site_bits=site_bits)
    packed = PackedModel(*pack_model(model, qconfig.to_dict()))
    assert _packed_steps(packed) == packed_steps
    x = node_features(cora, qconfig)
    with torch.no_grad():
        ref = model.eval()(x, GraphOperator.from_adj(cora.adj))
    assert torch.equal(packed.forward(cora, x), ref)
