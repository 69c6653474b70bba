"""The three ways into tvmbridge on the same models, in one run on one machine: TorchScript
(tvmbridge.torch.compile), torch.export (ir="export") and torch.compile(backend="tvmbridge"),
against eager PyTorch. Reports compile time, how much each path converts, and latency (median
and interquartile range of interleaved runs) as ratios to eager. Every path runs with
never_slower=False: the table compares TVM's code on each path, not the fallback decision.

    python bench/export_paths.py [--repeat 30] [--survey] [--out bench/results/export_paths.md]
    make bench-paths BENCH_ARGS=--survey
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torchvision

import tvmbridge.export as tx
from tvmbridge import export_ops
import tvmbridge.torch as tt
from bench_models import Bert
from tvmbridge.benchmark import cpu_model, measure_interleaved, timed

MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None),
                 lambda: torch.randn(1, 3, 224, 224)),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(weights=None),
                           lambda: torch.randn(1, 3, 224, 224)),
    "bert_base": (Bert, lambda: torch.randint(0, 30522, (1, 128))),
}


def run_model(name: str, repeat: int) -> list[str]:
    torch.manual_seed(0)
    build, inputs = MODELS[name]
    model, x = build().eval(), inputs()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(x)
        traced = torch.jit.trace(model, x, check_trace=False, strict=False)
        torchscript, ts_s = timed(lambda: tt.compile(traced, [x], never_slower=False))
        exported, ex_s = timed(lambda: tt.compile(model, [x], ir="export", never_slower=False))
        torch._dynamo.reset()
        reports = []

        def backend(gm, example_inputs):
            run = tx.backend(gm, example_inputs, never_slower=False)
            reports.append(run.tvmbridge_report)
            return run

        dynamo = torch.compile(model, backend=backend)
        _, dy_s = timed(lambda: dynamo(x))
        runs = {"eager": lambda: model(x), "torchscript path": lambda: torchscript(x),
                "export path": lambda: exported(x), "torch.compile path": lambda: dynamo(x)}
        diffs = {k: (run() - expected).abs().max().item() for k, run in runs.items()}
        timings = measure_interleaved(runs, warmup=5, repeat=repeat)
    ts_report = tt.report(torchscript)
    left = {"torchscript path": len(ts_report.torch_nodes),
            "export path": sum(exported.tvmbridge_report.torch_ops.values()),
            "torch.compile path": sum(sum(r.torch_ops.values()) for r in reports)}
    regions = {"torchscript path": len(ts_report.regions),
               "export path": exported.tvmbridge_report.regions,
               "torch.compile path": sum(r.regions for r in reports)}
    compile_s = {"torchscript path": ts_s, "export path": ex_s, "torch.compile path": dy_s}
    eager = timings["eager"].median_ms
    rows = []
    for contender, timing in timings.items():
        if contender == "eager":
            about = "- | - | -"
        else:
            about = f"{regions[contender]} | {left[contender]} | {compile_s[contender]:.1f}"
        rows.append(f"| {name} | {contender} | {about} | {timing.median_ms:.2f} | {timing.iqr} |"
                    f" {eager / timing.median_ms:.2f}x | {diffs[contender]:.1e} |")
    return rows


def survey(names=None) -> list[str]:
    """Every model of the zoo (tests/zoo/models.py) through ir="export": regions, the ATen ops
    left to PyTorch, and the largest difference from eager."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "zoo"))
    from models import ZOO

    lines = ["| model | TVM regions | ops left to PyTorch | max abs diff | compile s |",
             "|---|---:|---|---:|---:|"]
    for name, spec in ZOO.items():
        if names and name not in names:
            continue
        torch.manual_seed(0)
        try:
            model, inputs = spec.build(), spec.inputs()
            compiled, seconds = timed(lambda: tt.compile(model, list(inputs), ir="export",
                                                          never_slower=False))
            with torch.no_grad():
                expected, actual = model(*inputs), compiled(*inputs)
            pairs = zip(*(torch.utils._pytree.tree_leaves(o) for o in (expected, actual)))
            diff = max(((e.float() - a.float()).abs().max().item() for e, a in pairs),
                       default=0.0)
            report = compiled.tvmbridge_report
            left = ", ".join(f"{op} ({n})" for op, n in sorted(report.torch_ops.items())) or "-"
            if report.failed_regions:
                left += f" [TVM failed on {len(report.failed_regions)} region(s): " \
                        f"{report.failed_regions[0][:80]}]"
            lines.append(f"| {name} | {report.regions} | {left} | {diff:.1e} | {seconds:.1f} |")
        except Exception as error:  # a model torch.export or TVM's translator cannot take
            lines.append(f"| {name} | - | failed: {str(error).splitlines()[0][:120]} | - | - |")
        print(lines[-1], flush=True)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", default=None)
    parser.add_argument("--survey", nargs="*", default=None, metavar="MODEL",
                        help="also put the zoo's models (all, or those named) through "
                             "ir='export' (tens of minutes for all)")
    args = parser.parse_args(argv)
    lines = [
        f"Machine: {cpu_model()}, "
        f"{torch.get_num_threads()} threads; torch {torch.__version__}; "
        f"{args.repeat} interleaved runs per contender after 5 warm-up runs.",
        "",
        f"TVM's ExportedProgram translator converts {len(export_ops.translatable_ops())} ATen "
        f"overloads; tvmbridge's TorchScript frontend {len(tt.supported_ops())} op kinds.",
        "",
        "| model | path | TVM regions | ops left to PyTorch | compile s | median ms | IQR ms |"
        " speed vs eager | max abs diff |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name in args.models:
        lines += run_model(name, args.repeat)
        print("\n".join(lines[-4:]), flush=True)
    if args.survey is not None:
        lines += ["", "The model zoo through ir=\"export\":", ""] + survey(args.survey)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
