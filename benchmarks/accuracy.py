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


def time_epochs(dataset: str, data_root: str, layers: int, configs: list[str], steps: int = 40) -> dict:
    """Median training-step time per config, the configs interleaved step by step in this process
    (one thread), so that load from other jobs hits them alike. Returns {config: seconds}. 40 steps:
    with 15, Cora K=64's ratio moved between 1.9x and 2.25x from one run to the next on the shared VM."""
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
        # foreach, as train/loop.py's optimizer (the per-tensor loop over a quantized model's 326 alphas at
        # K=64 cost ~10 ms a step, none of it in FP32, which has no alpha gradients).
        opt = torch.optim.Adam(model.parameters(), lr=0.01, foreach=True)
        setups[name] = (model, opt, maybe_sparse(node_features(graph, config)))
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
    meta = timing.get("_meta", {})
    timing = {k: t for k, t in timing.items() if not k.startswith("_")}
    if not timing:
        return []
    configs = list(dict.fromkeys(c for t in timing.values() for c in t))
    out = ["### Epoch time, FP32 vs quantized", "",
           "Median training step (forward + backward + Adam, foreach as in train/loop.py), the configurations"
           " interleaved step by step in one single-threaded process so that load from other jobs hits them alike"
           " (the absolute times move with that load: compare within a row; `measured` gives the 1-minute load"
           " average before and after the row's run, on 2 vCPUs).", "",
           "Before this round's changes (the table at commit bfa2ece) the worst quantized step cost 2.40x FP32"
           " on Cora K=10, 2.16x on CiteSeer, 3.28x on PubMed and 3.37x on Cora K=64. What changed, none of it"
           " changing a computed bit (each path is tested against the unfused one on int32 bit patterns, and"
           " whole training runs give the same losses, accuracies and state_dict): a training-mode site is one"
           " autograd node (quant/ste.py TrainSite) with the mask from a clamp instead of bool compares and its 0-d"
           " arithmetic in float32-exact python floats; an aggregation (nn/aggregate.py) and a whole SMP step"
           " (nn/smp.py) are one node each (autograd's per-node cost was most of a step on Cora); Adam's update"
           " runs foreach (326 scalar alphas at K=64); PubMed's constant 19717x500 input has its site and dropout"
           " computed on its 10 % nonzeros (quant/linear.py); the sparse first layer's product of codes, whose"
           " sums are exact integers, is one CSR product (nn/features.py). What is left on Cora is ~20 small"
           " tensor ops per site and step, forward and backward, at ~4 us each, and the activations the sites"
           " keep for their backward (FP32 keeps almost none). Part of the gain is the fusion itself: the"
           " one-node aggregation and step also take in work the FP32 path still runs node by node (its"
           " aggregation is 3 autograd nodes, its step 11) and PubMed's input dropout, which FP32 runs dense;"
           " fusing FP32 the same way would lower its time too and raise these ratios. Costs both paths share"
           " were left as they are (the broadcast products by D^-1/2, ~20 us each and 9 a step on Cora; the"
           " energy's second sparse product; the gather of w.T[cols] in FP32's sparse first layer).", "",
           "| dataset | K | " + " | ".join(configs) + " | worst quantized / FP32 | measured |",
           "|---|---|" + "---|" * (len(configs) + 2)]
    for key, t in timing.items():
        dataset, layers = key.split("/")
        ratio = max(v for c, v in t.items() if c != "FP32") / t["FP32"]
        m = meta.get(key)
        when = f"{m['date']}, load {m['load']}" if m else "-"
        out.append(f"| {dataset} | {layers} | " + " | ".join(f"{1000 * t[c]:.1f} ms" if c in t else "-" for c in configs)
                   + f" | {ratio:.2f}x | {when} |")
    out += ["", "Run to run (the table is the last run of each row): over this session's runs between 10:37 and"
            " 10:48 UTC (load 1.0-2.3), Cora K=10 gave 1.60-1.63x, CiteSeer 1.29-1.38x, PubMed 1.76-1.79x and"
            " Cora K=64 1.91-2.25x over eight runs (median 2.2x): at K=64 the 2x target is not met. Those runs took"
            " 15 steps; the table's, the last of each row, 40."]
    missed = [f"{k.split('/')[0]} K={k.split('/')[1]}" for k, t in timing.items()
              if max(v for c, v in t.items() if c != "FP32") > 2.0 * t["FP32"]]
    out += ["", "Target (issue 4), a quantized epoch at most 2x an FP32 one: "
            + ("met in every row." if not missed else "missed in every row." if len(missed) == len(timing)
               else f"missed on {', '.join(missed)}; met in the other rows.")]
    return out + [""]


