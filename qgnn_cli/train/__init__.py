"""Training: the config (TOML), the full-batch loop with atomic checkpoints and resume, the model file."""

from qgnn_cli.train.config import BITS, SPLITS, TrainConfig
from qgnn_cli.train.loop import load_dataset, node_features, run_training, split_for_run, train_model, trained_split
from qgnn_cli.train.model_file import MODEL_FORMAT, MODEL_VERSION, load_model, model_from_config, save_model

__all__ = [
    "BITS", "MODEL_FORMAT", "MODEL_VERSION", "SPLITS", "TrainConfig", "load_dataset", "load_model",
    "model_from_config", "node_features", "run_training", "save_model", "split_for_run", "train_model", "trained_split",
]
