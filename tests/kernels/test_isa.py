"""Run-time choice of the CPU kernel path: detection, override, and every op compiled for CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels.library import ISAS

OPS = ("pack", "unpack", "quantize_pack", "spmm", "spmm_requant", "gemm", "gemm_requant", "gather_floor")


def test_extension_and_generic_path_available():
    assert kernels.extension_available(), "the C++ extension did not build; see README.md"
    assert "generic" in kernels.supported_isas()
    assert kernels.selected_isa() in kernels.supported_isas()


@pytest.mark.parametrize("op", OPS)
def test_every_op_has_a_compiled_cpu_kernel(op):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"qgnn::{op}", "CPU")


def test_features_agree_with_supported_paths():
    features = kernels.cpu_features()
    supported = kernels.supported_isas()
    assert ("avx512" in supported) == all(features[f] for f in ("avx512f", "avx512bw", "avx512vl", "avx512vnni", "bmi2"))
    assert ("avx2" in supported) == all(features[f] for f in ("avx2", "fma", "bmi2"))


def test_amx_needs_the_cpu_and_can_be_turned_off(monkeypatch):
    features = kernels.cpu_features()
    if not (features["amx-tile"] and features["amx-int8"]):
        assert not kernels.amx_enabled()
    monkeypatch.setenv("QGNN_AMX", "0")
    assert not kernels.amx_enabled()


@pytest.mark.parametrize("isa", kernels.supported_isas())
def test_use_isa_forces_and_restores(isa):
    before = kernels.selected_isa()
    with kernels.use_isa(isa):
        assert kernels.selected_isa() == isa
    assert kernels.selected_isa() == before


def test_unknown_or_unsupported_isa_raises():
    with pytest.raises(ValueError, match="unknown ISA"):
        kernels.set_isa("sse9")
    for isa in ISAS:
        if isa not in kernels.supported_isas():
            with pytest.raises(ValueError, match="not supported"):
                kernels.set_isa(isa)


def test_environment_override_is_applied_at_load():
    env = dict(os.environ, QGNN_ISA="generic")
    code = "from qgnn_cli import kernels; print(kernels.selected_isa())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "generic"
