"""`qgnn quantize`, `qgnn export` and `qgnn eval` end to end on the embedded Cora."""

from __future__ import annotations

import json

import pytest

from qgnn_cli.cli.main import main
from qgnn_cli.train import TrainConfig, run_training


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32")
    run_training(TrainConfig(model="smp", layers=3, epochs=10, hidden=16, lr=0.05, dropout=0.2), out)
    return out / "model.pt"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_quantize_export_eval(capsys, fp32_model, tmp_path):
    q = tmp_path / "q.pt"
    code, out, _ = run(capsys, "quantize", fp32_model, "--bits", "4", "-o", q, "--json")
    assert code == 0
    ptq = json.loads(out)
    assert {"fp32_test_acc", "ptq_test_acc", "bits"} <= ptq.keys() and q.is_file()

    art = tmp_path / "q.qgnn"
    code, out, _ = run(capsys, "export", q, "-o", art, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["file_bytes"] == art.stat().st_size and info["smaller_than_model_file"] > 4

    code, out, _ = run(capsys, "eval", art, "--json")
    packed = json.loads(out)
    code2, out2, _ = run(capsys, "eval", q, "--json")
    torch_eval = json.loads(out2)
    assert code == code2 == 0 and packed["runtime"] == "packed" and torch_eval["runtime"] == "pytorch"
    assert packed["test_acc"] == torch_eval["test_acc"] == pytest.approx(ptq["ptq_test_acc"])

    code, out, _ = run(capsys, "export", q, "-o", tmp_path / "t.qgnn")  # the Rich table
    assert code == 0 and "smaller" in out


def test_export_refuses_a_full_precision_model(capsys, fp32_model, tmp_path):
    code, _, err = run(capsys, "export", fp32_model, "-o", tmp_path / "x.qgnn")
    assert code == 2 and "full-precision" in err


def test_eval_refuses_a_corrupted_artefact(capsys, fp32_model, tmp_path):
    q, art = tmp_path / "q.pt", tmp_path / "q.qgnn"
    assert run(capsys, "quantize", fp32_model, "--bits", "2", "-o", q, "--json")[0] == 0
    assert run(capsys, "export", q, "-o", art, "--json")[0] == 0
    blob = bytearray(art.read_bytes())
    blob[200] ^= 1
    art.write_bytes(bytes(blob))
    code, _, err = run(capsys, "eval", art)
    assert code == 2 and "checksum" in err and len(err.strip().splitlines()) == 1


def test_eval_with_wrong_feature_count_is_a_clear_error(capsys, fp32_model, tmp_path, shared_datasets):
    q, art = tmp_path / "q.pt", tmp_path / "q.qgnn"
    run(capsys, "quantize", fp32_model, "--bits", "8", "-o", q, "--json")
    run(capsys, "export", q, "-o", art, "--json")
    code, _, err = run(capsys, "eval", art, "--dataset", "citeseer", "--data-root", shared_datasets)
    assert code == 2 and "built for 1433 input features, the graph has 3703" in err


@pytest.fixture(scope="module")
def three_random_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    metrics = run_training(TrainConfig(model="smp", layers=2, epochs=4, hidden=8, split="random", runs=3), out)
    return out, metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eval_and_quantize_use_the_split_the_run_trained_on(capsys, three_random_runs, tmp_path, seed):
    # Each run's file records its own seed: evaluated on the first seed's split, the runs after it
    # would report accuracies on test nodes that were their training nodes.
    out, metrics = three_random_runs
    model = out / "runs" / f"seed-{seed}" / "model.pt"
    trained = metrics["runs"][seed]
    code, text, err = run(capsys, "eval", model, "--json")
    assert code == 0, err
    result = json.loads(text)
    assert result["test_acc"] == pytest.approx(trained["test_acc"])
    assert result["val_acc"] == pytest.approx(trained["best_val_acc"])
    code, text, err = run(capsys, "quantize", model, "--bits", "8", "-o", tmp_path / "q.pt", "--json")
    assert code == 0, err
    ptq = json.loads(text)
    assert ptq["fp32_test_acc"] == pytest.approx(trained["test_acc"])
    # The artefact carries the split on: its packed eval is on the run's split too.
    assert run(capsys, "export", tmp_path / "q.pt", "-o", tmp_path / "q.qgnn", "--json")[0] == 0
    code, text, err = run(capsys, "eval", tmp_path / "q.qgnn", "--json")
    assert code == 0, err
    assert json.loads(text)["test_acc"] == pytest.approx(ptq["ptq_test_acc"])


def test_eval_refuses_a_file_whose_config_misses_its_split(capsys, three_random_runs, tmp_path):
    # A file of an older qgnn: seed 2's model with the config of the whole training (seed 0, runs 3).
    from qgnn_cli.train.model_file import load_model_file, save_model

    out, metrics = three_random_runs
    model, config, extra = load_model_file(out / "runs" / "seed-2" / "model.pt")
    old = tmp_path / "old.pt"
    save_model(old, model, TrainConfig(**{**config.to_dict(), "seed": 0, "runs": 3}), extra["num_features"],
               extra["num_classes"], extra["metrics"], split=extra["split"])
    code, _, err = run(capsys, "eval", old)
    assert code == 2 and "do not give the masks it records" in err
    code, _, err = run(capsys, "quantize", old, "--bits", "4", "-o", tmp_path / "q.pt")
    assert code == 2 and "do not give the masks it records" in err
    code, text, err = run(capsys, "eval", old, "--split", "random", "--seed", "2", "--json")  # told explicitly
    assert code == 0 and json.loads(text)["test_acc"] == pytest.approx(metrics["runs"][2]["test_acc"])
