"""Hyperparameter and site-group sweeps on top of the accuracy benchmark's configs (benchmarks/accuracy.py).

    python benchmarks/sweep.py --dataset cora --layers 10 --seeds 5 \
        --variants '[{"cfg": "INT2", "dropout": 0.8}, {"cfg": "INT2", "site_bits": {"agg": 8}}]'
    python benchmarks/sweep.py --show                        # the table of everything logged

Each variant is one of accuracy.py's CONFIGS (``cfg``) plus TrainConfig fields on top; every seed is one
single-threaded run of accuracy.py's (random split, 200 epochs), appended to the log as it ends with the
fields it trained with and the commit it ran at (``+`` marks uncommitted changes to the code, which
excludes logs and notes; rows logged before the commit was recorded have none). The table gives mean validation and test accuracy per variant and
commit: choose on validation, report test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # accuracy.py, in this process and in the workers that import this module
LOG = HERE / "results" / "sweep.jsonl"


def run_one(task: dict) -> dict:
    """accuracy.py's run of one seed, logged with the TrainConfig fields it trained with (CONFIGS may
    change between sweeps)."""
    from accuracy import CONFIGS
    from accuracy import run_one as train_one

    return {**train_one(task), "fields": {**CONFIGS[task["config"]], **task["overrides"]}}


def current_commit() -> str:
    """HEAD's short hash, with ``+`` when the code that trains (the package, the kernels, the benchmark
    scripts) differs from it; ``-`` outside a checkout. The logs themselves change between sweeps."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=HERE, capture_output=True, text=True, check=True).stdout.strip()

    code = (":/qgnn_cli", ":/csrc", ":/benchmarks/*.py")
    try:
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *code)
        return git("rev-parse", "--short", "HEAD") + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "-"


def show(log: Path) -> None:
    groups: dict = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        key = (r["dataset"], r["layers"], json.dumps(r["fields"], sort_keys=True), r.get("commit", "-"))
        groups.setdefault(key, []).append(r)
    for (dataset, layers, fields, commit), rows in groups.items():
        rows.sort(key=lambda r: r["seed"])
        test = [100 * r["test_acc"] for r in rows]
        print(f"{dataset:9s} K={layers:<3d} {commit:9s} {fields:100s} n={len(rows)} "
              f"val {statistics.mean(100 * r['best_val_acc'] for r in rows):.1f} test {statistics.mean(test):.1f} "
              f"[{' '.join(f'{t:.1f}' for t in test)}]")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--seeds", type=int, default=5, help="how many seeds per variant")
    p.add_argument("--first-seed", type=int, default=0, help="the first of them (to add seeds to a variant)")
    p.add_argument("--variants", type=json.loads, default=[])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-root", default=os.environ.get("QGNN_DATA", str(HERE.parents[1] / "shared" / "datasets")))
    p.add_argument("--log", type=Path, default=LOG)
    p.add_argument("--show", action="store_true", help="print the table of the log and exit")
    args = p.parse_args(argv)
    if not args.show:
        # accuracy.run_one sets the task's epochs last, so a variant's own epochs go there
        tasks = [{"dataset": args.dataset, "variant": "sweep", "config": v["cfg"], "layers": args.layers, "seed": s,
                  "split": "random", "epochs": v.get("epochs", 200), "data_root": args.data_root,
                  "overrides": {k: x for k, x in v.items() if k != "cfg"}}
                 for v in args.variants for s in range(args.first_seed, args.first_seed + args.seeds)]
        args.log.parent.mkdir(parents=True, exist_ok=True)
        commit = current_commit()
        with ProcessPoolExecutor(args.jobs) as pool, open(args.log, "a") as f:
            for row in pool.map(run_one, tasks):
                f.write(json.dumps({**row, "commit": commit}) + "\n")
                f.flush()
    show(args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
