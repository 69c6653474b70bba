"""One artifact for a range of batch sizes against one static compile per size (issue 22):
ResNet-18 compiled once with tt.Input(min_shape, opt_shape, max_shape), and once per batch
size with a fixed shape; at each size the two run interleaved in one loop (medians and
interquartile ranges), with eager PyTorch as a third contender. Compile times too.

    python bench/symbolic_shapes.py [--batches 1 4 8] [--repeat 15] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torchvision

import tvmbridge.torch as tt
from tvmbridge import benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))
    low, high = min(args.batches), max(args.batches)
    started = time.perf_counter()
    ranged = tt.compile(traced, [tt.Input(min_shape=(low, 3, 224, 224),
                                          opt_shape=(low, 3, 224, 224),
                                          max_shape=(high, 3, 224, 224))], never_slower=False)
    ranged_compile_s = time.perf_counter() - started
    header = [f"# ResNet-18, one artifact for batch {low}..{high} (opt {low}) against static "
              f"compiles", "", f"CPU: {benchmark.cpu_model()}; flags: "
              f"{' '.join(f for f in benchmark.cpu_flags() if 'avx' in f or 'amx' in f)}",
              f"Compile: ranged {ranged_compile_s:.1f} s; ranged module: "
              f"{tt.report(ranged).summary()}", "",
              "| batch | static ms (IQR) | ranged ms (IQR) | ranged / static | eager ms | "
              "static compile s | max abs diff ranged vs eager |",
              "|---:|---:|---:|---:|---:|---:|---:|"]

    def rows_of(batch: int) -> list[str]:
        x = torch.randn(batch, 3, 224, 224)
        started = time.perf_counter()
        static = tt.compile(traced, [tt.Input(tuple(x.shape))], never_slower=False)
        static_compile_s = time.perf_counter() - started
        with torch.no_grad():
            diff = (ranged(x) - model(x)).abs().max().item()
            timings = benchmark.measure_interleaved(
                {"static": lambda: static(x), "ranged": lambda: ranged(x),
                 "eager": lambda: model(x)}, warmup=3, repeat=args.repeat, pause_s=0.01)
        s, r, e = timings["static"], timings["ranged"], timings["eager"]
        return [f"| {batch} | {s.median_ms:.2f} ({s.iqr}) | {r.median_ms:.2f} ({r.iqr}) | "
                f"{r.median_ms / s.median_ms:.2f}x | {e.median_ms:.2f} | {static_compile_s:.1f} | "
                f"{diff:.1e} |"]

    benchmark.print_table(header, rows_of, args.batches, args.out)


if __name__ == "__main__":
    main()
