"""Accuracy benchmark: datasets x bit widths x depths x seeds, written to benchmarks/RESULTS.md.

    python benchmarks/accuracy.py --jobs 2                       # the full grid (hours on 2 cores)
    python benchmarks/accuracy.py --datasets cora --layers 10    # a slice
    python benchmarks/accuracy.py --render-only                  # rebuild the table from the log

Every finished run (one seed of one cell) is appended to a JSON-lines log as soon as it ends, so an
interrupted benchmark keeps its results and a rerun skips what is done. Each worker process trains
with one torch thread (the runs are independent; several single-threaded processes use the cores
better than one multi-threaded one on small graphs). The RESULTS.md section between the
``<!-- BEGIN accuracy -->`` / ``<!-- END accuracy -->`` markers is rewritten from the log; the rest of
the file is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
LOG = HERE / "results" / "accuracy.jsonl"
BEGIN, END = "<!-- BEGIN accuracy -->", "<!-- END accuracy -->"

# Bit-width configurations: TrainConfig fields. The paper's per-config defaults (dropout, alpha_th)
# come from TrainConfig.resolved(); anything set here on top of them is a deviation, listed in RESULTS.md.
# The one tuned deviation: the range multipliers learn at 1e-3 instead of the paper's 1e-4 (the library
# default). With the corrected LSQ gradient alpha can follow the loss; at 1e-4 it barely moves and INT2
# collapses on some seeds (Cora INT2-BT* seed 1: 11.3 %), and 0.01 overshoots (see RESULTS.md).
TUNED = {"lr_alpha": 1e-3}
CONFIGS = {
    "FP32": {"bits": 32},
    "INT8": {"bits": 8, **TUNED},
    "INT4": {"bits": 4, **TUNED},
    "INT2": {"bits": 2, **TUNED},
    "INT2-BT": {"bits": 2, "bt": "bt", **TUNED},
    "INT2-BT*": {"bits": 2, "bt": "bt*", **TUNED},
}
DEFAULT_CONFIGS = ("FP32", "INT8", "INT4", "INT2", "INT2-BT*")
# The deep weighted stack, plain vs. constrained (beyond the paper), shown for contrast.
GCN_VARIANTS = {"GCN (plain)": {"model": "gcn", "constraint": False},
                "GCN + energy bound": {"model": "gcn", "constraint": True}}
# Ablations of the propagation (METHOD.md §4): the exact constraint gradient (L dX) and no constraint at all.
ABLATIONS = {"SMP, exact gradient": {"smp_grad": "exact"}, "APPNP (no constraint)": {"prop": "appnp"}}
TARGETS = {"FP32": 82.8, "INT8": 82.1, "INT4": 81.0, "INT2-BT*": 77.8}


def cell_key(row: dict) -> tuple:
    return (row["dataset"], row["variant"], row["config"], row["layers"], row["seed"])


def run_one(task: dict) -> dict:
    """Train one seed of one cell in this (worker) process; returns the log row."""
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")
    from qgnn_cli.train import TrainConfig, run_training

    fields = {**CONFIGS[task["config"]], **task["overrides"], "dataset": task["dataset"],
              "data_root": task["data_root"], "layers": task["layers"], "seed": task["seed"],
              "split": task["split"], "epochs": task["epochs"], "runs": 1}
    start = time.perf_counter()
    metrics = run_training(TrainConfig.from_dict(fields))
    run = metrics["runs"][0]
    return {**{k: task[k] for k in ("dataset", "variant", "config", "layers", "seed", "split", "epochs")},
            "overrides": task["overrides"], "test_acc": run["test_acc"], "best_val_acc": run["best_val_acc"],
            "best_epoch": run["best_epoch"], "epoch_time_s": run["epoch_time_s"],
            "diverged_epoch": run["diverged_epoch"],
            "wall_s": time.perf_counter() - start}


def timing_path(log: Path) -> Path:
    return log.with_name(log.stem + "-timing.json")


def read_timing(log: Path) -> dict:
    path = timing_path(log)
    return json.loads(path.read_text()) if path.exists() else {}


def read_log(path: Path) -> list[dict]:
    """The logged runs, one per cell and seed (a run logged twice, by overlapping invocations, counts once)."""
    if not path.exists():
        return []
    rows: dict = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows.setdefault(cell_key(row), row)
    return list(rows.values())


def time_epochs(dataset: str, data_root: str, layers: int, configs: list[str], steps: int = 15) -> dict:
    """Median training-step time per config, the configs interleaved step by step in this process
    (one thread), so that load from other jobs hits them alike. Returns {config: seconds}."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    from qgnn_cli.nn import GraphOperator, maybe_sparse
    from qgnn_cli.train import TrainConfig, load_dataset, model_from_config, node_features

    base = TrainConfig(dataset=dataset, data_root=data_root, layers=layers)
    graph = load_dataset(base)
    op = GraphOperator.from_adj(graph.adj)
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool)
    mask[: graph.num_nodes // 10] = True
    setups = {}
    for name in configs:
        config = TrainConfig.from_dict({**base.to_dict(), **CONFIGS[name]}).resolved()
        model = model_from_config(config, graph.num_features, graph.num_classes)
        setups[name] = (model, torch.optim.Adam(model.parameters(), lr=0.01), maybe_sparse(node_features(graph, config)))
    times: dict = {name: [] for name in configs}
    for step in range(steps + 1):
        for name, (model, opt, x) in setups.items():
            start = time.perf_counter()
            model.train()
            opt.zero_grad()
            F.nll_loss(model(x, op)[mask], graph.y[mask]).backward()
            opt.step()
            if step:  # the first step also searches the quantizers' ranges
                times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


# -- the table -------------------------------------------------------------------------------------
def _stats(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return mean, std


def _cells(rows: list[dict]) -> dict:
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["variant"], r["config"], r["layers"]), []).append(r)
    return cells


