"""Reports of an inference benchmark: a Rich table, the byte-implied ceilings, and RESULTS.md's section."""

from __future__ import annotations

import re
from pathlib import Path

from rich.table import Table

BEGIN, END = "<!-- BEGIN inference -->", "<!-- END inference -->"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def title(result: dict) -> str:
    g, m = result["graph"], result["model"]
    return (f"{m['kind']} (layers/K {m['layers']}, hidden {m['hidden']}, propagation width "
            f"{m['propagation_width']}) on {g['name']}: {g['nodes']:,} nodes, {g['entries_a_plus_i']:,} entries of A+I")


def table(result: dict) -> Table:
    t = Table(title=title(result), title_justify="left",
              caption=f"medians of {result['reps']} interleaved rounds; {result['machine']['cpu']}, "
                      f"{result['machine']['torch_threads']} threads, kernels {result['machine']['isa']}"
                      f" (GEMM {result['machine'].get('gemm_units', 'simd')})")
    columns = ["variant", "median ms", "vs fp32", "vs fp32 prealloc", "vs pyg", "gemm ms", "agg ms", "requant ms",
               "other ms", "bytes/edge", "ceiling (bytes)", "peak MB", "model KB"]
    for c in columns:
        t.add_column(c, justify="left" if c == "variant" else "right")
    for name, v in result["variants"].items():
        st = v.get("stages_s")
        t.add_row(name, _ms(v["median_s"]), _x(v.get("speedup_vs_fp32")), _x(v.get("speedup_vs_fp32_prealloc")),
                  _x(v.get("speedup_vs_pyg")),
                  *([_ms(st[k]) for k in ("gemm", "aggregation", "requant", "other")] if st else ["—"] * 4),
                  f"{v['bytes_per_edge']}", _x(v["byte_ceiling_vs_fp32"]),
                  f"{v['peak_memory_bytes'] / 2**20:,.0f}", f"{v['model_bytes'] / 1024:,.1f}")
    return t


def ceiling_lines(result: dict) -> list[str]:
    """What the bytes imply, per packed variant, in words."""
    fp = result["variants"]["fp32"]
    lines = []
    for name, v in result["variants"].items():
        if name in result["baselines"]:
            continue
        lines.append(
            f"{name}: feature bytes {v['feature_byte_ratio_vs_fp32']:.0f}x smaller "
            f"({fp['feature_bytes_per_edge']} -> {v['feature_bytes_per_edge']} B per edge), index bytes "
            f"{fp['index_bytes_per_edge']} -> {v['index_bytes_per_edge']} B: aggregation ceiling "
            f"{v['byte_ceiling_vs_fp32']:.1f}x by bytes, {v['cache_line_ceiling_vs_fp32']:.1f}x by cache lines touched "
            f"(random gathers are latency-bound); measured {v.get('speedup_vs_fp32', 0):.2f}x vs fp32, "
            f"{v.get('speedup_vs_fp32_prealloc', 0):.2f}x vs fp32_prealloc")
    return lines


def markdown(result: dict, command: str) -> str:
    m = result["machine"]
    out = [f"### {title(result)}", "",
           f"`{command}` — {m['date']}, {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
           f"kernels `{m['isa']}` (GEMM {m.get('gemm_units', 'simd')}), torch {m['torch']}; "
           f"medians of {result['reps']} interleaved rounds "
           f"after {result['warmup']} warm-up.", "",
           "| variant | median ms | vs fp32 | vs fp32_prealloc | vs pyg | gemm / agg / requant / other ms | "
           "bytes/edge | byte ceiling | peak MB | model KB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in result["variants"].items():
        st = v.get("stages_s")
        split = " / ".join(_ms(st[k]) for k in ("gemm", "aggregation", "requant", "other")) if st else "—"
        out.append(f"| {name} | {_ms(v['median_s'])} | {_x(v.get('speedup_vs_fp32'))} | "
                   f"{_x(v.get('speedup_vs_fp32_prealloc'))} | {_x(v.get('speedup_vs_pyg'))} | {split} | "
                   f"{v['bytes_per_edge']} | {_x(v['byte_ceiling_vs_fp32'])} | "
                   f"{v['peak_memory_bytes'] / 2**20:,.0f} | {v['model_bytes'] / 1024:,.1f} |")
    out += [""] + [f"- {line}" for line in ceiling_lines(result)] + [""]
    return "\n".join(out)


def read_section(path: Path) -> str:
    """What the inference section of ``path`` holds now ("" if the file or the section is missing)."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    match = re.search(re.escape(BEGIN) + r"\n?(.*?)" + re.escape(END), text, re.S)
    return match.group(1) if match else ""


def save_section(path: Path, body: str, append: bool = True) -> None:
    """Put ``body`` between the inference markers of ``path`` (created if missing); other sections untouched.

    ``append`` keeps the runs already recorded there and adds this one after them.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        pattern = re.compile(re.escape(BEGIN) + r"\n?(.*?)" + re.escape(END), re.S)
        old = pattern.search(text).group(1)
        new = (old.rstrip("\n") + "\n\n" if append and old.strip() else "") + body.strip("\n") + "\n"
        text = pattern.sub(lambda _: f"{BEGIN}\n{new}{END}", text, count=1)
    else:
        text = text.rstrip("\n") + f"\n\n## Inference speed (qgnn bench)\n\n{BEGIN}\n{body.strip()}\n{END}\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
