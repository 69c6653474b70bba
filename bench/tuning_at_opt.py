"""Tuning a module over a range of shapes (issue 22): its tasks are tuned at the opt shape.

    python bench/tuning_at_opt.py [--trials 256] [--batches 1 4 8] [--repeat 20] [--out FILE]

A small CNN (three 3x3 convolutions, 56x56 images, random weights) is compiled for batch
1..8 (opt 1) with ``tt.Tuning``, so its convolutions are TVM's and MetaSchedule tunes them:

- "ranged, tuned at opt": the records this run makes (in a fresh database unless
  ``--database`` names one); calls at the opt shape run the tuned code, others the default
  schedules;
- "ranged, default schedules": the same module with an empty database, which is what a
  ranged module ran before its tasks were tuned at the opt shape;
- "static at opt, tuned": a fixed-shape compile at batch 1 on the same records (timed at
  batch 1 only);
- eager PyTorch.

At each batch the contenders run interleaved (medians and interquartile ranges). Outputs are
checked against eager at every batch.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

import tvmbridge.torch as tt
from tvmbridge import benchmark

IMAGE = (3, 56, 56)
MAX_BATCH, OPT_BATCH = 8, 1


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()


def _compiled(traced, inputs, tuning: tt.Tuning) -> tuple[torch.jit.ScriptModule, float]:
    return benchmark.timed(lambda: tt.compile(traced, inputs, never_slower=False, tuning=tuning))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", help="tuning records (default: a fresh folder)")
    parser.add_argument("--out")
    args = parser.parse_args()

    model = small_cnn()
    traced = torch.jit.trace(model, torch.randn(OPT_BATCH, *IMAGE))
    ranged = [tt.Input(min_shape=(1, *IMAGE), opt_shape=(OPT_BATCH, *IMAGE),
                       max_shape=(MAX_BATCH, *IMAGE))]
    database = args.database or tempfile.mkdtemp(prefix="tvmbridge-tuning-")
    with tempfile.TemporaryDirectory(prefix="tvmbridge-no-records-") as empty:
        untuned, untuned_s = _compiled(traced, ranged, tt.Tuning(trials=0, database=empty))
        tuned, tuned_s = _compiled(traced, ranged,
                                   tt.Tuning(trials=args.trials, database=database))
        static, static_s = _compiled(traced, [tt.Input((OPT_BATCH, *IMAGE))],
                                     tt.Tuning(trials=0, database=database))

    header = [
        f"# Tuning at the opt shape: a small CNN over batch 1..{MAX_BATCH} (opt {OPT_BATCH})",
        "",
        f"CPU: {benchmark.cpu_model()}; flags: {' '.join(benchmark.cpu_flags())}; "
        f"{torch.get_num_threads()} threads; {args.trials} trials; {args.repeat} interleaved "
        "rounds after 5 warm-up calls",
        f"Compile s: ranged with default schedules {untuned_s:.1f}, ranged tuned at opt "
        f"{tuned_s:.1f} (tuning included), static at opt on the same records {static_s:.1f}",
        "",
        "| batch | contender | median ms | IQR ms | vs ranged default |",
        "|---:|---|---:|---|---:|",
    ]

    def rows_of(batch: int) -> list[str]:
        x = torch.randn(batch, *IMAGE)
        contenders = {"eager": model, "ranged, default schedules": untuned,
                      "ranged, tuned at opt": tuned}
        if batch == OPT_BATCH:
            contenders["static at opt, tuned"] = static
        with torch.no_grad():
            expected = model(x)
            for name, module in contenders.items():
                torch.testing.assert_close(module(x), expected, rtol=1e-4, atol=1e-4,
                                           msg=lambda m, name=name: f"{name}: {m}")
            timings = benchmark.measure_interleaved(
                {name: (lambda module=module: module(x)) for name, module in contenders.items()},
                warmup=5, repeat=args.repeat)
        base = timings["ranged, default schedules"].median_ms
        return [f"| {batch} | {name} | {t.median_ms:.3f} | {t.iqr} | {base / t.median_ms:.2f}x |"
                for name, t in timings.items()]

    benchmark.print_table(header, rows_of, args.batches, args.out)


if __name__ == "__main__":
    main()