SETUP = """\
Machine: Intel Xeon (family 6, model 207: Emerald Rapids; AVX-512, AMX), 2 vCPUs under KVM, shared with
two other developers' builds and benchmarks (load average 3-4 during these runs), torch 2.13.0+cpu.

Protocol: the paper's model (2-layer quantized MLP, hidden 64, then K SMP steps), random splits
(20 labelled nodes per class, 500 validation, 1000 test, re-drawn for every seed, the kind of split of
the authors' logged runs), 200 full-batch epochs, Adam (lr 0.01 x0.7 every 50 epochs, weight decay
5e-5), dropout 0.8 FP32 / 0.5 quantized, alpha_th per config as in METHOD.md §5 (0.1 FP32, 1e-5
INT8/INT4, 1e-4 INT2, 0.01 INT2-BT*), eta_lambda 1e-5, mu 9, eta 0.1, row-normalised features.
Every number in the tables below was measured with the code at the commit that adds them (the log was
restarted for this round; the previous round's grid is in git history, commit fe74a65), except the two
deep-GCN rows, carried over from that round: they are FP32 and none of this round's changes touches them.

**Changes this round** (each a deviation from METHOD.md, made the default, and measured first on Cora,
K=10, random splits of seeds 0-2, and on CiteSeer seed 0, one process, one thread, `TrainConfig` through
`qgnn_cli.train.run_training` with the benchmark's settings; a variant not in the library was run by
patching the one function it changes):

| variant | Cora FP32 | INT8 | INT4 | INT2 | INT2-BT* | CiteSeer INT2 / INT2-BT* |
|---|---|---|---|---|---|---|
| before (masked STE, lambda may go negative) | 82.1 (83.8, 81.6, 80.9) | 81.3 | 80.9 | 65.0 (72.5, 51.3, 71.3) | 74.4 (76.2, 72.4, 74.6) | - / 6.7 (stuck at ln 6) |
| alpha search by squared error at 2 bits | | | | 75.0 (75.7, 72.8, 76.4) | 69.9 (74.0, 57.7, 78.1) | 59.3 / 63.4 |
| that + lambda >= 0 | | | | 76.1 (77.0, 73.4, 77.8) | 75.2 (76.2, 73.2, 76.3), abs-error search | 59.7 / 6.7 |
| unmasked STE (+ squared-error search for INT2) | | | | 71.1 (69.9, 70.1, 73.2) | 75.5 (73.3, 74.7, 78.4) | 63.3 / 62.5 |
| **unmasked STE + lambda >= 0, abs-error search (adopted)** | see table | 81.6 (81.8, 80.3, 82.6) | 81.1 (80.4, 80.8, 82.2) | 75.0 (71.5, 77.0, 76.4) | see table | see table |
| range from a dropout-free pass each epoch | | | | 64.9 | 75.1 | - / 6.7 |
| alpha = 1 (no clipping) at the start, 2 bits | | | | 22.5 | 30.0, 26.5 (seed 2 crashed on NaN) | - / 43.6 |
| FP32, weight decay 5e-4 / 5e-4 + dropout 0.5 | 82.0 / 81.3 | | | | | |

- **Unmasked straight-through estimator** (`quant/ste.py`): the gradient passes clipped values too.
  At 2 bits a site's range clips 10-90 % of its tensor (measured per site on CiteSeer), ~50 sites lie
  between the loss and the weights, and with the usual mask the gradient died: CiteSeer INT2-BT* never
  left loss ln 6. The range still learns from what it clips, through the LSQ scale gradient.
- **lambda >= 0** (`nn/smp.py`, `update_multipliers`, shared by training and the packed runtime): with
  METHOD.md §4's signs an energy above the budget drives lambda negative, and a negative lambda makes the
  constraint step anti-smoothing, which raised the energy further (the exact-gradient divergence of the
  previous round). It costs FP32 on two seeds of three (83.8 -> 81.6, 81.6 -> 81.3; seed 2 unchanged:
  its lambda never went negative), where the negative multiplier had been damping the propagation.
- Kept as they were: the paper's abs-error alpha search (the squared-error search helped only with the
  masked STE), the batch range in training, the weight decay and dropout of the protocol.

Deviations kept from earlier rounds, each measured then or forced by the packed runtime:

- **alpha learning rate 1e-3** (paper 1e-4) for every quantized config. With the corrected LSQ
  gradient alpha can follow the loss, but at 1e-4 Adam moves it at most 0.02 in 200 epochs (Cora INT2
  seed 0: 40.8 %); 1e-3 beat 0.01 at 8, 4 and 2 bits (previous round, 3 seeds: INT2-BT* 76.5 vs 70.4,
  INT4 81.2 vs 79.6, INT8 81.5 vs 80.9).
- **Training-time range from the current batch** (alpha x batch min/max); the running min/max is an
  EMA (momentum 0.1) frozen for eval. A lagging EMA range in training clipped the growing logits and,
  through the masked STE used then, cut their gradient: Cora INT4 trained to 15.5 % (2 seeds) vs 79.6 %.
- **ReLU before lin1's output quantizer** (fused, as an integer kernel would): at 2 bits a ReLU
  output then gets three positive levels instead of one; Cora INT2 (seed 0, alpha lr 1e-4) went from
  7.6 % to 40.8 %. **Dropout after the input quantizers**, so the frozen ranges fit the eval-time
  tensors (no measurable change on its own: INT8 seed 0, 81.2 % vs 80.9 %).
- **The last step's update site is not quantized**: it is the model's output, returned in float by the
  packed runtime; quantized, every class score takes one of four values at 2 bits and the arg-max
  ties (Cora INT2-BT*, seed 0: 68.9 % -> 75.3 %).
- **Source rows are quantized instead of per-edge messages** (METHOD.md §2: what the packed SpMM runs).
"""


