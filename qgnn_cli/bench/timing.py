"""Interleaved timing: every variant runs once per round, rounds repeat, medians are reported.

Interleaving spreads slow phases of a shared machine (another job, frequency changes) over all
variants instead of penalising whichever ran during them, so ratios between variants are stable
even when absolute times are not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.seconds), max(self.seconds)


def time_interleaved(
    variants: dict[str, Callable[[], object]],
    reps: int = 5,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Timing]:
    """Run each variant ``warmup`` times, then ``reps`` rounds of all variants; wall-clock seconds.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read.
    """
    if reps < 1:
        raise ValueError("reps must be at least 1")
    sync = sync or (lambda: None)
    for name, fn in variants.items():
        for _ in range(warmup):
            fn()
        if progress:
            progress(name, -1)
    timings = {name: Timing(name) for name in variants}
    for rep in range(reps):
        for name, fn in variants.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            timings[name].seconds.append(time.perf_counter() - start)
            if progress:
                progress(name, rep)
    return timings
