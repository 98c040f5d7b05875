"""Every command's --help says what each option does, and `qgnn train` states the library's defaults."""

from __future__ import annotations

import re

from typer.main import get_command

from qgnn_cli.cli.main import app
from qgnn_cli.train import TrainConfig


def _commands(group, ctx=None, path=()):
    ctx = ctx or get_command(app).make_context("qgnn", [], resilient_parsing=True)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            yield from _commands(command, ctx, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_option_of_every_command_has_help():
    commands = dict(_commands(get_command(app)))
    assert {"train", "export", "eval", "bench"} <= set(commands)
    missing = {name: [p.name for p in c.params if not (getattr(p, "help", None) or "").strip()]
               for name, c in commands.items()}
    assert not {name: m for name, m in missing.items() if m}


def _help_of(option: str) -> str:
    train = dict(_commands(get_command(app)))["train"]
    return next(p.help for p in train.params if option in getattr(p, "opts", ()))


def test_train_help_states_the_per_bit_width_defaults_the_config_resolves():
    def resolved(**kw) -> TrainConfig:
        return TrainConfig.from_dict(kw).resolved()

    dropout = _help_of("--dropout")
    assert f"{resolved(bits=32).dropout} FP32" in dropout and f"{resolved(bits=2).dropout} quantized" in dropout
    alpha_th = [float(v) for v in re.findall(r"(\d+(?:\.\d+)?(?:e-\d+)?) (?:FP32|INT8|INT2|BT\b|BT\*)",
                                            _help_of("--alpha-th"))]
    assert alpha_th == [resolved(bits=b, bt=t).alpha_th for b, t in
                        ((32, "none"), (8, "none"), (2, "none"), (2, "bt"), (2, "bt*"))]
    assert f"default {TrainConfig.epochs}" in _help_of("--epochs")
