"""`qgnn bench` runs on a tiny synthetic graph; its JSON has every field; --device cuda fails clearly."""

from __future__ import annotations

import json

import pytest
import torch

from qgnn_cli.cli.main import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_json_has_every_field(capsys, tmp_path):
    results = tmp_path / "RESULTS.md"
    code, out, _ = run(capsys, "bench", "--synthetic", 400, "--avg-degree", 5, "--width", 16, "--depth", 2,
                       "--reps", 1, "--warmup", 0, "--no-pyg", "--json", "--save", "--results", results)
    assert code == 0
    result = json.loads(out)
    for key in ("graph", "model", "machine", "reps", "variants", "baselines", "command", "stages"):
        assert key in result
    assert set(result["variants"]) == {"fp32", "fp32_prealloc", "int8", "int4", "int2"}
    int2 = result["variants"]["int2"]
    for key in ("median_s", "speedup_vs_fp32", "speedup_vs_fp32_prealloc", "stages_s", "stage_share",
                "bytes_per_edge", "feature_bytes_per_edge", "index_bytes_per_edge", "byte_ceiling_vs_fp32",
                "cache_line_ceiling_vs_fp32", "peak_memory_bytes", "model_bytes", "model_size_ratio_vs_fp32_file"):
        assert key in int2, key
    assert "<!-- BEGIN inference -->" in results.read_text()


def test_bench_table_prints_the_ceiling(capsys):
    code, out, _ = run(capsys, "bench", "--synthetic", 300, "--width", 8, "--depth", 1, "--model", "smp",
                       "--bits", "2", "--reps", 1, "--warmup", 0, "--no-pyg")
    assert code == 0 and "ceiling" in out and "int2" in out


@pytest.mark.parametrize("argv,match", [
    (["--device", "cuda", "--synthetic", 1000], "CUDA"),
    (["--synthetic", 100, "--dataset", "cora"], "exactly one"),
    (["--synthetic", 100, "--bits", "3"], "--bits"),
    (["--synthetic", 100, "--model", "gat"], "unknown model"),
])
def test_bench_user_errors_are_one_line(capsys, argv, match):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    code, _, err = run(capsys, "bench", *argv)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
