"""`qgnn train` end to end on the embedded Cora, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from qgnn_cli.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")



def test_train_on_embedded_cora_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "cora", "--bits", "4", "--epochs", "3", "--layers", "3", "--hidden", "16",
                 "--checkpoint-every", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "mean ± std" in captured.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["bits"] == 4 and metrics["dataset"]["nodes"] == 2708
    assert len(metrics["runs"][0]) and (out / "model.pt").is_file()
    assert (out / "runs" / "seed-0" / "checkpoint.pt").is_file()
    # Resuming a finished run reads it back and trains nothing.
    assert main(["train", "cora", "--bits", "4", "--epochs", "3", "--layers", "3", "--hidden", "16",
                 "--checkpoint-every", "2", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["runs"] == metrics["runs"]


def test_raw_features_and_eval_ranges_flags_reach_the_config(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "cora", "--bits", "2", "--epochs", "1", "--layers", "2", "--hidden", "8",
                 "--raw-features", "--eval-ranges", "ema", "--out", str(out)]) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["normalize_features"] is False and config["eval_ranges"] == "ema"


def test_toml_config(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('dataset = "cora"\nbits = 2\nbt = "bt*"\nepochs = 2\nlayers = 2\nhidden = 8\n')
    assert main(["train", "--config", str(config), "--epochs", "1"]) == 0
    assert "bits 2 (bt*)" in capsys.readouterr().out


def test_teacher_and_init_from_flags_take_a_training_folder(tmp_path, capsys):
    small = ["--epochs", "2", "--layers", "2", "--hidden", "8"]
    assert main(["train", "cora", *small, "--out", str(tmp_path / "fp32")]) == 0
    out = tmp_path / "int2"
    assert main(["train", "cora", "--bits", "2", *small, "--teacher", str(tmp_path / "fp32"),
                 "--kd-temperature", "2", "--out", str(out)]) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["teacher"] == str(tmp_path / "fp32") and config["kd_temperature"] == 2.0
    capsys.readouterr()
    assert main(["train", "cora", "--bits", "2", *small, "--seed", "1", "--teacher", str(tmp_path / "fp32")]) == 2
    warm = tmp_path / "warm"
    assert main(["train", "cora", "--bits", "2", *small, "--init-from", str(tmp_path / "fp32"), "--out", str(warm)]) == 0
    assert json.loads((warm / "metrics.json").read_text())["config"]["init_from"] == str(tmp_path / "fp32")
    err = capsys.readouterr().err
    assert "no run for seed 1" in err and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--bits", "3"], "unsupported bits 3"),
    (["--layers", "0"], "layers must be positive"),
    (["--bits", "4", "--bt", "bt*"], "needs --bits 2"),
    (["--site-bits", "weight"], "GROUP=BITS"),
    (["--resume"], "--resume needs --out"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--eval-ranges", "train"], "unknown --eval-ranges"),
])
def test_bad_options_exit_2_with_one_line(args, message, capsys):
    assert main(["train", "cora", "--epochs", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_dataset_without_labels_exits_2(tmp_path, capsys):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, edges=np.array([[0, 1], [1, 2]]), features=np.eye(3, dtype=np.float32))
    assert main(["train", str(path), "--epochs", "1"]) == 2
    assert "label" in capsys.readouterr().err


_RUN_IN_FRESH_PROCESS = """
import sys
junk = [bytearray(1000 + i) for i in range(int(sys.argv[1]))]  # a different heap layout per process
from qgnn_cli.cli.main import main
sys.exit(main(["train", "cora", "--bits", "2", "--bt", "bt*", "--epochs", "3", "--layers", "3",
               "--hidden", "16", "--threads", "1", "--out", sys.argv[2]]))
"""


def test_one_thread_reruns_are_bit_identical_across_processes(tmp_path):
    # With two threads, some torch ops' sums depend on memory layout: the same run trained different
    # mlp.lin1 weights in processes that allocated differently before training. One thread must not.
    from qgnn_cli.train.model_file import load_model

    states = []
    for junk in (0, 333):
        out = tmp_path / f"run{junk}"
        subprocess.run([sys.executable, "-c", _RUN_IN_FRESH_PROCESS, str(junk), str(out)], check=True,
                       capture_output=True, timeout=300)
        states.append(load_model(out / "model.pt")[0].state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
