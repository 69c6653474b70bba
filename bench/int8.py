"""Quantized (int8) models against PyTorch's int8 kernels, in one run on one machine:
torchvision's quantizable CNNs, eager-mode static quantization (fused, ``x86`` qconfig,
calibrated on random images, random weights), and BERT-base with dynamically quantized linear
layers (``quantize_dynamic``, 128 tokens), run by PyTorch eager and frozen TorchScript, and by
tvmbridge with the default settings (never_slower) and with TVM's code alone
(never_slower=False); and ResNet-18, MobileNet-V2 and BERT-base quantized through PT2E
(torchao's prepare_pt2e / convert_pt2e, X86InductorQuantizer), run by Inductor with freezing
and by tvmbridge's ``ir="export"``, with ONNX Runtime's own static int8 quantization of the
same float model as the peer. Reports how many nodes TVM runs, the largest difference from
PyTorch's int8 output (in steps of its output scale; for BERT and PT2E, of its largest
magnitude), and latency (median and interquartile range of interleaved runs) with ratios to
the fastest PyTorch contender.

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
import torchvision
import torchvision.models.quantization as quantizable

import tvmbridge.torch as tt
from bench_models import Bert
from tvmbridge.benchmark import cpu_flags, cpu_model, measure_interleaved, print_table

MODELS = ("resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "bert_base_dynamic",
          "resnet18_pt2e", "mobilenet_v2_pt2e", "bert_base_pt2e")


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


def _pt2e_source(name: str) -> tuple:
    """(the float model, a maker of its input for a batch size) for a `*_pt2e` row: random
    weights, batch norms too. ResNet-18 is torchvision's quantizable variant, whose blocks do
    not reuse one ReLU module (torchao 0.18 refuses torchvision's plain ResNet-18 for that)."""
    if name == "bert_base":
        return Bert().eval(), lambda batch: torch.randint(0, 30522, (batch, 128))
    source = quantizable if name == "resnet18" else torchvision.models
    model = _randomise_batch_norms(getattr(source, name)(weights=None).eval())
    return model, lambda batch: torch.randn(batch, 3, 224, 224)


def quantize_pt2e(model: torch.nn.Module, make_input, batch: int) -> tuple:
    """`model` quantized through PT2E (exported, annotated by X86InductorQuantizer's default
    config, calibrated on 4 random inputs, converted), and an input for it."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer().set_global(
        x86.get_default_x86_inductor_quantization_config())
    x = make_input(batch)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), quantizer)
    for _ in range(4):
        prepared(make_input(batch))
    return convert_pt2e(prepared), x


def _onnxruntime_qdq(model: torch.nn.Module, make_input, x: torch.Tensor):
    """`model` exported to ONNX and quantized by ONNX Runtime's own static quantization (QDQ,
    uint8 activations, int8 weights per channel, calibrated on 4 random inputs), as a run of
    `x`: ONNX Runtime's int8 for the same float model."""
    import os
    import tempfile

    import onnxruntime as ort
    from onnxruntime import quantization

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": make_input(len(x)).numpy()} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="tvmbridge-int8-") as work:
        float_path, int8_path = os.path.join(work, "float.onnx"), os.path.join(work, "int8.onnx")
        torch.onnx.export(model, (x,), float_path, input_names=["x"], dynamo=False)
        quantization.quantize_static(float_path, int8_path, Calibration(),
                                     quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                                     activation_type=quantization.QuantType.QUInt8,
                                     weight_type=quantization.QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(int8_path, options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: torch.from_numpy(session.run(None, feed)[0])


def _randomise_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Batch norms with random statistics and affine parameters: with torchvision's initial
    ones MobileNet-V2's outputs are about 1e-9, which the output's quantization turns to 0."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def _inductor_frozen(model):
    """``torch.compile(model)`` with Inductor freezing on, as PT2E's x86 tutorial runs it."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model)


def run_pt2e_model(name: str, repeat: int, batch: int) -> list[str]:
    """PT2E's model run by Inductor (its int8 kernels) and eager (the reference graph), and by
    tvmbridge through ir="export"; differences from eager in steps of the output's scale
    where the output is quantized, else as a share of its largest magnitude."""
    torch.manual_seed(0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        float_model, make_input = _pt2e_source(name)
        model, x = quantize_pt2e(float_model, make_input, batch)
        expected = model(x)
        compiled, compile_s = {}, {}
        started = time.perf_counter()
        compiled["ONNX Runtime int8 (its own QDQ quantization)"] = _onnxruntime_qdq(
            float_model, make_input, x)
        compile_s["ONNX Runtime int8 (its own QDQ quantization)"] = time.perf_counter() - started
        started = time.perf_counter()
        compiled["PyTorch int8 Inductor (freezing)"] = _inductor_frozen(model)
        compiled["PyTorch int8 Inductor (freezing)"](x)
        compile_s["PyTorch int8 Inductor (freezing)"] = time.perf_counter() - started
        for label, never_slower in (("tvmbridge ir=export default", True),
                                    ("tvmbridge ir=export TVM", False)):
            started = time.perf_counter()
            compiled[label] = tt.compile(model, [x], ir="export", never_slower=never_slower)
            compile_s[label] = time.perf_counter() - started
        onnxruntime = compiled.pop("ONNX Runtime int8 (its own QDQ quantization)")
        runs = {"PyTorch int8 PT2E eager (reference graph)": lambda: model(x),
                **{label: (lambda module=module: module(x)) for label, module in compiled.items()},
                "ONNX Runtime int8 (its own QDQ quantization)": onnxruntime}
        timings = measure_interleaved(runs, warmup=5, repeat=repeat)
        best_pytorch = min(t.median_ms for k, t in timings.items() if k.startswith("PyTorch"))
        lines = []
        for label, run in runs.items():
            error = (run() - expected).abs().max()
            difference = f"{100 * (error / expected.abs().max()).item():.2f}% of max"
            in_tvm = "-"
            if label.startswith("tvmbridge"):
                report = tt.report(compiled[label])
                in_tvm = f"{report.tvm_nodes} of {report.tvm_nodes + sum(report.torch_ops.values())}"
            timing, seconds = timings[label], compile_s.get(label)
            lines.append(f"| {name}_pt2e | {label} | {in_tvm} | "
                         f"{f'{seconds:.1f}' if seconds is not None else '-'} | "
                         f"{timing.median_ms:.2f} | {timing.iqr} | "
                         f"{best_pytorch / timing.median_ms:.2f}x | {difference} |")
    return lines


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
    if name.endswith("_pt2e"):
        return run_pt2e_model(name.removesuffix("_pt2e"), repeat, batch)
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
        "magnitude). PT2E rows (`*_pt2e`: torchao's prepare_pt2e/convert_pt2e with "
        "X86InductorQuantizer) compare against the converted model run eager, which "
        "computes the quantized ops in float32 (PT2E's reference), as a share of the "
        "output's largest magnitude.",
        "",
        "| model | contender | nodes in TVM | compile s | median ms | IQR ms | "
        "speed vs best PyTorch | difference |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    print_table(header, lambda name: run_model(name, args.repeat, args.batch), args.models,
                args.out)


if __name__ == "__main__":
    main()