def render_timing(timing: dict) -> list[str]:
    if not timing:
        return []
    configs = list(dict.fromkeys(c for t in timing.values() for c in t))
    out = ["### Epoch time, FP32 vs quantized", "",
           "Median training step (forward + backward + Adam), the configurations interleaved step by step in"
           " one single-threaded process so that load from other jobs hits them alike (the absolute times"
           " move with that load: compare within a row). The Cora rows were measured after the last speed"
           " change, the CiteSeer/PubMed rows before it. On small graphs a quantized step is dominated by"
           " per-op dispatch (five sites per propagation step, ~20 small ops each), which is why deep Cora"
           " misses the 2x target; on PubMed the arithmetic dominates and it is met.", "",
           "| dataset | K | " + " | ".join(configs) + " | worst quantized / FP32 |", "|---|---|" + "---|" * (len(configs) + 1)]
    for key, t in timing.items():
        dataset, layers = key.split("/")
        ratio = max(v for c, v in t.items() if c != "FP32") / t["FP32"]
        out.append(f"| {dataset} | {layers} | " + " | ".join(f"{1000 * t[c]:.1f} ms" if c in t else "-" for c in configs)
                   + f" | {ratio:.2f}x |")
    return out + [""]


SETUP = """\
Protocol: the paper's model (2-layer quantized MLP, hidden 64, then K SMP steps), random splits
(20 labelled nodes per class, 500 validation, 1000 test, re-drawn for every seed, the kind of split of
the authors' logged runs), 200 full-batch epochs, Adam (lr 0.01 x0.7 every 50 epochs, weight decay
5e-5), dropout 0.8 FP32 / 0.5 quantized, alpha_th per config as in METHOD.md §5 (0.1 FP32, 1e-5
INT8/INT4, 1e-4 INT2, 0.01 INT2-BT*), eta_lambda 1e-5, mu 9, eta 0.1, row-normalised features.

Deviations from the paper's settings, each measured or forced by the packed runtime:

- **alpha learning rate 0.01** (paper 1e-4) for every quantized config. With the corrected LSQ
  gradient alpha can follow the loss, but at 1e-4 Adam moves it at most 0.02 in 200 epochs: Cora INT2
  (seed 0) reached 40.8 % and INT2-BT* (seed 1) 11.3 %, against 76.5 % and 72.9 % at 0.01.
- **Training-time range from the current batch** (alpha x batch min/max); the running min/max is an
  EMA (momentum 0.1) frozen for eval. A lagging EMA range in training clipped the growing logits and,
  through the masked STE, cut their gradient: Cora INT4 trained to 15.5 % (2 seeds) vs 79.6 %.
- **ReLU before lin1's output quantizer** (fused, as an integer kernel would): at 2 bits a ReLU
  output then gets three positive levels instead of one; Cora INT2 (seed 0, alpha lr 1e-4) went from
  7.6 % to 40.8 %. **Dropout after the input quantizers**, so the frozen ranges fit the eval-time
  tensors (no measurable change on its own: INT8 seed 0, 81.2 % vs 80.9 %).
- **The last step's update site is not quantized**: it is the model's output, returned in float by the
  packed runtime; quantized, every class score takes one of four values at 2 bits and the arg-max
  ties (Cora INT2-BT*, seed 0: 68.9 % -> 75.3 %).
- **Source rows are quantized instead of per-edge messages** (METHOD.md §2: what the packed SpMM runs).
- Fewer seeds than 5 where the table says so (n), and not every depth x config cell: the whole grid
  did not fit in the hour of a 2-core machine shared with three other developers' jobs.

Between the Cora K=10 cells and the later ones the training-time range arithmetic moved from float32
tensors to python floats (a speed change, commit "QLR: scalar range arithmetic in python during
training"): the same method, with float rounding that differs in the last bits during training.
"""


