"""Peak resident memory of one call, sampled from /proc while it runs.

torch's CPU allocator is not traced by tracemalloc, so the process's resident set is the honest
measure; the figure is the peak above the resident set just before the call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:  # not Linux: no sampling, report 0
        return 0


def peak_memory(fn: Callable[[], object], interval: float = 0.001) -> int:
    """Bytes of resident memory ``fn`` added at its peak (0 where /proc is unavailable)."""
    baseline = _rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    return max(0, peak[0] - baseline)
