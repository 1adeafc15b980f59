"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time


def median_seconds(action, repeat: int) -> float:
    """Median wall time of ``action`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
