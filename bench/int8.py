"""Quantized (int8) models against PyTorch's int8 kernels, in one run on one machine: torchvision's
quantizable CNNs, eager-mode static quantization (fused, ``x86`` qconfig, calibrated on random
images, random weights), and BERT-base with dynamically quantized linear layers
(``quantize_dynamic``, 128 tokens), run by PyTorch eager and frozen TorchScript, and by
tvmbridge with the default settings (never_slower) and with TVM's code alone
(never_slower=False). Reports how many nodes TVM runs, the largest difference from PyTorch's
int8 output (in steps of its output scale; for BERT, of its largest magnitude), and latency
(median and interquartile range of interleaved runs) with ratios to the fastest PyTorch
contender.

    python bench/int8.py [--models resnet18] [--batch 8] [--repeat 30] [--out FILE]
    make bench-int8
"""

from __future__ import annotations

import argparse
import time
import warnings
from math import inf

import torch
import torch.ao.quantization as tq
import torchvision.models.quantization as quantizable

import tvmbridge.torch as tt
from bench_models import Bert
from tvmbridge.benchmark import cpu_flags, cpu_model, measure_interleaved, print_table

MODELS = ("resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "bert_base_dynamic")


def quantized_model(name: str) -> torch.nn.Module:
    """torchvision's quantizable `name`, statically quantized for x86 on random weights."""
    model = getattr(quantizable, name)(weights=None, quantize=False).eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("x86")
    tq.prepare(model, inplace=True)
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(2, 3, 224, 224))
    return tq.convert(model)


def dynamic_bert() -> torch.nn.Module:
    """BERT-base (random weights) with its linear layers dynamically quantized to int8."""
    return tq.quantize_dynamic(Bert().eval(), {torch.nn.Linear}, dtype=torch.qint8)


def _with_embeddings_nudged(model):
    """`model` (dynamic_bert) run with its embeddings' output moved up by one ulp: how far
    PyTorch's own int8 BERT moves when its activations differ in the last bit (each linear
    layer quantizes them at run time), the yardstick for tvmbridge's difference."""
    embeddings = model.bert.embeddings

    def run(x):
        handle = embeddings.register_forward_hook(
            lambda module, inputs, output: torch.nextafter(output, torch.full_like(output, inf)))
        try:
            return model(x)
        finally:
            handle.remove()
    return run


def _difference(name: str, model, actual: torch.Tensor, expected: torch.Tensor) -> str:
    error = (actual - expected).abs().max()
    if name == "bert_base_dynamic":
        return f"{100 * (error / expected.abs().max()).item():.2f}% of max"
    output_scale = model.fc.scale if hasattr(model, "fc") else model.classifier[-1].scale
    return f"{(error / output_scale).item():.0f} steps"


def run_model(name: str, repeat: int, batch: int = 1) -> list[str]:
    torch.manual_seed(0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "bert_base_dynamic":
            model, x = dynamic_bert(), torch.randint(0, 30522, (batch, 128))
        else:
            model, x = quantized_model(name), torch.randn(batch, 3, 224, 224)
        expected = model(x)
        traced = torch.jit.trace(model, x, check_trace=False, strict=False)
        frozen = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False, strict=False))
        compiled, compile_s = {}, {}
        for label, never_slower in (("tvmbridge default", True), ("tvmbridge TVM", False)):
            started = time.perf_counter()
            compiled[label] = tt.compile(traced, [x], never_slower=never_slower)
            compile_s[label] = time.perf_counter() - started
        runs = {"PyTorch int8 eager": lambda: model(x),
                "PyTorch int8 frozen TorchScript": lambda: frozen(x),
                **{label: (lambda module=module: module(x)) for label, module in compiled.items()}}
        if name == "bert_base_dynamic":
            nudged = _with_embeddings_nudged(model)
            runs["PyTorch int8 eager, embeddings 1 ulp up"] = lambda: nudged(x)
        timings = measure_interleaved(runs, warmup=5, repeat=repeat)
        best_pytorch = min(t.median_ms for k, t in timings.items() if k.startswith("PyTorch"))
        lines = []
        for label, run in runs.items():
            difference = _difference(name, model, run(), expected)
            in_tvm = "-"
            if label in compiled:
                nodes = tt.report(compiled[label]).nodes
                in_tvm = f"{sum(n['region'] >= 0 for n in nodes)} of {len(nodes)}"
            timing = timings[label]
            seconds = compile_s.get(label)
            lines.append(f"| {name} | {label} | {in_tvm} | "
                         f"{f'{seconds:.1f}' if seconds is not None else '-'} | "
                         f"{timing.median_ms:.2f} | {timing.iqr} | "
                         f"{best_pytorch / timing.median_ms:.2f}x | {difference} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    header = [
        f"Machine: {cpu_model()}, flags {' '.join(cpu_flags())}, {torch.get_num_threads()} "
        f"threads; torch {torch.__version__}, quantized engine "
        f"{torch.backends.quantized.engine}; batch {args.batch}, 224 px images; {args.repeat} "
        "interleaved runs per contender after 5 warm-up runs. Difference: the largest from "
        "PyTorch's int8 eager output, in steps of the output's scale (BERT: of its largest "
        "magnitude).",
        "",
        "| model | contender | nodes in TVM | compile s | median ms | IQR ms | "
        "speed vs best PyTorch | difference |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    print_table(header, lambda name: run_model(name, args.repeat, args.batch), args.models,
                args.out)


if __name__ == "__main__":
    main()
