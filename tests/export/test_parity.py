"""Packed inference predicts what the quantized model predicts in eval mode (Cora, 2/4/8 bits, BT*)."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.errors import DataError
from qgnn_cli.export import PackedModel, export_model, pack_model
from qgnn_cli.export.siteops import StageClock
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import TrainConfig, node_features, train_model

CASES = [("smp", 2, "none"), ("smp", 4, "none"), ("smp", 8, "none"), ("smp", 2, "bt*"),
         ("gcn", 2, "none"), ("gcn", 4, "none"), ("gcn", 8, "none"), ("gcn", 2, "bt*")]


def _compare(model, config, graph, packed: PackedModel):
    x = node_features(graph, config)
    with torch.no_grad():
        ref = model.eval()(x, GraphOperator.from_adj(graph.adj))
    out = packed.forward(graph, x)
    pred_ref, pred = ref.argmax(1), out.argmax(1)
    agree = float((pred == pred_ref).float().mean())
    mask = graph.test_mask
    acc_ref = float((pred_ref[mask] == graph.y[mask]).float().mean())
    acc = float((pred[mask] == graph.y[mask]).float().mean())
    return agree, acc_ref, acc, ref, out


@pytest.mark.parametrize("name,bits,bt", CASES)
def test_packed_predictions_equal_quantized_model(cora, quantized, name, bits, bt):
    model, config = quantized(name, bits, bt)
    packed = PackedModel(*pack_model(model, config.to_dict()))
    agree, acc_ref, acc, ref, out = _compare(model, config, cora, packed)
    # not vacuous: more than one class predicted (the 2-bit BT* GCN, calibrated only, predicts two)
    assert len(torch.unique(ref.argmax(1))) >= 2, "predictions collapsed: the parity check would be vacuous"
    assert agree >= 0.999
    assert abs(acc - acc_ref) <= 0.001
    # The design goal is stronger than the requirement: the same float32 numbers.
    assert torch.equal(out, ref)


@pytest.mark.parametrize("name,layers", [("smp", 3), ("gcn", 2)])
def test_parity_of_a_qat_trained_model(cora, name, layers):
    config = TrainConfig(model=name, layers=layers, bits=2, epochs=3, hidden=16, lr=0.05, dropout=0.2)
    _, model = train_model(config, cora)
    packed = PackedModel(*pack_model(model, config.resolved().to_dict()))
    agree, acc_ref, acc, ref, out = _compare(model, config.resolved(), cora, packed)
    assert agree >= 0.999 and abs(acc - acc_ref) <= 0.001
    assert torch.equal(out, ref)


def test_file_round_trip_predicts_the_same(cora, quantized, tmp_path):
    model, config = quantized("smp", 2)
    path = tmp_path / "m.qgnn"
    info = export_model(model, config, path)
    assert info["file_bytes"] == path.stat().st_size
    loaded = PackedModel.load(path)
    in_memory = PackedModel(*pack_model(model, config.to_dict()))
    assert torch.equal(loaded.forward(cora), in_memory.forward(cora))


def test_stage_clock_and_identity_energy(cora, quantized):
    model, config = quantized("smp", 4)
    packed = PackedModel(*pack_model(model, config.to_dict()))
    clock = StageClock()
    exact = packed.forward(cora, clock=clock)
    assert all(v > 0 for k, v in clock.seconds.items()), clock.seconds
    fast = packed.forward(cora, energy="identity")
    assert float((fast.argmax(1) == exact.argmax(1)).float().mean()) >= 0.99


def test_feature_count_mismatch_is_a_clear_error(cora, quantized):
    model, config = quantized("gcn", 4)
    packed = PackedModel(*pack_model(model, config.to_dict()))
    with pytest.raises(DataError, match="built for 1433 input features, the graph has 500"):
        packed.forward(cora, torch.zeros(cora.num_nodes, 500))


@pytest.mark.parametrize("bits,site_bits", [(2, {}), (4, {}), (2, {"agg": 4}), (4, {"update": 32, "input": 8}),
                                            (2, {"weight": 32})])
def test_parity_with_padded_rows_and_mixed_site_widths(cora, gcn_hidden20, bits, site_bits):
    """Hidden 20 leaves padding in every packed row; mixed widths and sites that are off still hand codes
    from kernel to kernel (epilogue chains), float weights take the float paths."""
    from qgnn_cli.export.ptq import post_training_quantize

    fp32, config = gcn_hidden20
    model, qconfig, _ = post_training_quantize(fp32, config, cora, bits, site_bits=site_bits)
    packed = PackedModel(*pack_model(model, qconfig.to_dict()))
    assert bool(packed.to_next_linear) == ("weight" not in site_bits)
    agree, acc_ref, acc, ref, out = _compare(model, qconfig, cora, packed)
    assert torch.equal(out, ref)
