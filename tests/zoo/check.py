"""Compiles one zoo model and compares it with PyTorch on the same (random) weights."""

from __future__ import annotations

import dataclasses
import time

import torch

import tvmbridge.torch as tt
from models import ZOO


@dataclasses.dataclass
class Result:
    model: str
    way: str
    fully_converted: bool
    torch_nodes: int
    max_abs_diff: float
    max_abs_output: float
    compile_s: float


def output_tensors(out) -> tuple:
    """The tensors of an output: a tensor, a dict or a (named) tuple; None entries (scripted
    GoogLeNet's missing auxiliary logits, which eager mode leaves out) are dropped."""
    if isinstance(out, torch.Tensor):
        return (out,)
    values = out.values() if isinstance(out, dict) else out
    return tuple(t for t in values if t is not None)


def _dequantized_scales(model: torch.nn.Module, inputs: tuple) -> list:
    """The quantization scale of each tensor a quantized model dequantizes, in call order."""
    from torch.ao.nn.quantized import DeQuantize

    scales = []
    hooks = [m.register_forward_pre_hook(lambda _, args: scales.append(args[0].q_scale()))
             for m in model.modules() if isinstance(m, DeQuantize)]
    model(*inputs)
    for hook in hooks:
        hook.remove()
    return scales


def check(name: str, way: str) -> Result:
    """Traces or scripts the model, compiles it with no fallback allowed and asserts it
    matches eager PyTorch on a new input: rtol = the spec's tolerance, atol = the same times
    the output's largest magnitude (at least 1)."""
    spec = ZOO[name]
    torch.manual_seed(0)
    model = spec.build()
    inputs = spec.inputs()
    with torch.no_grad():
        if way == "trace":
            ts = torch.jit.trace(model, inputs, check_trace=False, strict=False)
        else:
            ts = torch.jit.script(model)
        started = time.perf_counter()
        compiled = tt.compile(ts, list(inputs), require_full_compilation=True, never_slower=False)
        compile_s = time.perf_counter() - started
        report = tt.report(compiled)
        torch.manual_seed(1)
        inputs = spec.inputs()
        expected, actual = output_tensors(model(*inputs)), output_tensors(compiled(*inputs))
    assert len(actual) == len(expected)
    steps = _dequantized_scales(model, inputs) if spec.quantized_steps else [None] * len(actual)
    worst = scale = 0.0
    for e, a, step in zip(expected, actual, steps):
        assert a.shape == e.shape and a.dtype == e.dtype
        # float32 rounding grows with the values summed: the absolute tolerance is relative to
        # the output's largest magnitude (random-weight ResNet-50 logits reach ~340).
        magnitude = e.abs().max().item()
        if step is not None:
            torch.testing.assert_close(a, e, rtol=0, atol=spec.quantized_steps * step * 1.001)
        else:
            torch.testing.assert_close(a, e, rtol=spec.tolerance,
                                       atol=spec.tolerance * max(1.0, magnitude))
        worst = max(worst, (a.double() - e.double()).abs().max().item())
        scale = max(scale, magnitude)
    torch_nodes = len(report.torch_nodes)
    return Result(name, way, torch_nodes == 0, torch_nodes, worst, scale, compile_s)
