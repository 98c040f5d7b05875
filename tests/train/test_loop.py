"""The training loop: determinism, resume after an interruption, the model file."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from qgnn_cli.errors import DataError, ModelFileError
from qgnn_cli.nn import GraphOperator
from qgnn_cli.train import TrainConfig, load_model, node_features, run_training
from tests.nn.graphs import ring_graph

pytestmark = pytest.mark.usefixtures("one_thread")

GRAPH = ring_graph(60, 20, features=12, classes=3)
SMALL = dict(hidden=8, layers=4, epochs=6, checkpoint_every=2, lr_step=2)


def numbers(metrics: dict) -> list:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in metrics["runs"]]


def states_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_result(tmp_path):
    config = TrainConfig(bits=2, bt="bt*", **SMALL)
    a = run_training(config, tmp_path / "a", graph=GRAPH)
    b = run_training(config, tmp_path / "b", graph=GRAPH)
    assert numbers(a) == numbers(b)
    ma, _ = load_model(tmp_path / "a" / "model.pt")
    mb, _ = load_model(tmp_path / "b" / "model.pt")
    assert states_equal(ma.state_dict(), mb.state_dict())
    c = run_training(dataclasses.replace(config, seed=1), graph=GRAPH)
    assert numbers(c) != numbers(a)


@pytest.mark.parametrize("extra", [dict(bits=2, bt="bt*"), dict(bits=4, model="gcn", layers=3)])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, extra):
    config = TrainConfig(**{**SMALL, **extra, "runs": 2})
    full = run_training(config, tmp_path / "full", graph=GRAPH)

    def kill(run: int, row: dict) -> None:
        if run == 1 and row["epoch"] == 4:  # the checkpoint holds 4 epochs; epoch 4 is lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(config, tmp_path / "cut", graph=GRAPH, on_epoch=kill)
    resumed = run_training(config, tmp_path / "cut", graph=GRAPH, resume=True)
    assert numbers(resumed) == numbers(full)
    for seed in (0, 1):
        a = torch.load(tmp_path / "full" / "runs" / f"seed-{seed}" / "checkpoint.pt", weights_only=True)
        b = torch.load(tmp_path / "cut" / "runs" / f"seed-{seed}" / "checkpoint.pt", weights_only=True)
        assert states_equal(a["model"], b["model"]) and a["epoch"] == b["epoch"] == 6
    if extra.get("model") == "gcn":
        assert float(a["model"]["multipliers"].abs().sum()) >= 0.0


def test_model_file_round_trip_and_metrics(tmp_path):
    config = TrainConfig(bits=4, **SMALL)
    metrics = run_training(config, tmp_path, graph=GRAPH)
    model, loaded = load_model(tmp_path / "model.pt")
    assert loaded == config.resolved() and not model.training
    data = torch.load(tmp_path / "model.pt", weights_only=True)
    assert data["format"] == "qgnn-model" and data["version"] == 2
    assert [s["name"] for s in data["extra"]["sites"]][:3] == ["mlp.lin1.input", "mlp.lin1.weight", "mlp.lin1.output"]
    sites = data["extra"]["sites"]
    # the last step's aggregated results and update are the output, which stays float
    float_out = {"prop.steps.3.agg_x.output", "prop.steps.3.agg_dx.output", "prop.steps.3.update"}
    assert {s["name"] for s in sites if s["bits"] == 32} == float_out
    assert all(s["bits"] == 4 for s in sites if s["name"] not in float_out)
    assert sites[-1]["name"] == "prop.steps.3.update"
    op = GraphOperator.from_adj(GRAPH.adj)
    with torch.no_grad():
        acc = float((model(node_features(GRAPH, loaded), op).argmax(1) == GRAPH.y)[GRAPH.test_mask].float().mean())
    assert acc == pytest.approx(metrics["runs"][0]["test_acc"])
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["summary"]["runs"] == 1 and on_disk["config"]["bits"] == 4


def test_bad_model_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ModelFileError, match="not a qgnn model"):
        load_model(other)
    for version in (99, 1):  # 1: before the last SMP step's results went float; its state would load silently
        path = tmp_path / f"v{version}.pt"
        torch.save({"format": "qgnn-model", "version": version}, path)
        with pytest.raises(ModelFileError, match=f"version {version}, .*retrain"):
            load_model(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_a_checkpoint_of_another_version_is_refused(tmp_path):
    from qgnn_cli.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1}, path)
    with pytest.raises(ModelFileError, match="checkpoint version 1, expected 2: .*without --resume"):
        load_checkpoint(path)


def test_graph_without_labels_is_refused():
    unlabelled = dataclasses.replace(GRAPH, y=None)
    with pytest.raises(DataError, match="no labels"):
        run_training(TrainConfig(**SMALL), graph=unlabelled)


def test_deep_gcn_multipliers_rise_under_violation():
    config = TrainConfig(model="gcn", layers=3, hidden=8, epochs=3, alpha_th=0.0, gcn_lambda_lr=1.0)
    from qgnn_cli.train import train_model

    _, model = train_model(config, GRAPH)
    assert bool((model.multipliers > 0).all())


def test_resume_with_other_options_is_refused(tmp_path):
    from qgnn_cli.errors import ConfigError

    config = TrainConfig(bits=4, **{**SMALL, "epochs": 2, "checkpoint_every": 1})

    def kill(run: int, row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(config, tmp_path, graph=GRAPH, on_epoch=kill)
    with pytest.raises(ConfigError, match="bits=4"):
        run_training(dataclasses.replace(config, bits=8), tmp_path, graph=GRAPH, resume=True)


def test_a_diverging_run_stops_and_keeps_its_best_epoch():
    config = TrainConfig(**{**SMALL, "lr": 1e30, "epochs": 6})
    metrics = run_training(config, graph=GRAPH)
    run = metrics["runs"][0]
    assert run["diverged_epoch"] is not None and run["best_epoch"] >= 0


def test_foreach_adam_and_fused_sites_train_the_same_bits(tmp_path, monkeypatch):
    """The loop's speed-ups change no number: Adam's foreach update (train/loop.py) against the
    per-tensor loop, and the fused training sites and aggregations (quant/qlr.py FUSED) against the
    unfused chain, on a quantized run with BT* (every loss, accuracy and the saved model)."""
    from qgnn_cli.quant import qlr
    from qgnn_cli.train import loop

    config = TrainConfig(bits=2, bt="bt*", **SMALL)
    fast = run_training(config, tmp_path / "fast", graph=GRAPH)
    real_adam = torch.optim.Adam

    def per_tensor_adam(params, **kwargs):
        return real_adam(params, **{**kwargs, "foreach": False})

    monkeypatch.setattr(loop.torch.optim, "Adam", per_tensor_adam)
    monkeypatch.setattr(qlr, "FUSED", False)
    slow = run_training(config, tmp_path / "slow", graph=GRAPH)
    history = lambda m: json.loads((tmp_path / m / "runs" / "seed-0" / "result.json").read_text())["history"]  # noqa: E731
    strip = lambda h: [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in h]  # noqa: E731
    assert numbers(fast) == numbers(slow) and strip(history("fast")) == strip(history("slow"))
    ma, _ = load_model(tmp_path / "fast" / "model.pt")
    mb, _ = load_model(tmp_path / "slow" / "model.pt")
    assert states_equal(ma.state_dict(), mb.state_dict())


def test_raw_binary_features_keep_their_two_values_on_a_2_bit_input_site(tmp_path):
    """--raw-features keeps 0/1 features as they are; the 2-bit input site then maps every 0 to 0 and
    every 1 to one and the same level (a constant factor the first layer absorbs), where the rows'
    unit-L1 values are rounded to three levels (the reason the accuracy benchmark trains on raw ones)."""
    graph = dataclasses.replace(GRAPH, x=(GRAPH.x > 0.5).to(torch.float32))
    kept = {}
    for normalize in (True, False):
        config = TrainConfig(bits=2, **{**SMALL, "epochs": 1}, normalize_features=normalize)
        run_training(config, tmp_path / str(normalize), graph=graph)
        model, _ = load_model(tmp_path / str(normalize) / "model.pt")
        x = node_features(graph, config)
        with torch.no_grad():
            q = model.mlp.lin1.input_q(x)
        kept[normalize] = torch.equal(q, (x > 0) * q.max()) and float(q.max()) > 0.9 * float(x.max())
    assert kept == {False: True, True: False}
