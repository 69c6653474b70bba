"""What the value checks cost: each model's Relax module (from_torchscript, weights embedded)
built twice with tvmbridge's pipeline and run by the Relax VM, interleaved:

- checked: as shipped (index and division checks, NaN- and infinity-keeping max/min);
- unchecked: the checks removed (and the reductions feeding them, by dead-code elimination),
  and clip/relu/max/min lowered as before issue 20 (clip as min(max(x, lo), hi), nothing else).

Random weights, no downloads. Writes a markdown table with the CPU's model and flags.

    python bench/value_checks_cost.py --out bench/results/<cpu>/value_checks.md
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import time
import warnings
from unittest import mock

import numpy as np
import torch
import tvm
from tvm import relax

import tvmbridge.torch as tt
from bench_models import Bert
from tvmbridge import build, pipeline

warnings.simplefilter("ignore")


def models():
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    mobilenet = torchvision.models.mobilenet_v2(weights=None).eval()

    bert = Bert().eval()
    image = torch.randn(1, 3, 224, 224)
    ids = torch.randint(0, 30522, (1, 128))
    with torch.no_grad():
        yield "ResNet-18", torch.jit.trace(resnet, image), image
        yield "MobileNet-V2", torch.jit.trace(mobilenet, image), image
        yield "BERT-base seq 128", torch.jit.trace(bert, ids, strict=False), ids


CHECK = "tvmbridge.check_values"


@relax.expr_functor.mutator
class _WithoutChecks(relax.PyExprMutator):
    def visit_call_(self, call):
        call = super().visit_call_(call)
        is_check = isinstance(call.op, relax.ExternFunc) and call.op.global_symbol == CHECK
        return relax.Tuple([]) if is_check else call


@relax.expr_functor.mutator
class _ClipOnly(relax.PyExprMutator):
    """The rewrite the pipeline made before issue 20: clip as min(max(x, lo), hi)."""

    _clip = tvm.ir.Op.get("relax.clip")

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if call.op != self._clip:
            return call
        data, low, high = call.args
        dtype = call.ty.dtype
        return relax.op.minimum(relax.op.maximum(data, relax.const(float(low.value), dtype)),
                                relax.const(float(high.value), dtype))


def _module_pass(mutator_class, name):
    @tvm.transform.module_pass(opt_level=0, name=name)
    def rewrite(mod, _ctx):
        mutator = mutator_class()
        for global_var, func in mod.functions.items():
            if isinstance(func, relax.Function):
                mod[global_var] = mutator.visit_expr(func)
        return mod
    return rewrite


def virtual_machine(mod, target, checked: bool):
    rewrite_min_max = contextlib.nullcontext()
    if not checked:
        mod = _module_pass(_WithoutChecks, "without_checks")(mod)
        mod = relax.transform.DeadCodeElimination()(mod)
        # The pipeline's NaN-keeping max/min rewrite, replaced by the old clip lowering.
        rewrite_min_max = mock.patch.object(pipeline, "_NanPropagatingMinMax", _ClipOnly)
    with rewrite_min_max:
        executable = tvm.compile(mod, target=target,
                                 relax_pipeline=build._pipeline(target, None, "fp32", True))
    return relax.VirtualMachine(executable, tvm.cpu())["main"]


def cpu_description() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = [f for f in fields.get("Flags", "").split()
             if f.startswith(("avx512", "amx")) or f in ("avx2", "fma")]
    return f"{fields.get('Model name', '?').strip()}; {' '.join(flags)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    target = build.host_target()
    rows = []
    for name, traced, x in models():
        mod, _ = tt.from_torchscript(traced, [x], keep_params_as_input=False)
        text = mod.script()
        checks = text.count(CHECK)
        functions = {"checked": virtual_machine(mod, target, True),
                     "unchecked": virtual_machine(mod, target, False)}
        argument = tvm.runtime.tensor(x.numpy())
        outputs = {k: f(argument) for k, f in functions.items()}
        for k, out in outputs.items():
            outputs[k] = (out[0] if isinstance(out, tvm.ir.Array) else out).numpy()
        agree = np.allclose(outputs["checked"], outputs["unchecked"], rtol=1e-5, atol=1e-5)
        samples = {k: [] for k in functions}
        for _ in range(5):
            for f in functions.values():
                f(argument)
        for _ in range(args.rounds):  # interleaved: drifts touch both alike
            for k, f in functions.items():
                start = time.perf_counter()
                f(argument)
                samples[k].append((time.perf_counter() - start) * 1e3)
        median = {k: statistics.median(v) for k, v in samples.items()}
        spread = {k: (np.percentile(v, 75) - np.percentile(v, 25)) for k, v in samples.items()}
        rows.append((name, checks, median["checked"], spread["checked"], median["unchecked"],
                     spread["unchecked"], median["checked"] / median["unchecked"], agree))
        print(rows[-1], flush=True)
    lines = [f"CPU: {cpu_description()}",
             f"Command: `python bench/value_checks_cost.py --rounds {args.rounds}` "
             f"(2 threads, {args.rounds} interleaved rounds after 5 warm-up calls)", "",
             "| model | checks | checked ms (IQR) | unchecked ms (IQR) | checked / unchecked "
             "| outputs agree |", "|---|---:|---:|---:|---:|---|"]
    for name, checks, mc, sc, mu, su, ratio, agree in rows:
        lines.append(f"| {name} | {checks} | {mc:.2f} ({sc:.2f}) | {mu:.2f} ({su:.2f}) | "
                     f"{ratio:.3f} | {'yes' if agree else 'NO'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        import os

        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
