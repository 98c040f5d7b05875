"""The training configuration: one dataclass, loadable from TOML, with the paper's per-bit-width defaults.

Fields left ``None`` take the defaults of METHOD.md §5 for the chosen bit width and truncation mode
when :meth:`TrainConfig.resolved` is called (dropout 0.8 in FP32, 0.5 quantized; alpha_th 0.1 FP32,
1e-5 INT8/INT4, 1e-4 INT2, 0.2 INT2-BT, 0.01 INT2-BT*).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from qgnn_cli.errors import ConfigError
from qgnn_cli.nn import GRAD_MODES, MODELS, PROP_MODES, SITE_GROUPS
from qgnn_cli.quant import BT_MODES, EVAL_RANGES

BITS = (32, 8, 4, 2, 1)
SPLITS = ("public", "random")


@dataclass
class TrainConfig:
    dataset: str = "cora"
    data_root: str | None = None
    model: str = "smp"
    prop: str = "smp"  # smp | appnp (the ablation without the constraint); smp model only
    smp_grad: str = "authors"  # authors (A_hat dX) | exact (L dX)
    constraint: bool = True  # gcn model: the per-layer energy bound as a Lagrangian term
    bits: int = 32
    site_bits: dict[str, int] = field(default_factory=dict)  # per-group overrides, see nn/sites.py
    bt: str = "none"
    layers: int = 10
    hidden: int = 64
    epochs: int = 200
    lr: float = 0.01
    # Not the paper's 1e-4: with the corrected LSQ gradient alpha can follow the loss, but at 1e-4 it barely
    # moves and INT2 collapses on some seeds; 1e-3 beat 0.01 at 8, 4 and 2 bits (benchmarks/RESULTS.md).
    lr_alpha: float = 1e-3
    weight_decay: float = 5e-5
    lr_step: int = 50
    lr_gamma: float = 0.7
    dropout: float | None = None
    alpha_th: float | None = None
    eta_lambda: float = 1e-5
    mu: float = 9.0
    eta: float = 0.1
    eta_s: float = 1e-5
    lambda_init: float = 1e-3
    s_init: float = 1e-3
    gcn_lambda_lr: float = 0.01
    normalize_features: bool = True
    # Frozen ranges: "clean" re-takes them at every epoch's evaluation from the dropout-free forward
    # (quant/calibrate.py); "ema" keeps the moving average of the training batches (METHOD.md §2).
    eval_ranges: str = "clean"
    # Knowledge distillation (train/distill.py): a trained run (its folder or a model.pt) of the same
    # split whose class probabilities on every node are a second target, weighted by kd_weight.
    teacher: str | None = None
    # Warm start (train/source_run.py): a trained run (its folder or a model.pt) of the same split and
    # model shape whose weights this run starts from, e.g. QAT from the FP32 run of the seed.
    init_from: str | None = None
    kd_weight: float = 1.0
    kd_temperature: float = 1.0
    split: str = "public"
    seed: int = 0
    runs: int = 1
    checkpoint_every: int = 10

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        clean = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(clean) - names)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        config = cls(**clean)
        config.site_bits = dict(config.site_bits)
        return config.validated()

    @classmethod
    def from_toml(cls, path: str | Path, overrides: dict | None = None) -> "TrainConfig":
        """Read ``path`` (all keys at top level, ``[site_bits]`` as a table); ``overrides`` win."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        return cls.from_dict({**data, **(overrides or {})})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # -- defaults and checks -------------------------------------------------------------------------
    @property
    def quantized(self) -> bool:
        return self.bits != 32 or any(b != 32 for b in self.site_bits.values())

    def default_alpha_th(self) -> float:
        if self.bits == 32:
            return 0.1
        if self.bits == 2:
            return {"none": 1e-4, "bt": 0.2, "bt*": 0.01}[self.bt]
        return 1e-4 if self.bits == 1 else 1e-5

    def resolved(self) -> "TrainConfig":
        """A copy with every ``None`` replaced by the paper's default for this bit width."""
        return dataclasses.replace(
            self,
            dropout=self.dropout if self.dropout is not None else (0.5 if self.quantized else 0.8),
            alpha_th=self.alpha_th if self.alpha_th is not None else self.default_alpha_th(),
            site_bits=dict(self.site_bits),
        )

    def validated(self) -> "TrainConfig":
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        for name in ("bits", "layers", "hidden", "epochs", "lr_step", "seed", "runs", "checkpoint_every"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool), f"{name} must be an integer, got {value!r}")
        need(self.bits in BITS, f"unsupported bits {self.bits}: expected one of {BITS}")
        need(self.bt in BT_MODES, f"unknown --bt {self.bt!r}: expected one of {BT_MODES}")
        need(self.bt == "none" or self.bits == 2, f"--bt {self.bt} needs --bits 2 (got {self.bits})")
        need(isinstance(self.site_bits, dict), "site_bits must be a table of group = bits")
        for group, bits in self.site_bits.items():
            need(group in SITE_GROUPS, f"unknown site group {group!r}: expected one of {SITE_GROUPS}")
            need(bits in BITS, f"unsupported bits {bits} for site group {group!r}: expected one of {BITS}")
        need(self.model in MODELS, f"unknown model {self.model!r}: expected one of {MODELS}")
        need(self.prop in PROP_MODES, f"unknown --prop {self.prop!r}: expected one of {PROP_MODES}")
        need(self.smp_grad in GRAD_MODES, f"unknown --smp-grad {self.smp_grad!r}: expected one of {GRAD_MODES}")
        need(self.eval_ranges in EVAL_RANGES,
             f"unknown --eval-ranges {self.eval_ranges!r}: expected one of {EVAL_RANGES}")
        need(self.split in SPLITS, f"unknown --split {self.split!r}: expected one of {SPLITS}")
        need(self.layers > 0, f"layers must be positive, got {self.layers}")
        need(self.hidden > 0, f"hidden must be positive, got {self.hidden}")
        need(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        need(self.runs > 0, f"runs must be positive, got {self.runs}")
        need(self.lr_step > 0 and self.checkpoint_every > 0, "lr_step and checkpoint_every must be positive")
        need(self.dropout is None or 0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("lr", "lr_alpha", "weight_decay", "eta_lambda", "eta", "eta_s", "gcn_lambda_lr", "kd_weight"):
            need(float(getattr(self, name)) >= 0.0, f"{name} must be non-negative")
        need(self.alpha_th is None or self.alpha_th >= 0.0, "alpha_th must be non-negative")
        need(self.teacher is None or isinstance(self.teacher, str), "teacher must be a path (a training folder or model.pt)")
        need(self.init_from is None or isinstance(self.init_from, str),
             "init_from must be a path (a training folder or model.pt)")
        need(float(self.kd_temperature) > 0.0, f"kd_temperature must be positive, got {self.kd_temperature}")
        return self
