"""Every zoo model timed (issue 19): eager PyTorch, frozen TorchScript, and tvmbridge in float32
and in bfloat16, each with the default settings (``never_slower``) and with TVM's code alone
(``never_slower=False``), all interleaved in one run per model. Reports each tvmbridge
contender's speedup over the better of eager and frozen TorchScript (float32), the geometric
mean of those speedups over the zoo, and bf16's accuracy against float32 eager (cosine
similarity; largest error over the output's largest magnitude).

Models come from tests/zoo/models.py (random weights, the zoo's input sizes), traced where the
zoo traces them, scripted otherwise. Where the default kept every region in TVM, its program is
TVM's code alone, so that contender is not compiled twice (the table says "= default").

    python bench/zoo.py [--models resnet18 bert_base] [--repeat 10] [--out FILE]
    make bench-zoo   (and after the zoo's tests in make test-zoo)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "zoo"))
import tvmbridge.torch as tt  # noqa: E402
from check import output_tensors  # noqa: E402
from models import ZOO  # noqa: E402
from tvmbridge.benchmark import (  # noqa: E402
    accuracy, cpu_flags, cpu_model, measure_interleaved, timed)

PRECISIONS = ("fp32", "bf16")
# Columns: the PyTorch baselines, then per precision the default and TVM's code alone.
TVMBRIDGE = [(precision, never_slower) for precision in PRECISIONS for never_slower in (True, False)]


def _label(precision: str, never_slower: bool) -> str:
    return f"{precision} {'default' if never_slower else 'TVM alone'}"


def _flat(outputs) -> torch.Tensor:
    return torch.cat([t.detach().float().flatten() for t in output_tensors(outputs)])


class ModelTiming:
    """One model's medians (ms) per contender, compile seconds, and bf16 accuracy."""

    def __init__(self, name: str, repeat: int):
        spec = ZOO[name]
        self.name, self.way = name, "trace" if "trace" in spec.ways else "script"
        self.quantized = spec.quantized_steps > 0
        torch.manual_seed(0)
        model, inputs = spec.build(), spec.inputs()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = (torch.jit.trace(model, inputs, check_trace=False, strict=False)
                      if self.way == "trace" else torch.jit.script(model))
            frozen = torch.jit.freeze(source.eval())
            expected = model(*inputs)
            runs = {"eager": lambda: model(*inputs), "frozen TorchScript": lambda: frozen(*inputs)}
            self.compile_s, self.same_as_default, self.measured_slower = {}, set(), {}
            self.cosine = self.relative_error = math.nan
            for precision, never_slower in TVMBRIDGE:
                if precision == "bf16" and self.quantized:
                    continue  # bf16 applies to float models
                label = _label(precision, never_slower)
                default = _label(precision, True)
                if not never_slower and not self.measured_slower[default]:
                    self.same_as_default.add(label)
                    continue
                compiled, self.compile_s[label] = timed(lambda: tt.compile(
                    source, list(inputs), precision=precision, never_slower=never_slower))
                if never_slower:
                    self.measured_slower[label] = tt.report(compiled).measured_slower
                if precision == "bf16":  # TVM alone, where compiled, overwrites the default's
                    self.cosine, self.relative_error = accuracy(_flat(compiled(*inputs)),
                                                                _flat(expected))
                runs[label] = (lambda c: lambda: c(*inputs))(compiled)
            self.timings = measure_interleaved(runs, warmup=3, repeat=repeat)

    def median(self, label: str) -> float:
        if label in self.same_as_default:
            label = label.replace("TVM alone", "default")
        timing = self.timings.get(label)
        return timing.median_ms if timing else math.nan

    @property
    def best_pytorch_ms(self) -> float:
        return min(self.median("eager"), self.median("frozen TorchScript"))

    def speedup(self, label: str) -> float:
        return self.best_pytorch_ms / self.median(label)

    def row(self) -> str:
        cells = [self.name, self.way, f"{self.median('eager'):.2f}",
                 f"{self.median('frozen TorchScript'):.2f}"]
        for precision, never_slower in TVMBRIDGE:
            label = _label(precision, never_slower)
            if math.isnan(self.median(label)):
                cells.append("-")
                continue
            mark = " =" if label in self.same_as_default else ""
            cells.append(f"{self.median(label):.2f} ({self.speedup(label):.2f}x){mark}")
        kept = sum(region["nodes"] for slower in self.measured_slower.values() for region in slower)
        cells.append(str(kept))
        cells.append(" / ".join(f"{self.compile_s[_label(precision, True)]:.1f}"
                                for precision in PRECISIONS
                                if _label(precision, True) in self.compile_s))
        cells.append("-" if math.isnan(self.cosine) else f"{self.cosine:.5f}")
        cells.append("-" if math.isnan(self.relative_error) else f"{self.relative_error:.2%}")
        return "| " + " | ".join(cells) + " |"


HEADER = ("| model | way | eager ms | frozen TS ms | fp32 default | fp32 TVM alone | bf16 default "
          "| bf16 TVM alone | nodes never_slower kept in PyTorch | compile s, fp32 / bf16 default "
          "| bf16 cosine | bf16 max error |")


def geometric_mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.geometric_mean(values) if values else math.nan


def summary(results: list[ModelTiming]) -> list[str]:
    lines = ["", "Geometric mean of the speedup over the better of eager and frozen TorchScript "
             "(float32), and the models where the contender is slower than it:", "",
             "| contender | geometric mean | models | slower than PyTorch |", "|---|---:|---:|---|"]
    for precision, never_slower in TVMBRIDGE:
        label = _label(precision, never_slower)
        speedups = {r.name: r.speedup(label) for r in results if not math.isnan(r.median(label))}
        slower = ", ".join(f"{name} {s:.2f}x" for name, s in speedups.items() if s < 1.0) or "none"
        lines.append(f"| {label} | {geometric_mean(speedups.values()):.2f}x | {len(speedups)} "
                     f"| {slower} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=list(ZOO))
    parser.add_argument("--skip", nargs="+", default=[], choices=list(ZOO))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    names = [name for name in args.models if name not in args.skip]
    lines = [f"Machine: {cpu_model()}, flags {' '.join(cpu_flags())}, "
             f"{torch.get_num_threads()} threads; torch {torch.__version__}. The zoo's inputs "
             f"(batch 1, tests/zoo/models.py); {args.repeat} interleaved runs per contender after "
             "3 warm-up runs; medians, with the speedup over the better of eager and frozen "
             "TorchScript. \"=\": the default kept everything in TVM, so TVM alone is the same "
             "program. bf16 accuracy against float32 eager.", "", HEADER,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    results = []
    for index, name in enumerate(names, 1):
        started = time.perf_counter()
        try:
            result = ModelTiming(name, args.repeat)
        except Exception as error:  # a model that fails is reported, the run goes on
            line = f"| {name} | failed: {type(error).__name__}: {str(error).splitlines()[0][:160]} |"
        else:
            results.append(result)
            line = result.row()
        lines.append(line)
        print(line, f"<!-- {index}/{len(names)}, {time.perf_counter() - started:.0f} s -->",
              flush=True)
        if args.out:
            Path(args.out).write_text("\n".join(lines + summary(results)) + "\n")
    print("\n".join(summary(results)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
