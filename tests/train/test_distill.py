"""Knowledge distillation: the loss, the teacher's split check, and that a teacher changes only the loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from qgnn_cli.errors import ConfigError
from qgnn_cli.train import TrainConfig, load_model, run_training, save_model
from qgnn_cli.train.distill import distillation_loss
from tests.nn.graphs import ring_graph
from tests.train.small_runs import GRAPH, SMALL

pytestmark = pytest.mark.usefixtures("one_thread")

STUDENT = dict(bits=2, bt="bt*", **SMALL)


def state(folder, seed=0) -> dict:
    return load_model(folder / "runs" / f"seed-{seed}" / "model.pt")[0].state_dict()


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_distillation_loss_is_the_tempered_kl_divergence(temperature):
    gen = torch.Generator().manual_seed(0)
    student = torch.log_softmax(torch.randn(7, 4, generator=gen), 1)
    teacher = torch.log_softmax(torch.randn(7, 4, generator=gen), 1)
    ps, pt = (torch.softmax(v / temperature, 1) for v in (student, teacher))
    by_hand = (pt * (pt.log() - ps.log())).sum(1).mean() * temperature ** 2
    assert torch.allclose(distillation_loss(student, teacher, temperature), by_hand, atol=1e-6)
    assert float(distillation_loss(teacher, teacher, temperature)) == pytest.approx(0.0, abs=1e-6)


def test_a_teacher_changes_the_student_and_nothing_else(tmp_path, fp32_runs):
    run_training(TrainConfig(**STUDENT), tmp_path / "plain", graph=GRAPH)
    config = TrainConfig(**STUDENT, teacher=str(fp32_runs))
    run_training(config, tmp_path / "kd", graph=GRAPH)
    for seed in (0, 1):
        assert not same_state(state(tmp_path / "kd", seed), state(tmp_path / "plain", seed))
    # At weight 0 the teacher is loaded and run but must leave the student's bits alone (random stream included).
    run_training(dataclasses.replace(config, kd_weight=0.0), tmp_path / "zero", graph=GRAPH)
    for seed in (0, 1):
        assert same_state(state(tmp_path / "zero", seed), state(tmp_path / "plain", seed))


def test_a_single_model_file_teaches_as_its_folder_does(tmp_path, fp32_runs):
    one = {**STUDENT, "runs": 1}
    run_training(TrainConfig(**one, teacher=str(fp32_runs / "runs" / "seed-0" / "model.pt")), tmp_path / "file",
                 graph=GRAPH)
    run_training(TrainConfig(**one, teacher=str(fp32_runs)), tmp_path / "folder", graph=GRAPH)
    assert same_state(state(tmp_path / "file"), state(tmp_path / "folder"))


def test_a_teacher_of_another_split_is_refused(fp32_runs):
    moved = GRAPH.with_masks(GRAPH.train_mask.roll(1), GRAPH.val_mask.roll(1), GRAPH.test_mask.roll(1))
    with pytest.raises(ConfigError, match="another split"):
        run_training(TrainConfig(**STUDENT, teacher=str(fp32_runs)), graph=moved)


def test_a_teacher_folder_without_the_seed_is_refused(fp32_runs):
    with pytest.raises(ConfigError, match="no run for seed 2"):
        run_training(TrainConfig(**{**STUDENT, "runs": 3}, teacher=str(fp32_runs)), graph=GRAPH)
    with pytest.raises(ConfigError, match="no such model file"):
        run_training(TrainConfig(**STUDENT, teacher=str(fp32_runs / "missing.pt")), graph=GRAPH)


def test_a_model_file_that_does_not_record_its_split_is_refused(tmp_path, fp32_runs):
    model, config = load_model(fp32_runs / "runs" / "seed-0" / "model.pt")
    path = tmp_path / "nosplit.pt"
    save_model(path, model, config, GRAPH.num_features, GRAPH.num_classes)
    with pytest.raises(ConfigError, match="does not record the split"):
        run_training(TrainConfig(**{**STUDENT, "runs": 1}, teacher=str(path)), graph=GRAPH)


def test_a_teacher_of_other_classes_is_refused(tmp_path):
    other = ring_graph(60, 20, features=12, classes=4)
    run_training(TrainConfig(**{**SMALL, "runs": 1}), tmp_path / "t4", graph=other)
    with pytest.raises(ConfigError, match="4 classes"):
        run_training(TrainConfig(**{**STUDENT, "runs": 1}, teacher=str(tmp_path / "t4")), graph=GRAPH)
