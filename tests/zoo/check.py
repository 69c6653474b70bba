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
    compile_s: float


def _tensors(out) -> tuple:
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, dict):
        return tuple(out.values())
    return tuple(t for t in out)


def check(name: str, way: str) -> Result:
    """Traces or scripts the model, compiles it with no fallback allowed and asserts it
    matches PyTorch within the spec's tolerance on a new input."""
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
        expected, actual = _tensors(model(*inputs)), _tensors(compiled(*inputs))
    assert len(actual) == len(expected)
    worst = 0.0
    for e, a in zip(expected, actual):
        assert a.shape == e.shape and a.dtype == e.dtype
        torch.testing.assert_close(a, e, rtol=spec.tolerance, atol=spec.tolerance)
        worst = max(worst, (a.double() - e.double()).abs().max().item())
    torch_nodes = len(report.torch_nodes)
    return Result(name, way, torch_nodes == 0, torch_nodes, worst, compile_s)
