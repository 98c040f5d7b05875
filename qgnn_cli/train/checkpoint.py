"""Atomic checkpoints: everything a killed run needs to continue as if it had never stopped.

A checkpoint holds the model, optimizer, scheduler and torch RNG states, the next epoch, the best
validation state so far and the per-epoch history. It is written to a temporary file in the same
folder and moved over the old one with ``os.replace`` (atomic on POSIX), so a kill mid-write leaves
the previous checkpoint intact. Files are read with ``weights_only=True``: tensors and plain
containers only, no arbitrary unpickling.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from qgnn_cli.errors import ModelFileError

CHECKPOINT_FORMAT = "qgnn-checkpoint"
CHECKPOINT_VERSION = 2  # 2: as model_file.MODEL_VERSION 2


def atomic_save(obj, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, path)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise ModelFileError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a qgnn checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ModelFileError(f"{path}: checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}: "
                             "it was written by another qgnn; start the run again without --resume")
    return state
