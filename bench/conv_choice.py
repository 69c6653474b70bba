"""Float32 convolutions on oneDNN or on TVM's schedules, side by side on this machine: the
measurement behind build._onednn_convolutions, which picks one per CPU kind. Both tvmbridge
contenders run TVM's code (never_slower=False) and differ only in that choice; eager and frozen
TorchScript run alongside, all interleaved. Accuracy is the largest difference from eager.

    python bench/conv_choice.py [--models resnet18 mobilenet_v2] [--batch 1] [--repeat 30]
"""

from __future__ import annotations

import argparse
import time
import warnings
from unittest import mock

import torch
import torchvision

import tvmbridge.build
import tvmbridge.torch as tt
from tvmbridge.benchmark import cpu_flags, cpu_model, measure_interleaved, print_table

MODELS = ("resnet18", "mobilenet_v2", "resnet50", "efficientnet_b0", "mobilenet_v3_large")


def _compile(traced, x, onednn: bool):
    """tvmbridge's float32 build with the convolution choice forced to `onednn`."""
    started = time.perf_counter()
    with mock.patch.object(tvmbridge.build, "_onednn_convolutions", lambda *_, **__: onednn):
        compiled = tt.compile(traced, [x], never_slower=False)
    return compiled, time.perf_counter() - started


def run_model(name: str, batch: int, repeat: int) -> list[str]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(x)
        traced = torch.jit.trace(model, x, check_trace=False)
        frozen = torch.jit.freeze(traced)
        onednn, onednn_s = _compile(traced, x, onednn=True)
        schedules, schedules_s = _compile(traced, x, onednn=False)
        runs = {"eager": (lambda: model(x), None),
                "frozen TorchScript": (lambda: frozen(x), None),
                "tvmbridge, oneDNN convolutions": (lambda: onednn(x), onednn_s),
                "tvmbridge, TVM's schedules": (lambda: schedules(x), schedules_s)}
        timings = measure_interleaved({k: run for k, (run, _) in runs.items()},
                                      warmup=5, repeat=repeat)
        best = min(t.median_ms for t in timings.values())
        lines = []
        for label, (run, seconds) in runs.items():
            error = (run() - expected).abs().max().item()
            timing = timings[label]
            lines.append(f"| {name} | {label} | {'-' if seconds is None else f'{seconds:.1f}'} | "
                         f"{timing.median_ms:.2f} | {timing.iqr} | "
                         f"{best / timing.median_ms:.2f}x | {error:.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"],
                        choices=MODELS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    header = [f"Machine: {cpu_model()}, flags {' '.join(cpu_flags())}, "
              f"{torch.get_num_threads()} threads; torch {torch.__version__}; batch {args.batch}, "
              f"224 px; {args.repeat} interleaved runs per contender after 5 warm-up runs.", "",
              "| model | contender | compile s | median ms | IQR ms | speed vs fastest | "
              "max abs error vs eager |", "|---|---|---:|---:|---|---:|---:|"]
    print_table(header, lambda name: run_model(name, args.batch, args.repeat), args.models,
                args.out)


if __name__ == "__main__":
    main()
