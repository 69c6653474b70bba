"""precision="bf16" against float32 and against PyTorch's own bfloat16, in one run on one
machine: tvmbridge in float32 and bfloat16 (never_slower=False: TVM's code, not the fallback
decision), eager PyTorch in float32, and PyTorch in bfloat16 the way a CPU user runs it
(weights and input cast, images channels-last; eager and frozen TorchScript). Reports accuracy
against float32 eager (cosine similarity, largest error over the output's largest magnitude)
and latency (median and interquartile range of interleaved runs), with ratios to the fastest
PyTorch contender.

    python bench/bf16.py [--models resnet18 bert_base] [--batch 8] [--repeat 30] [--out FILE]
    make bench-bf16
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torchvision

import tvmbridge.torch as tt
from bench_models import Bert
from tvmbridge.benchmark import (accuracy, cpu_flags, cpu_model, measure_interleaved,
                                  print_table)


def _image_model(name: str):
    return (lambda: getattr(torchvision.models, name)(weights=None),
            lambda batch: torch.randn(batch, 3, 224, 224))


# name -> (build the model, make its input for a batch size). PyTorch's bfloat16 contenders run
# image models channels-last, as oneDNN prefers.
MODELS = {
    **{name: _image_model(name)
       for name in ("resnet18", "mobilenet_v2", "resnet50", "efficientnet_b0")},
    "bert_base": (Bert, lambda batch: torch.randint(0, 30522, (batch, 128))),
}


def run_model(name: str, repeat: int, batch: int = 1) -> list[str]:
    torch.manual_seed(0)
    build, make_input = MODELS[name]
    model, x = build().eval(), make_input(batch)
    lines = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(x)
        traced = torch.jit.trace(model, x, check_trace=False, strict=False)
        compiled, compile_s = {}, {}
        for precision in ("fp32", "bf16"):
            started = time.perf_counter()
            compiled[precision] = tt.compile(traced, [x], precision=precision,
                                             never_slower=False)
            compile_s[precision] = time.perf_counter() - started
        bf16_model = build().eval()
        bf16_model.load_state_dict(model.state_dict())
        bf16_model, bf16_x = bf16_model.to(torch.bfloat16), x
        if x.is_floating_point():
            bf16_model = bf16_model.to(memory_format=torch.channels_last)
            bf16_x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        frozen_bf16 = torch.jit.freeze(
            torch.jit.trace(bf16_model, bf16_x, check_trace=False, strict=False))
        runs = {
            "eager fp32": (lambda: model(x), None),
            "eager bf16": (lambda: bf16_model(bf16_x), None),
            "frozen TorchScript bf16": (lambda: frozen_bf16(bf16_x), None),
            "tvmbridge fp32": (lambda: compiled["fp32"](x), compile_s["fp32"]),
            "tvmbridge bf16": (lambda: compiled["bf16"](x), compile_s["bf16"]),
        }
        timings = measure_interleaved({k: run for k, (run, _) in runs.items()},
                                      warmup=5, repeat=repeat)
        best_pytorch = min(t.median_ms for k, t in timings.items() if not k.startswith("tvm"))
        for label, (run, seconds) in runs.items():
            cosine, error = accuracy(run(), expected)
            timing = timings[label]
            compile_cell = f"{seconds:.1f}" if seconds is not None else "-"
            lines.append(f"| {name} | {label} | {compile_cell} | {timing.median_ms:.2f} | "
                         f"{timing.iqr} | {best_pytorch / timing.median_ms:.2f}x | "
                         f"{cosine:.6f} | {error * 100:.2f}% |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2", "bert_base"],
                        choices=sorted(MODELS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    header = [
        f"Machine: {cpu_model()}, flags {' '.join(cpu_flags())}, {torch.get_num_threads()} "
        f"threads; torch {torch.__version__}; batch {args.batch}, 224 px images, 128 tokens; "
        f"{args.repeat} "
        "interleaved runs "
        "per contender after 5 warm-up runs. Accuracy against eager float32 on the same "
        "random weights.",
        "",
        "| model | contender | compile s | median ms | IQR ms | speed vs best PyTorch | "
        "cosine | max error |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    print_table(header, lambda name: run_model(name, args.repeat, args.batch), args.models,
                args.out)


if __name__ == "__main__":
    main()
