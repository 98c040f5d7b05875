"""The CUDA benchmark: a clear error where it cannot run; on a GPU, a small run end to end."""

from __future__ import annotations

import pytest
import torch

from qgnn_cli.bench.cuda import bench_cuda_spmm, cuda_unavailable_reason, results_markdown
from qgnn_cli.errors import QgnnError
from tests.conftest import HAS_CUDA, requires_cuda


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_without_a_gpu_it_raises_a_clear_error():
    assert "CUDA GPU" in cuda_unavailable_reason()
    with pytest.raises(QgnnError, match="needs a CUDA GPU"):
        bench_cuda_spmm(1000, 5.0, 16, (2,), 1)


def test_markdown_names_device_baselines_and_checks():
    result = {
        "device": "Some GPU", "capability": "sm_90", "torch": "2.11", "cuda": "12.8", "reps": 3,
        "graph": {"nodes": 10, "edges": 20, "max_degree": 5, "feats": 8, "generator": "g"},
        "timings": {"fp32_sparse_mm": {"median_ms": 4.0, "min_ms": 3.0, "max_ms": 5.0},
                    "int2_spmm": {"median_ms": 1.0, "min_ms": 0.9, "max_ms": 1.1}},
        "speedup_vs_sparse_mm": {"int2_spmm": 4.0}, "speedup_vs_addmm_prealloc": {},
        "copy_gbps": 2000.0, "checked_against_reference": {"int2_spmm": True}, "notes": [],
    }
    text = results_markdown(result)
    assert "Some GPU (sm_90)" in text and "| int2_spmm | 1.00 (0.90-1.10) | 4.0x |" in text
    assert "int2_spmm: bit-exact" in text


@requires_cuda
def test_small_run_on_a_gpu():
    result = bench_cuda_spmm(20_000, 8.0, 64, (2, 4), reps=2, warmup=1)
    assert all(result["checked_against_reference"].values())
    assert {"fp32_sparse_mm", "int2_spmm", "int4_spmm_requant", "copy"} <= set(result["timings"])
    assert result["graph"]["edges"] > 0 and result["device"] == torch.cuda.get_device_name()