SUMMARY = """\
**Summary.** Cora, K=10, 5 seeds: INT2-BT* 78.0 meets the paper's 77.8 (last round 71.1); INT4 80.9
misses 81.0 by 0.1, INT8 81.2 misses 82.1, FP32 81.4 misses 82.8 (the paper's numbers are one run on one
random split; FP32 here is 0.5 below last round's 81.9, the cost of lambda >= 0 on two seeds, see above).
Plain INT2 75.6 (last round 70.4) no longer collapses on a seed (worst 71.5). CiteSeer 2-bit now
trains (INT2 61.6, INT2-BT* 63.7, 3 seeds; last round 42.5 / 37.2 with seeds stuck at ln 6) but stays
6-9 points under FP32 (70.2), so "INT2 within 2 pts of FP32" is missed on Cora (BT* 1.4 pts short) and
CiteSeer. PubMed was not re-run (below). Deep, K=32, 3 seeds: INT2-BT* 77.2 (within 1 pt of its K=10
78.0: met), INT2 74.4 (1.2 under its 5-seed K=10 75.6: missed; 0.6 under the same seeds 0-2 at K=10,
75.0). K=64, 2 seeds: INT2 74.3, INT2-BT* 76.2, both more than 1 pt under their 5-seed K=10 means
(missed); on the same seeds 0-1 at K=10 they are 74.3 and 76.7, so depth itself costs 0.0 and 0.4 pts
there (last round K=64: INT2 54.0 with a collapsed seed). Epoch time: a quantized training step costs 2.1-3.4x an FP32 one in the interleaved table below,
so the 2x target is missed everywhere; the gap is op dispatch on Cora (it grows with K) and the
quantizer arithmetic on PubMed (every site re-quantizes its whole tensor each step, the input site
PubMed's 1M feature nonzeros included).

**Missing cells, and why.** The 2 vCPUs were shared with two other developers' builds and benchmarks all
session (runs took 1.5-3x their idle time), and the grid had to be committed by a deadline. Not re-run
this round: PubMed (FP32 / INT2 / INT2-BT*, ~5 min a run), a third Cora K=64 seed, the FP32 K=32/64
rows, and the ablation rows (exact gradient, APPNP). Last round's numbers for them (old code:
masked STE, lambda unclipped, alpha lr 0.01) are in git history (RESULTS.md at commit 1cb8e50):
PubMed FP32 78.1, INT2 64.0, INT2-BT* 74.3 (2 seeds); Cora K=64 INT2 54.0, INT2-BT* 71.5 (3 seeds).
"""

