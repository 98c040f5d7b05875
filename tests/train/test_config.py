"""TrainConfig: per-bit-width defaults, TOML, and clear errors for bad values."""

from __future__ import annotations

import pytest

from qgnn_cli.errors import ConfigError
from qgnn_cli.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_paper_defaults_per_bit_width():
    assert TrainConfig().resolved().dropout == 0.8 and TrainConfig().resolved().alpha_th == 0.1
    assert TrainConfig(bits=4).resolved().dropout == 0.5
    assert TrainConfig(bits=8).resolved().alpha_th == 1e-5
    assert TrainConfig(bits=2).resolved().alpha_th == 1e-4
    assert TrainConfig(bits=2, bt="bt").resolved().alpha_th == 0.2
    assert TrainConfig(bits=2, bt="bt*").resolved().alpha_th == 0.01
    assert TrainConfig(bits=2, alpha_th=0.3).resolved().alpha_th == 0.3


@pytest.mark.parametrize("values,message", [
    ({"bits": 3}, "unsupported bits 3"),
    ({"layers": 0}, "layers must be positive"),
    ({"layers": -2}, "layers must be positive"),
    ({"bt": "bt*"}, "needs --bits 2"),
    ({"model": "gat"}, "unknown model"),
    ({"site_bits": {"weights": 4}}, "unknown site group"),
    ({"site_bits": {"weight": 5}}, "unsupported bits 5"),
    ({"split": "full"}, "unknown --split"),
    ({"dropout": 1.0}, "dropout"),
    ({"epochs": "ten"}, "epochs must be an integer"),
    ({"learning_rate": 0.1}, "unknown configuration key"),
    ({"kd_temperature": 0.0}, "kd_temperature must be positive"),
    ({"kd_weight": -1.0}, "kd_weight must be non-negative"),
    ({"teacher": 3}, "teacher must be a path"),
    ({"eval_ranges": "batch"}, "unknown --eval-ranges"),
])
def test_bad_values_raise_config_error(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


def test_toml_with_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('dataset = "cora"\nbits = 2\nbt = "bt*"\nlayers = 32\n[site_bits]\nweight = 4\n')
    config = TrainConfig.from_toml(path, {"layers": 64})
    assert (config.bits, config.bt, config.layers, config.site_bits) == (2, "bt*", 64, {"weight": 4})
    bad = tmp_path / "bad.toml"
    bad.write_text("bits = = 2")
    with pytest.raises(ConfigError, match="bad.toml"):
        TrainConfig.from_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_toml(tmp_path / "missing.toml")