SUMMARY = """\
**Summary.** None of the Cora K=10 targets is met: FP32 81.9, INT8 80.7, INT4 79.9, INT2-BT* 71.1 on
random splits (the authors' single run: 82.8 / 82.1 / 81.0 / 77.8; their released code re-run on the
public split, METHOD.md §6: 82.7 / 83.3 / 79.8 / 76.7-77.0). Depth holds for FP32 (81.9 -> 81.4 at
K=32 and K=64) and for INT2-BT* on average (71.1 -> 69.0 -> 71.5), but plain INT2 is unstable (one
seed in five collapses at K=10 and one in three at K=64). The smoothness constraint earns its keep at
2 bits: APPNP (no constraint) 67.4 vs SMP 71.1 (authors' gradient) / 71.5 (exact gradient) for
INT2-BT*; at FP32 the three are within a point. Against FP32 - 2: PubMed INT2-BT* 74.4 vs 78.2
(2 seeds: one within a point, one 7 below), INT2 64.0; CiteSeer 2-bit fails to train (see below).
The goal "INT2 within 2 pts of FP32 on all three datasets" is not reached.
"""

FINDINGS = """\
**2 bits on CiteSeer does not train reliably.** Diagnosis run (CiteSeer, INT2-BT*, seed 0, the
benchmark's settings, `qgnn train`-equivalent): the loss stays at ln 6 from the first epoch to the last;
the multiplier stays small and positive (1e-3 -> 1.3e-2 over the 10 steps) and the change energy is
~1e-4: the propagated signal is flat. The gradient has to pass ~50 two-bit sites, each masking
whatever its (alpha x batch) range clips, and here it dies before alpha can widen the ranges. With
`--smp-grad exact` the same run starts learning around epoch 60 (55.4 % at best validation) but then
the change energy reaches 1e4 and the multiplier turns negative (-0.9 by step 10) and the loss
diverges. INT2 also lost a Cora seed (51.8 %) the same way. The fix to try next is an initial range
that clips less at 2 bits (alpha searched for the gradient, not only for |Q(x) - x|) and a
non-negative or clipped multiplier; we ran out of time to measure either.
"""

GCN_NOTES = """\
**Deep GCN with the energy bound (beyond the paper).** The bound tr(dX_l^T L dX_l) <= alpha_th |E|
caps how rough each layer's *change* may be. A plain deep GCN fails the other way: at initialisation
the change energy per entry is 3e-4 at layer 0 and below 1e-5 from layer 4 on (Cora, 32 layers): the
signal is smoothed away and vanishes, and no upper bound is ever violated. The multipliers therefore
stay at 0 and the bounded stack trains exactly like the plain one (identical numbers in the table).
So at 32/64 layers it does **not** beat a plain deep GCN; the SMP model, whose depth is weight-free
propagation anchored to H at every step, is the one that keeps its accuracy. A lower bound on the
energy (as in EGNN) or residual connections would be the thing to try next.
"""


