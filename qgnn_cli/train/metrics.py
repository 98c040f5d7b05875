"""Accuracy and the mean ± std summaries reported over runs."""

from __future__ import annotations

import math

import torch


def accuracy(log_probs: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    if not bool(mask.any()):
        return float("nan")
    return float((log_probs[mask].argmax(dim=1) == y[mask]).float().mean())


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(results: list[dict]) -> dict:
    """Mean/std over runs of the headline numbers (accuracies in %)."""
    out = {"runs": len(results)}
    for key in ("test_acc", "best_val_acc", "epoch_time_s"):
        mean, std = mean_std([float(r[key]) for r in results])
        out[key] = {"mean": mean, "std": std}
    return out


def fmt_pct(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"
