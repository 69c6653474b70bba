"""Latency measurement shared by the demo and the benchmark harness."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @property
    def spread(self) -> str:
        return f"{self.p10_ms:.2f}-{self.p90_ms:.2f}"


def measure(run: Callable[[], object], warmup: int = 3, repeat: int = 20) -> Timing:
    """Calls `run` `warmup` times untimed, then `repeat` times timed (wall clock)."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return Timing(statistics.median(samples), pick(0.1), pick(0.9), len(samples))