# How the committed table was produced: these invocations, in this order, each skipping what the log holds.
RUN_SEQUENCE = """\
python benchmarks/accuracy.py --jobs 2 --datasets cora --layers 10 --seeds 5
python benchmarks/accuracy.py --jobs 2 --datasets cora,citeseer,pubmed --layers 10 --seeds 0 --timing --timing-configs FP32,INT8,INT4,INT2-BT*
python benchmarks/accuracy.py --jobs 2 --datasets cora --layers 64 --seeds 0 --timing --timing-configs FP32,INT2-BT*
python benchmarks/accuracy.py --jobs 2 --datasets cora --layers 32,64 --seeds 3 --configs FP32,INT2-BT*
python benchmarks/accuracy.py --jobs 2 --datasets citeseer --layers 10 --seeds 3
python benchmarks/accuracy.py --jobs 2 --datasets cora --layers 32,64 --seeds 2 --configs FP32 --gcn --gcn-configs FP32
python benchmarks/accuracy.py --jobs 2 --datasets pubmed --layers 10 --seeds 3 --configs FP32,INT2-BT*,INT2   # crashed after FP32 seed 0 (NaN weights; fixed since: a diverging run now stops)
python benchmarks/accuracy.py --jobs 2 --datasets cora --layers 10 --seeds 2 --configs FP32 --ablation --gcn-configs FP32,INT2-BT*
python benchmarks/accuracy.py --jobs 2 --datasets cora --layers 32,64 --seeds 3 --configs INT2
python benchmarks/accuracy.py --jobs 2 --datasets pubmed --layers 10 --seeds 2 --configs FP32,INT2-BT*,INT2
"""
SEQUENCE = "see the list of commands below"


def _mean(cells: dict, key: tuple) -> float | None:
    runs = cells.get(key)
    return _stats([100 * r["test_acc"] for r in runs])[0] if runs else None


def render_targets(cells: dict) -> list[str]:
    out = ["### Targets", "", "| target | measured | met |", "|---|---|---|"]

    def row(label: str, value: float | None, ok: bool | None) -> None:
        shown = "-" if value is None else f"{value:.1f}"
        out.append(f"| {label} | {shown} | {'-' if ok is None else ('yes' if ok else 'no')} |")

    for config, target in TARGETS.items():
        m = _mean(cells, ("cora", "SMP", config, 10))
        row(f"Cora K=10 {config} >= {target}", m, None if m is None else m >= target)
    for config in ("INT2", "INT2-BT*"):
        base = _mean(cells, ("cora", "SMP", config, 10))
        for k in (32, 64):
            m = _mean(cells, ("cora", "SMP", config, k))
            ok = None if m is None or base is None else m >= base - 1.0
            row(f"Cora {config} K={k} within 1 pt of K=10 ({'-' if base is None else f'{base:.1f}'})", m, ok)
    for d in ("cora", "citeseer", "pubmed"):
        fp = _mean(cells, (d, "SMP", "FP32", 10))
        for config in ("INT2", "INT2-BT*"):
            m = _mean(cells, (d, "SMP", config, 10))
            ok = None if m is None or fp is None else m >= fp - 2.0
            row(f"{d} K=10 {config} within 2 pts of FP32 ({'-' if fp is None else f'{fp:.1f}'})", m, ok)
    return out + [""]


def render(rows: list[dict], command: str, timing: dict | None = None) -> str:
    cells = _cells(rows)
    datasets = [d for d in ("cora", "citeseer", "pubmed") if any(k[0] == d for k in cells)]
    layers = sorted({k[3] for k in cells})
    out = [BEGIN, "## Accuracy (`benchmarks/accuracy.py`)", "",
           (f"Commands (in this order; each appends to `benchmarks/results/accuracy.jsonl` and skips what it"
            f" holds; cells missing below did not finish in the time):\n\n```\n{RUN_SEQUENCE}```\n"
            if command == SEQUENCE else f"Command: `{command}`  "),
           f"Machine: {platform.machine()} VM, 2 cores shared with other jobs, torch "
           f"{__import__('torch').__version__} CPU, one torch thread per run. Test accuracy (%) at the epoch"
           " of best validation accuracy, mean ± std over seeds (n = seeds per cell); epoch time is the median"
           " training step (forward + backward + update) of a run, mean over seeds (runs shared the"
           " machine with each other and with other jobs, so compare times in the interleaved table below).",
           "", SETUP]
    for d in datasets:
        out += [f"### {d}", "", "| model | config | " + " | ".join(f"K={k}" for k in layers)
                + " | epoch time " + " / ".join(f"K={k}" for k in layers) + " |",
                "|---|---|" + "---|" * len(layers) + "---|"]
        for variant in ["SMP"] + list(ABLATIONS) + list(GCN_VARIANTS):
            for config in CONFIGS:
                present = [cells.get((d, variant, config, k)) for k in layers]
                if not any(present):
                    continue
                acc, times = [], []
                for runs in present:
                    if not runs:
                        acc.append("-")
                        times.append("-")
                        continue
                    m, s = _stats([100 * r["test_acc"] for r in runs])
                    acc.append(f"{m:.1f} ± {s:.1f} (n={len(runs)})")
                    times.append(f"{1000 * _stats([r['epoch_time_s'] for r in runs])[0]:.0f} ms")
                out.append(f"| {variant} | {config} | " + " | ".join(acc) + " | " + " / ".join(times) + " |")
        out.append("")
    out += [SUMMARY, FINDINGS]
    if any(k[1] in GCN_VARIANTS for k in cells):
        out += [GCN_NOTES]
    out += render_targets(cells)
    out += render_timing(timing or {})
    out.append(END)
    return "\n".join(out)


