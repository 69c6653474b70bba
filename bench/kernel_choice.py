"""The kernels float32 convolutions and linear layers run on, side by side on this machine:
the measurements behind the kernel choices per CPU kind (tvmbridge.pipeline).

- `--kernel conv`: convolutions on oneDNN, on TVM's NCHW16c schedules, or (the default) on
  the faster of the two timed at build (pipeline.convolution_kernel_choices), on torchvision
  CNNs at `--size` px, in float32 or (`--precision bf16`) bfloat16.
- `--kernel linear`: linear layers on MKL's packed sgemm or on oneDNN
  (pipeline._float32_linear_kernel), on BERT-base with 128 tokens.

The tvmbridge contenders run TVM's code (never_slower=False) and differ only in that choice;
eager and frozen TorchScript run alongside, all interleaved. Accuracy is the largest
difference from eager.

    python bench/kernel_choice.py [--kernel conv] [--models resnet18 mobilenet_v2] [--batch 1]
                                  [--size 224] [--precision fp32] [--repeat 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import warnings
from unittest import mock

import torch
import torchvision

import tvmbridge.pipeline as pipeline
import tvmbridge.torch as tt
from bench_models import Bert
from tvmbridge.benchmark import cpu_flags, cpu_model, measure_interleaved, print_table, timed

MODELS = {"conv": ("resnet18", "mobilenet_v2", "resnet50", "efficientnet_b0",
                   "mobilenet_v3_large", "regnet_y_400mf", "densenet121", "squeezenet1_1",
                   "googlenet"),
          "linear": ("bert_base",)}
# Per kernel kind: the pipeline's function making the choice, and each contender's forced answer.
CHOICES = {
    "conv": ("convolution_kernel_choices", {
        "oneDNN convolutions": lambda *_, **__: (True,),
        "TVM's schedules": lambda *_, **__: (False,),
        "timed at build (default)": pipeline.convolution_kernel_choices}),
    "linear": ("_float32_linear_kernel", {"MKL linear": lambda: pipeline._PACKED_LINEAR,
                                          "oneDNN linear": lambda: pipeline._ONEDNN_LINEAR}),
}


def _model_and_input(name: str, batch: int, size: int):
    if name == "bert_base":
        return Bert().eval(), torch.randint(0, 30522, (batch, 128))
    options = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(weights=None, **options).eval()
    return model, torch.randn(batch, 3, size, size)


def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def run_model(name: str, kernel: str, batch: int, repeat: int, size: int = 224,
              precision: str = "fp32") -> list[str]:
    torch.manual_seed(0)
    model, x = _model_and_input(name, batch, size)
    chooser, answers = CHOICES[kernel]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _first(model(x))
        traced = torch.jit.trace(model, x, check_trace=False, strict=False)
        frozen = torch.jit.freeze(traced)
        runs = {"eager": (lambda: model(x), None),
                "frozen TorchScript": (lambda: frozen(x), None)}
        for label, answer in answers.items():
            with mock.patch.object(pipeline, chooser, answer):
                compiled, seconds = timed(
                    lambda: tt.compile(traced, [x], never_slower=False, precision=precision))
            runs[f"tvmbridge, {label}"] = (lambda c=compiled: c(x), seconds)
        timings = measure_interleaved({k: run for k, (run, _) in runs.items()},
                                      warmup=5, repeat=repeat)
        best = min(t.median_ms for t in timings.values())
        lines = []
        for label, (run, seconds) in runs.items():
            error = (_first(run()) - expected).abs().max().item()
            timing = timings[label]
            lines.append(f"| {name} | {label} | {'-' if seconds is None else f'{seconds:.1f}'} | "
                         f"{timing.median_ms:.2f} | {timing.iqr} | "
                         f"{best / timing.median_ms:.2f}x | {error:.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", choices=tuple(CHOICES), default="conv")
    parser.add_argument("--models", nargs="+", choices=sum(MODELS.values(), ()),
                        help="default: every model of the kernel kind")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=224, help="image height and width")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    models = args.models or MODELS[args.kernel]
    header = [f"Machine: {cpu_model()}, flags {' '.join(cpu_flags())}, "
              f"{torch.get_num_threads()} threads; torch {torch.__version__}; batch {args.batch}, "
              f"{args.size} px images, 128 tokens; tvmbridge in {args.precision}; {args.repeat} "
              "interleaved runs per contender after 5 warm-up runs.", "",
              "| model | contender | compile s | median ms | IQR ms | speed vs fastest | "
              "max abs error vs eager |", "|---|---|---:|---:|---|---:|---:|"]
    print_table(header, lambda name: run_model(name, args.kernel, args.batch, args.repeat,
                                               args.size, args.precision),
                models, args.out)


if __name__ == "__main__":
    main()