FINDINGS = """\
**2 bits on CiteSeer trains now.** Last round the loss stayed at ln 6 from the first epoch to the last
(INT2-BT* 37.2 %, INT2 42.5 %, 3 seeds). A per-site count on CiteSeer INT2-BT*, seed 0, after the first
step: lin2's output range held 8 % of the logits, the propagation sites 17-100 % of their inputs; with the
STE masked outside the range, the product of those fractions along ~50 sites is what reached the
weights. Neither a wider start (alpha = 1: 43.6 %) nor lambda >= 0 alone (6.7 %) fixed it; the unmasked
STE did (62.5 % on that seed), and the grid above is run with it.
"""

GCN_NOTES = """\
**Deep GCN with the energy bound (beyond the paper).** Rows carried over from the previous round (FP32,
2 seeds; nothing changed since touches an FP32 GCN: its multipliers are its own, already kept >= 0, and
it has no quantizers). The bound tr(dX_l^T L dX_l) <= alpha_th |E| caps how rough each layer's *change*
may be. A plain deep GCN fails the other way: at initialisation the change energy per entry is 3e-4 at
layer 0 and below 1e-5 from layer 4 on (Cora, 32 layers): the signal is smoothed away and vanishes, and
no upper bound is ever violated. The multipliers therefore stay at 0 and the bounded stack trains
exactly like the plain one (identical numbers in the table). So at 32/64 layers it does **not** beat a
plain deep GCN (29.6 % / 31.0 % both); the SMP model, whose depth is weight-free propagation anchored to
H at every step, is the one that keeps its accuracy. A lower bound on the energy (as in EGNN) or
residual connections would be the thing to try next; not tried this round.
"""


# How the committed table was produced: these invocations, in this order, each skipping what the log holds.
RUN_SEQUENCE = """\
python benchmarks/accuracy.py --jobs 1 --datasets cora --layers 10 --seeds 5
python benchmarks/accuracy.py --jobs 1 --datasets citeseer --layers 10 --seeds 3
python benchmarks/accuracy.py --jobs 1 --datasets cora --layers 32 --seeds 3 --configs INT2,INT2-BT*
python benchmarks/accuracy.py --jobs 1 --datasets cora,citeseer,pubmed --layers 10 --seeds 0 --timing --timing-configs FP32,INT8,INT4,INT2,INT2-BT*
python benchmarks/accuracy.py --jobs 1 --datasets cora --layers 64 --seeds 0 --timing --timing-configs FP32,INT2,INT2-BT*
python benchmarks/accuracy.py --jobs 1 --datasets cora --layers 64 --seeds 2 --configs INT2,INT2-BT*
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
           f"One torch thread per run ({platform.machine()}, torch {__import__('torch').__version__}). Test accuracy (%) at the epoch"
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
                load_before = os.getloadavg()[0]
                timing[f"{dataset}/{layers}"] = time_epochs(dataset, args.data_root, layers, args.timing_configs)
                timing.setdefault("_meta", {})[f"{dataset}/{layers}"] = {
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "load": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"}
                timing_path(args.log).write_text(json.dumps(timing, indent=2) + "\n")
                print(f"timing {dataset} K={layers}: " + ", ".join(
                    f"{c} {1000 * v:.1f} ms" for c, v in timing[f"{dataset}/{layers}"].items()), flush=True)
    write_section(render(read_log(args.log), command, read_timing(args.log)), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