def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace our marked section of RESULTS.md (re-read right before writing: others edit the file)."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text + tail
    else:
        new = current.rstrip("\n") + "\n\n" + text + "\n"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(new)
    os.replace(tmp, path)


# -- main ------------------------------------------------------------------------------------------
def tasks_for(args) -> list[dict]:
    tasks = []
    base = {"data_root": args.data_root, "split": args.split, "epochs": args.epochs}
    for dataset in args.datasets:
        for layers in args.layers:
            for seed in range(args.seed, args.seed + args.seeds):
                for config in args.configs:
                    tasks.append({**base, "dataset": dataset, "variant": "SMP", "config": config, "layers": layers,
                                  "seed": seed, "overrides": {}})
                if args.ablation:
                    for variant, overrides in ABLATIONS.items():
                        for config in args.gcn_configs:
                            tasks.append({**base, "dataset": dataset, "variant": variant, "config": config,
                                          "layers": layers, "seed": seed, "overrides": overrides})
                if args.gcn and layers in args.gcn_layers:
                    for variant, overrides in GCN_VARIANTS.items():
                        for config in args.gcn_configs:
                            tasks.append({**base, "dataset": dataset, "variant": variant, "config": config,
                                          "layers": layers, "seed": seed, "overrides": overrides})
    return tasks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", type=lambda s: s.split(","), default=["cora", "citeseer", "pubmed"])
    p.add_argument("--configs", type=lambda s: s.split(","), default=list(DEFAULT_CONFIGS))
    p.add_argument("--layers", type=lambda s: [int(v) for v in s.split(",")], default=[10, 32, 64])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="random")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--gcn", action="store_true", help="also run the deep GCN contrast (plain vs bounded)")
    p.add_argument("--gcn-layers", type=lambda s: [int(v) for v in s.split(",")], default=[32, 64])
    p.add_argument("--gcn-configs", type=lambda s: s.split(","), default=["FP32", "INT2-BT*"],
                   help="configs of the --gcn and --ablation rows")
    p.add_argument("--ablation", action="store_true", help="also run SMP with the exact gradient and APPNP")
    p.add_argument("--data-root", default=os.environ.get("QGNN_DATA", str(HERE.parents[1] / "shared" / "datasets")))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--timing", action="store_true", help="also time FP32 vs quantized epochs (interleaved)")
    p.add_argument("--timing-configs", type=lambda s: s.split(","), default=["FP32", "INT8", "INT4", "INT2-BT*"])
    p.add_argument("--log", type=Path, default=LOG)
    p.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file whose section is rewritten")
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--command", default=None, help="the command line to record in RESULTS.md")
    args = p.parse_args(argv)
    for c in args.configs + args.gcn_configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c}: expected one of {', '.join(CONFIGS)}")
    command = args.command or "python benchmarks/accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)

    args.log.parent.mkdir(parents=True, exist_ok=True)
    done = {cell_key(r) for r in read_log(args.log)}
    todo = [t for t in tasks_for(args) if cell_key(t) not in done] if not args.render_only else []
    print(f"{len(todo)} runs to do ({len(done)} already in {args.log})", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, t): t for t in todo}
        for i, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            with open(args.log, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{i}/{len(todo)}] {row['dataset']} {row['variant']} {row['config']} K={row['layers']} "
                  f"seed {row['seed']}: test {100 * row['test_acc']:.1f} ({row['wall_s']:.0f} s)", flush=True)
            write_section(render(read_log(args.log), command, read_timing(args.log)), args.results)
    if args.timing and not args.render_only:
        for dataset in args.datasets:
            for layers in args.layers:
                timing = read_timing(args.log)
                timing[f"{dataset}/{layers}"] = time_epochs(dataset, args.data_root, layers, args.timing_configs)
                timing_path(args.log).write_text(json.dumps(timing, indent=2) + "\n")
                print(f"timing {dataset} K={layers}: " + ", ".join(
                    f"{c} {1000 * v:.1f} ms" for c, v in timing[f"{dataset}/{layers}"].items()), flush=True)
    write_section(render(read_log(args.log), command, read_timing(args.log)), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
