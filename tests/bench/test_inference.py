"""The inference benchmark on a tiny synthetic graph: every variant, every field, sane ratios."""

from __future__ import annotations

import pytest

from qgnn_cli.bench.inference import MAX_LAMBDA_STEP, BenchSpec, bench_alpha_th, bytes_per_edge, run_inference_bench
from qgnn_cli.bench.report import BEGIN, END, markdown, save_section
from qgnn_cli.data import synthetic_power_law
from qgnn_cli.train import TrainConfig
from tests.conftest import requires_pyg


@pytest.fixture(scope="module")
def graph():
    return synthetic_power_law(300, 6, 24, 5, seed=1)


@pytest.mark.parametrize("model", ["gcn", "smp"])
def test_every_variant_is_timed_with_every_field(graph, model):
    result = run_inference_bench(graph, BenchSpec(model=model, layers=2, hidden=24, reps=1, warmup=0, pyg=False),
                                 normalize_features=False)
    variants = result["variants"]
    assert list(variants) == ["fp32", "fp32_prealloc", "int8", "int4", "int2"]
    for name, v in variants.items():
        for key in ("median_s", "speedup_vs_fp32", "speedup_vs_fp32_prealloc", "bytes_per_edge",
                    "byte_ceiling_vs_fp32", "cache_line_ceiling_vs_fp32", "peak_memory_bytes", "model_bytes"):
            assert key in v, (name, key)
        assert v["median_s"] > 0
    assert variants["fp32"]["speedup_vs_fp32"] == 1.0
    for bits in (8, 4, 2):
        st = variants[f"int{bits}"]["stages_s"]
        assert set(st) == {"gemm", "aggregation", "requant", "other"} and st["aggregation"] > 0
    assert variants["int2"]["model_bytes"] < variants["int8"]["model_bytes"] < variants["fp32"]["model_bytes"]


@requires_pyg
def test_pyg_variant_and_its_ratio(graph):
    result = run_inference_bench(graph, BenchSpec(model="gcn", layers=1, hidden=16, bits=(2,), reps=1, warmup=0),
                                 normalize_features=False)
    assert "pyg" in result["variants"] and "speedup_vs_pyg" in result["variants"]["int2"]


def test_bytes_per_edge_and_ceiling():
    fp, int2 = bytes_per_edge(128, None), bytes_per_edge(128, 2)
    assert fp["feature_bytes_per_edge"] == 512 and int2["feature_bytes_per_edge"] == 32
    assert fp["index_bytes_per_edge"] == 8 and int2["index_bytes_per_edge"] == 4
    assert bytes_per_edge(16, 2)["cache_lines_per_edge"] == bytes_per_edge(16, None)["cache_lines_per_edge"] == 1


def test_save_section_keeps_other_sections(graph, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n## Accuracy\n\nother developer's table\n")
    result = run_inference_bench(graph, BenchSpec(layers=1, hidden=8, bits=(2,), reps=1, warmup=0, pyg=False),
                                 normalize_features=False)
    save_section(path, markdown(result, "qgnn bench --synthetic 300"))
    save_section(path, markdown(result, "qgnn bench --synthetic 301"))
    text = path.read_text()
    assert "other developer's table" in text and text.count(BEGIN) == 1 and text.count(END) == 1
    assert "--synthetic 300" in text and "--synthetic 301" in text
    save_section(path, "fresh", append=False)
    text = path.read_text()
    assert "other developer's table" in text and "--synthetic 300" not in text and "fresh" in text


def test_smp_alpha_th_caps_the_multiplier_growth_on_large_graphs():
    config = TrainConfig(model="smp", bits=32).validated()
    assert bench_alpha_th(config, 13_264) == 0.1 and bench_alpha_th(config, 108_365) == 0.1  # Cora, PubMed
    big = bench_alpha_th(config, 22_000_000)
    assert big < 0.1 and big * config.eta_lambda * 22_000_000 == pytest.approx(MAX_LAMBDA_STEP)
