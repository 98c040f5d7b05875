"""Clean eval ranges (quant/calibrate.py): what a calibrating eval sets and computes, and that the
training step itself is untouched by it."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.nn import GraphOperator, maybe_sparse
from qgnn_cli.quant import QLRQuantizer, clean_ranges
from qgnn_cli.train import TrainConfig, node_features
from qgnn_cli.train.loop import train_model
from qgnn_cli.train.metrics import accuracy
from tests.nn.graphs import ring_graph

pytestmark = pytest.mark.usefixtures("one_thread")

GRAPH = ring_graph(60, 20, features=12, classes=3)
SMALL = dict(hidden=8, layers=4, epochs=8, lr_step=4, dropout=0.8)
CONFIGS = [dict(bits=2), dict(bits=2, bt="bt*"), dict(bits=4), dict(bits=8), dict(bits=2, model="gcn", layers=3)]


def train(eval_ranges: str, **fields):
    config = TrainConfig(**{**SMALL, **fields}, eval_ranges=eval_ranges).resolved()
    result, model = train_model(config, GRAPH)
    return result, model, maybe_sparse(node_features(GRAPH, config)), GraphOperator.from_adj(GRAPH.adj)


def ranges(model) -> dict:
    return {n: (float(q.running_min), float(q.running_max)) for n, q in model.sites() if q.enabled}


@pytest.mark.parametrize("fields", CONFIGS, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_a_calibrating_eval_computes_what_the_frozen_model_then_computes(fields):
    _, model, x, op = train("ema", **fields)
    before = ranges(model)
    with torch.no_grad():
        with clean_ranges(model):
            calibrating = model(x, op)
        frozen = model(x, op)
    assert torch.equal(calibrating, frozen)
    after = ranges(model)
    assert after.keys() == before.keys() and after != before
    # the weight site's range is the current weight's own min/max, the moving average's is not
    lin = "mlp.lin1" if fields.get("model", "smp") == "smp" else "lin_in"
    w = model.get_submodule(lin).weight.detach()
    assert after[f"{lin}.weight"] == (float(w.min()), float(w.max())) != before[f"{lin}.weight"]
    assert not any(q.calibrating for _, q in model.sites())


def test_dropout_widens_the_moving_average_beyond_the_eval_tensor():
    """Why the clean ranges exist: at p=0.8 the training batches' extremes are several times the eval ones."""
    _, model, x, op = train("ema", bits=2)
    ema = ranges(model)["mlp.lin2.output"]
    with torch.no_grad(), clean_ranges(model):
        model(x, op)
    clean = ranges(model)["mlp.lin2.output"]
    assert ema[1] - ema[0] > 1.5 * (clean[1] - clean[0])


def test_clean_ranges_change_the_evaluation_not_the_training():
    clean, model, x, op = train("clean", bits=2)
    ema, *_ = train("ema", bits=2)
    assert [h["loss"] for h in clean["history"]] == [h["loss"] for h in ema["history"]]
    assert [h["val_acc"] for h in clean["history"]] != [h["val_acc"] for h in ema["history"]]
    # the returned best-validation model, evaluated plainly, predicts what its epoch reported
    with torch.no_grad():
        out = model(x, op)
    assert accuracy(out, GRAPH.y, GRAPH.val_mask) == clean["best_val_acc"]
    assert accuracy(out, GRAPH.y, GRAPH.test_mask) == clean["test_acc"]


def test_disabled_or_interrupted_calibration_leaves_no_site_calibrating():
    model = torch.nn.Sequential(QLRQuantizer(2), QLRQuantizer())
    with clean_ranges(model, enabled=False):
        assert not model[0].calibrating
    with pytest.raises(ValueError), clean_ranges(model):
        assert model[0].calibrating and not model[1].calibrating  # an off site is left alone
        raise ValueError
    assert not model[0].calibrating


def test_an_uninitialised_site_still_refuses_to_evaluate():
    q = QLRQuantizer(2).eval()
    with pytest.raises(RuntimeError, match="before any training batch"), clean_ranges(q):
        q(torch.randn(5))
