"""Latency measurement shared by the demo and the benchmark harness."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class Timing:
    median_ms: float
    q1_ms: float  # interquartile range: q1 to q3
    q3_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @staticmethod
    def of(samples_ms: list[float]) -> "Timing":
        ordered = sorted(samples_ms)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return Timing(statistics.median(ordered), pick(0.25), pick(0.75), pick(0.1), pick(0.9),
                      len(ordered))

    @property
    def spread(self) -> str:
        return f"{self.p10_ms:.2f}-{self.p90_ms:.2f}"

    @property
    def iqr(self) -> str:
        return f"{self.q1_ms:.2f}-{self.q3_ms:.2f}"


def accuracy(actual, expected) -> tuple[float, float]:
    """How a lower-precision result is stated against its reference (torch tensors of one
    shape): cosine similarity, and the largest difference over the reference's largest
    magnitude, both computed in float64."""
    import torch

    a, e = actual.detach().double().flatten(), expected.detach().double().flatten()
    cosine = torch.nn.functional.cosine_similarity(a, e, dim=0).item()
    return cosine, ((a - e).abs().max() / e.abs().max().clamp_min(1e-30)).item()


def cpu_model() -> str:
    """The CPU's model name (Linux), for benchmark reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# Instruction-set extensions that decide which kernels a CPU gets (recorded with results).
_SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                "amx_int8")


def cpu_flags() -> list[str]:
    """The CPU's speed-relevant flags (Linux), from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in _SPEED_FLAGS if flag in present]
    except OSError:
        pass
    return []


def cpu_slug() -> str:
    """A folder name for results per CPU kind: vendor and family words of the model name,
    and ``amx`` where the CPU has AMX ("intel-xeon-amx", "amd-epyc-...")."""
    words = [w for w in cpu_model().lower().replace("(r)", " ").replace("(tm)", " ").split()
             if w.isalpha() and w not in ("processor", "cpu", "core", "with")]
    slug = "-".join(words[:3]) or "unknown-cpu"
    return slug + ("-amx" if "amx_tile" in cpu_flags() else "")


def _timed_ms(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def timed(run: Callable[[], object]) -> tuple[object, float]:
    """`run()`'s result and the seconds it took (one call: a compile, a tuning run)."""
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def measure(run: Callable[[], object], warmup: int = 3, repeat: int = 20) -> Timing:
    """Calls `run` `warmup` times untimed, then `repeat` times timed (wall clock)."""
    return measure_interleaved({"run": run}, warmup, repeat)["run"]


def measure_interleaved(runs: Mapping[str, Callable[[], object]], warmup: int = 5,
                        repeat: int = 50, pause_s: float = 0.0) -> dict[str, Timing]:
    """Times each contender `repeat` times, taking turns (one call each per round), so that
    drifts of the machine (frequency, other load) touch every contender alike. `pause_s`
    between calls lets the previous contender's worker threads stop spinning (OpenMP, ONNX
    Runtime and TVM pools busy-wait after a call), so no contender pays for another's."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    for run in runs.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            if pause_s:
                time.sleep(pause_s)
            samples[name].append(_timed_ms(run))
    return {name: Timing.of(values) for name, values in samples.items()}


def repeated(run: Callable[[], object], calls: int) -> Callable[[], None]:
    """`run` `calls` times: one sample of a call too short to time alone."""
    def many():
        for _ in range(calls):
            run()
    return many


def per_call_us(timings: Mapping[str, Timing], calls: int) -> dict:
    """Samples of `calls` calls each, as microseconds per call (median and quartiles)."""
    return {name: {"median_us": round(t.median_ms * 1e3 / calls, 2),
                   "q1_us": round(t.q1_ms * 1e3 / calls, 2),
                   "q3_us": round(t.q3_ms * 1e3 / calls, 2)} for name, t in timings.items()}


def per_call_lines(title: str, per_call: Mapping[str, dict]) -> list[str]:
    """A Markdown section: one row per way of calling, microseconds per call."""
    lines = [f"## {title}", "", "| how it is called | median us/call | IQR us |", "|---|---:|---:|"]
    for name, t in per_call.items():
        lines.append(f"| {name} | {t['median_us']:.2f} | {t['q1_us']:.2f}-{t['q3_us']:.2f} |")
    return lines


def print_table(header: list[str], rows_of: Callable[[str], list[str]], names,
                out: str | None = None) -> None:
    """Prints `header`, then each name's rows (``rows_of(name)``) as soon as they are measured,
    and writes the whole table to `out` too."""
    print("\n".join(header), flush=True)
    lines = list(header)
    for name in names:
        rows = rows_of(name)
        print("\n".join(rows), flush=True)
        lines += rows
    if out:
        with open(out, "w") as file:
            file.write("\n".join(lines) + "\n")
