"""make bench: tvmbridge against every peer, side by side, on this machine.

    python bench/benchmark.py [--models resnet18,mobilenet_v2,bert] [--batches 1,8]
                              [--repeat 50] [--trials 2000] [--time-budget 30min]

Models: torchvision classifiers at 224x224 for each batch size, and BERT-base
(transformers, random weights) at sequence length 128, batch 1.

Contenders (each where its package is installed; `make bench` installs
requirements-bench.txt): PyTorch eager (no_grad), TorchScript (scripted, frozen,
optimize_for_inference), torch.compile (Inductor), ONNX Runtime (all graph optimisations),
OpenVINO (fp32, and bf16 through INFERENCE_PRECISION_HINT), PyTorch eager in bf16 (model cast),
TVM's own PyTorch path (torch.export -> from_exported_program -> TVM's default pipeline),
tvmbridge untuned (TVM everywhere, and with the default never-slower check), tvmbridge tuned
(MetaSchedule, records in the shared tuning database), tvmbridge enable() (the JIT pass on the
frozen module). Also measured: the per-call overhead of the embedded op (a one-element graph)
against calling TVM's VM function directly, and enable()'s first calls in a fresh process
with a cold and a warm disk cache.
Contenders take turns call by call (interleaved); threads = cores for all. Each row gives its
ratio to the fastest peer (not tvmbridge or TVM) of the same precision. Writes
bench/results/<cpu>/benchmark.{json,md,png} with the machine's CPU, flags, core count and
versions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

THREADS = os.cpu_count() or 1
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402
import torchvision  # noqa: E402

import tvmbridge.torch as tt  # noqa: E402
from tvmbridge.benchmark import (  # noqa: E402
    cpu_flags, cpu_model, cpu_slug, measure_interleaved, per_call_lines, per_call_us, repeated)


def versions() -> dict:
    found = {}
    for package in ("torch", "torchvision", "apache-tvm", "apache-tvm-ffi", "onnxruntime",
                    "onnx", "openvino", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


SLOW_SECONDS = 1.0
SLOW_REPEAT = 5
SLOW_BUDGET_SECONDS = 30
# Between calls, so that thread pools left spinning by one contender do not slow the next.
PAUSE_SECONDS = 0.02


# Each maker returns a callable running one inference on `inputs`, or raises to be reported.
# `case.torchscript` is the scripted (or, for BERT, traced) module tvmbridge starts from.

def make_eager(case, args):
    return lambda: case.model(*case.inputs)


def make_torchscript(case, args):
    optimized = torch.jit.optimize_for_inference(torch.jit.freeze(case.torchscript))
    return lambda: optimized(*case.inputs)


def make_torch_compile(case, args):
    compiled = torch.compile(case.model)
    compiled(*case.inputs)  # compiles here, not in the warm-up
    return lambda: compiled(*case.inputs)


def make_onnxruntime(case, args):
    import onnxruntime as ort

    names = [f"input_{i}" for i in range(len(case.inputs))]
    buffer = io.BytesIO()
    torch.onnx.export(case.model, case.inputs, buffer, input_names=names, dynamo=False)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = THREADS
    # Its workers would otherwise busy-wait after each run, on the cores the next contender
    # needs (measured: tvmbridge 42 ms right after ONNX Runtime, 21 ms alone).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {name: tensor.numpy() for name, tensor in zip(names, case.inputs)}
    return lambda: session.run(None, feed)


def make_eager_bf16(case, args):
    model = _bf16_copy(case.model)
    inputs = [i.bfloat16() if i.is_floating_point() else i for i in case.inputs]
    return lambda: model(*inputs)


def _bf16_copy(model):
    import copy

    return copy.deepcopy(model).to(torch.bfloat16)


def _make_openvino(precision):
    def make(case, args):
        import openvino as ov

        core = ov.Core()
        model = ov.convert_model(case.model, example_input=case.inputs)
        config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": THREADS,
                  "PERFORMANCE_HINT": "LATENCY"}
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        feed = [tensor.numpy() for tensor in case.inputs]
        return lambda: request.infer(feed)[0]

    return make


def make_tvm_exported_program(case, args):
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    from tvmbridge.build import host_target

    exported = torch.export.export(case.model, case.inputs)
    mod = from_exported_program(exported, keep_params_as_input=False)
    target = host_target()
    vm = relax.VirtualMachine(tvm.compile(mod, target=target), tvm.cpu())
    main = vm["main"]
    tvm_inputs = [tvm.runtime.from_dlpack(tensor) for tensor in case.inputs]
    return lambda: main(*tvm_inputs)


def make_tvmbridge_tvm_only(case, args):
    compiled = tt.compile(case.torchscript, list(case.inputs), never_slower=False)
    return lambda: compiled(*case.inputs)


def make_tvmbridge(case, args):
    compiled = tt.compile(case.torchscript, list(case.inputs))
    return lambda: compiled(*case.inputs)


def make_tvmbridge_bf16(case, args):
    compiled = tt.compile(case.torchscript, list(case.inputs), precision="bf16")
    return lambda: compiled(*case.inputs)


def make_tvmbridge_enable(case, args):
    # enable() works on any TorchScript module; a frozen one gives TVM whole graphs (an
    # unfrozen scripted module's BatchNorm training checks would split them).
    frozen = torch.jit.freeze(case.torchscript)
    with tt.enabled(cache_dir=None):
        for _ in range(3):  # TorchScript's profiling run, then the groups' first call
            frozen(*case.inputs)
    return lambda: frozen(*case.inputs)


def make_tvmbridge_tuned(case, args):
    tuning = tt.Tuning(trials=args.trials, database=args.database or tt.Tuning.database,
                       time_budget=args.time_budget)
    started = time.perf_counter()
    compiled = tt.compile(case.torchscript, list(case.inputs), tuning=tuning)
    args.tuning_seconds[case.label] = round(time.perf_counter() - started, 1)
    return lambda: compiled(*case.inputs)


CONTENDERS = {
    "PyTorch eager": make_eager,
    "TorchScript (frozen, optimize_for_inference)": make_torchscript,
    "torch.compile (Inductor)": make_torch_compile,
    "ONNX Runtime": make_onnxruntime,
    "OpenVINO fp32": _make_openvino("f32"),
    "TVM from_exported_program (untuned)": make_tvm_exported_program,
    "tvmbridge untuned, TVM only (never_slower=False)": make_tvmbridge_tvm_only,
    "tvmbridge untuned (default: never slower)": make_tvmbridge,
    "tvmbridge enable() (JIT pass, untuned)": make_tvmbridge_enable,
    "tvmbridge tuned": make_tvmbridge_tuned,
    "PyTorch eager bf16": make_eager_bf16,
    "OpenVINO bf16": _make_openvino("bf16"),
    "tvmbridge bf16 (precision=\"bf16\", never slower)": make_tvmbridge_bf16,
}
BF16_CONTENDERS = {name for name in CONTENDERS if "bf16" in name}


def precision_of(contender: str) -> str:
    return "bf16" if contender in BF16_CONTENDERS else "fp32"


def is_peer(contender: str) -> bool:
    """The tools a CPU user has today (TVM's own path is not one: tvmbridge replaces it)."""
    return not contender.startswith(("tvmbridge", "TVM "))


def check_accuracy(contender: str, actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float32 contenders within 1e-3 of eager; bfloat16 ones within README's stated accuracy
    (cosine similarity >= 0.999, largest error <= 3% of the output's magnitude)."""
    actual = actual.float()
    if precision_of(contender) == "fp32":
        diff = (actual - expected).abs().max().item()
        if diff > 1e-3:
            raise RuntimeError(f"output differs from PyTorch by {diff:.3g}")
        return
    cosine = torch.nn.functional.cosine_similarity(actual.flatten(), expected.flatten(), dim=0)
    relative = ((actual - expected).abs().max() / expected.abs().max()).item()
    if cosine.item() < 0.999 or relative > 0.03:
        raise RuntimeError(f"bf16 output off: cosine {cosine.item():.5f}, largest error "
                           f"{relative:.3g} of the output's magnitude")


def _first_output(result) -> torch.Tensor:
    """The first output of any contender (a tensor, a tuple, ONNX Runtime's list of arrays,
    a TVM tensor or TVM array) as a torch tensor."""
    if isinstance(result, torch.Tensor):
        return result
    if hasattr(result, "numpy"):
        return torch.from_numpy(result.numpy())
    return _first_output(result[0]) if not hasattr(result, "shape") else torch.as_tensor(result)


@dataclass
class Case:
    label: str
    model: torch.nn.Module
    inputs: tuple
    torchscript: torch.jit.ScriptModule


class BertEncoder(torch.nn.Module):
    """BERT-base's encoder output (random weights) from token ids and an attention mask."""

    def __init__(self):
        super().__init__()
        import transformers

        self.bert = transformers.BertModel(transformers.BertConfig()).eval()

    def forward(self, ids, mask):
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


def make_case(name: str, batch: int) -> Case:
    torch.manual_seed(0)
    if name == "bert":
        model = BertEncoder().eval()
        inputs = (torch.randint(0, model.bert.config.vocab_size, (batch, 128)),
                  torch.ones(batch, 128, dtype=torch.int64))
        with torch.no_grad():  # transformers models script poorly; tracing is their path
            torchscript = torch.jit.trace(model, inputs)
        return Case(f"bert-base seq 128, batch {batch}", model, inputs, torchscript)
    model = getattr(torchvision.models, name)(weights=None).eval()
    inputs = (torch.randn(batch, 3, 224, 224),)
    return Case(f"{name}, batch {batch}", model, inputs, torch.jit.script(model))


def run_case(case: Case, args) -> dict:
    runs, errors, call_seconds = {}, {}, {}
    with torch.no_grad():
        expected = case.model(*case.inputs)
        for contender, make in CONTENDERS.items():
            if contender in args.skip:
                continue
            print(f"  preparing {contender} ...", file=sys.stderr, flush=True)
            try:
                run = make(case, args)
                check_accuracy(contender, _first_output(run()), expected)
                started = time.perf_counter()  # a second call: the first one sets up
                run()
                call_seconds[contender] = time.perf_counter() - started
                runs[contender] = run
            except Exception as error:  # report and go on: one broken peer must not end the run
                errors[contender] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                traceback.print_exc(limit=2, file=sys.stderr)
        # Contenders slower than SLOW_SECONDS a call (unscheduled TVM) would stretch the
        # interleaved rounds to hours: they are timed on their own, with fewer runs. BERT-base
        # takes 0.05-0.3 s a call: it stays interleaved.
        slow = {k: v for k, v in runs.items() if call_seconds[k] > SLOW_SECONDS}
        fast = {k: v for k, v in runs.items() if k not in slow}
        print(f"  timing {len(fast)} contenders, {args.repeat} interleaved rounds",
              file=sys.stderr, flush=True)
        timings = measure_interleaved(fast, args.warmup, args.repeat, PAUSE_SECONDS)
        for contender, run in slow.items():
            # Two calls warmed it up; at most ~SLOW_BUDGET seconds of timed calls.
            repeat = max(1, min(SLOW_REPEAT, int(SLOW_BUDGET_SECONDS / call_seconds[contender])))
            timings.update(measure_interleaved({contender: run}, 0, repeat))
    eager = timings.get("PyTorch eager")
    best_peer = {}  # precision -> the fastest peer's median
    for contender, t in timings.items():
        if is_peer(contender):
            precision = precision_of(contender)
            best_peer[precision] = min(best_peer.get(precision, t.median_ms), t.median_ms)
    rows = []
    for contender in CONTENDERS:
        if contender in timings:
            t = timings[contender]
            peer = best_peer.get(precision_of(contender))
            rows.append({"contender": contender, "precision": precision_of(contender),
                         "median_ms": round(t.median_ms, 3),
                         "q1_ms": round(t.q1_ms, 3), "q3_ms": round(t.q3_ms, 3), "runs": t.runs,
                         "speedup_vs_eager": round(eager.median_ms / t.median_ms, 3)
                         if eager else None,
                         # > 1: faster than every peer of its precision.
                         "vs_best_peer": round(peer / t.median_ms, 3) if peer else None})
        elif contender in errors:
            rows.append({"contender": contender, "error": errors[contender]})
    return {"case": case.label, "rows": rows}


class AddOne(torch.nn.Module):
    def forward(self, x):
        return x + 1


def _vm_main(mod):
    """`mod` built by tvmbridge's pipeline for this CPU, loaded in a Relax VM: its main."""
    import tempfile

    import tvm
    from tvm import relax

    from tvmbridge.build import build_library, host_target

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "module.so"
        path.write_bytes(build_library(mod, host_target()))
        return relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())["main"]


def measure_call_overhead(calls: int = 2000, rounds: int = 30) -> dict:
    """Microseconds per call of a one-element graph (x + 1): tvmbridge's compiled module
    (TorchScript forward -> tvmbridge::run -> TVM VM) against calling the same TVM library's
    VM function directly with a prepared TVM tensor, and TorchScript running x + 1 itself.
    Each sample times `calls` calls (one call is too short to time); rounds interleave."""
    import tvm

    x = torch.randn(1)
    scripted = torch.jit.script(AddOne())
    compiled = tt.compile(scripted, [x], never_slower=False, min_block_size=1)
    main = _vm_main(tt.from_torchscript(scripted, [x])[0])
    tvm_x = tvm.runtime.tensor(x.numpy())
    frozen = torch.jit.freeze(torch.jit.script(AddOne()).eval())
    timings = measure_interleaved({
        "TVM VM function, direct": repeated(lambda: main(tvm_x), calls),
        "tvmbridge compiled module": repeated(lambda: compiled(x), calls),
        "TorchScript (frozen)": repeated(lambda: frozen(x), calls),
    }, warmup=2, repeat=rounds)
    per_call = per_call_us(timings, calls)
    overhead = (per_call["tvmbridge compiled module"]["median_us"]
                - per_call["TVM VM function, direct"]["median_us"])
    return {"calls_per_sample": calls, "samples": rounds, "per_call": per_call,
            "overhead_us": round(overhead, 2)}


class CummaxOne(torch.nn.Module):
    """One op TVM has no converter for: with fallback="torchscript" the whole graph is one
    TorchScript region called from the TVM program."""

    def forward(self, x):
        return torch.cummax(x, 0)[0]


def measure_torchscript_region_overhead(calls: int = 2000, rounds: int = 30) -> dict:
    """Microseconds per call, one-element tensor: a TVM program that calls one TorchScript
    region (VM -> tvmbridge.torchscript.run -> libtorch) and a TVM program doing x + 1 itself
    (the VM call alone), both from Python; and the region's TorchScript module called from
    C++ (torch's ThroughputBenchmark loop, no Python per call). The crossing's cost is the
    first minus the second minus the third."""
    import statistics

    import tvm

    x = torch.randn(1)
    region_script = torch.jit.script(CummaxOne())
    region_call = _vm_main(tt.from_torchscript(region_script, [x], fallback="torchscript")[0])
    add_one = _vm_main(tt.from_torchscript(torch.jit.script(AddOne()), [x])[0])
    tvm_x = tvm.runtime.tensor(x.numpy())
    timings = measure_interleaved({
        "TVM program calling the TorchScript region (from Python)": repeated(
            lambda: region_call(tvm_x), calls),
        "TVM program, x + 1 in TVM (from Python)": repeated(lambda: add_one(tvm_x), calls),
    }, warmup=2, repeat=rounds)
    per_call = per_call_us(timings, calls)
    from torch.utils import ThroughputBenchmark

    direct = ThroughputBenchmark(region_script)
    direct.add_input(x)
    samples = sorted(direct.benchmark(num_calling_threads=1, num_warmup_iters=200,
                                      num_iters=calls).latency_avg_ms * 1e3
                     for _ in range(rounds // 3))
    quartiles = statistics.quantiles(samples, n=4)
    per_call["TorchScript region called from C++"] = {
        "median_us": round(statistics.median(samples), 2), "q1_us": round(quartiles[0], 2),
        "q3_us": round(quartiles[2], 2)}
    crossing = (per_call["TVM program calling the TorchScript region (from Python)"]["median_us"]
                - per_call["TVM program, x + 1 in TVM (from Python)"]["median_us"]
                - per_call["TorchScript region called from C++"]["median_us"])
    return {"calls_per_sample": calls, "samples": rounds, "per_call": per_call,
            "crossing_us": round(crossing, 2)}


def measure_detection_hybrid(repeat: int = 50) -> dict:
    """The partitioning issue's detection head (convolutional trunk, data-dependent tail),
    1x3x64x64: PyTorch eager, tvmbridge compile (TVM regions inside TorchScript), and the
    other direction, one TVM program calling the tail as TorchScript."""
    import tvm

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from shared_models import DetectionHead

    torch.manual_seed(0)
    model = DetectionHead().eval()
    x = torch.randn(1, 3, 64, 64)
    scripted = torch.jit.script(model)
    compiled = tt.compile(scripted, [x])
    main = _vm_main(tt.from_torchscript(scripted, [x], fallback="torchscript")[0])
    tvm_x = tvm.runtime.tensor(x.numpy())
    with torch.no_grad():
        expected = model(x)
        hybrid = [torch.from_numpy(t.numpy()) for t in main(tvm_x)]
        for got, want in zip(hybrid, expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        timings = measure_interleaved({
            "PyTorch eager": lambda: model(x),
            "tvmbridge compile (TVM inside TorchScript)": lambda: compiled(x),
            "TVM program with a TorchScript region": lambda: main(tvm_x),
        }, warmup=5, repeat=repeat, pause_s=PAUSE_SECONDS)
    return {"model": "DetectionHead 1x3x64x64",
            "median_ms": {name: round(t.median_ms, 3) for name, t in timings.items()},
            "iqr_ms": {name: [round(t.q1_ms, 3), round(t.q3_ms, 3)]
                       for name, t in timings.items()}}


def measure_concurrent_throughput(threads: int = 8) -> list:
    """Calls per second of one loaded compiled module shared by `threads` threads: each
    concurrent call on a Relax VM of its own (the default pool) against one VM that calls
    take in turn (limit 1). Three samples each, interleaved; the median is reported."""
    import statistics
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from shared_models import SmallNet

    torch.manual_seed(0)
    cases = [("SmallNet 2x3x16x16", SmallNet().eval(), torch.randn(2, 3, 16, 16), 2000),
             ("resnet18 1x3x224x224", torchvision.models.resnet18(weights=None).eval(),
              torch.randn(1, 3, 224, 224), 10)]
    results = []
    for label, model, x, calls in cases:
        compiled = tt.compile(torch.jit.script(model), [x], never_slower=False)
        module = compiled.tvm_module_0

        def throughput() -> float:
            def work():
                for _ in range(calls):
                    compiled(x)
            workers = [threading.Thread(target=work) for _ in range(threads)]
            started = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            return threads * calls / (time.perf_counter() - started)

        samples = {"VM per concurrent call (pool)": [], "one VM, calls take turns": []}
        for _ in range(3):
            for name, limit in (("VM per concurrent call (pool)", 0),
                                ("one VM, calls take turns", 1)):
                module.set_virtual_machine_limit(limit)
                samples[name].append(throughput())
        results.append({"model": label, "threads": threads, "calls_per_thread": calls,
                        "virtual_machines": module.virtual_machines(),
                        "calls_per_s": {k: round(statistics.median(v), 1)
                                        for k, v in samples.items()}})
    return results


ENABLE_FIRST_CALL = """
import json, sys, time, torch, torchvision
import tvmbridge.torch as tt
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None).eval()
x = torch.randn(1, 3, 224, 224)
module = torch.jit.trace(model, x)
tt.enable(cache_dir=sys.argv[1])
with torch.no_grad():
    started = time.perf_counter()
    for _ in range(3):  # profiling run, then the optimised graph: the groups' first call
        module(x)
print(json.dumps({"seconds": time.perf_counter() - started, **tt.enable_statistics()}))
"""


def measure_enable_first_call() -> dict:
    """enable()'s first calls of traced ResNet-18 in a fresh process: compiling (cold disk
    cache) and loading what the first process stored (warm)."""
    import subprocess
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", ENABLE_FIRST_CALL, cache],
                                  capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    return {"model": "resnet18 traced, batch 1", "cold_s": round(cold["seconds"], 2),
            "warm_s": round(warm["seconds"], 2),
            "cold_over_warm": round(cold["seconds"] / warm["seconds"], 1),
            "cold_compiles": cold["compiles"], "warm_disk_loads": warm["disk_loads"]}


def write_markdown(report: dict, path: Path) -> None:
    lines = [f"# tvmbridge benchmark ({report['date']})", "",
             f"Machine: {report['cpu']} ({', '.join(report.get('cpu_flags', []))}), "
             f"{report['cores']} cores; threads = {report['threads']}; "
             f"{report['repeat']} interleaved runs after {report['warmup']} warm-up, "
             f"{PAUSE_SECONDS * 1e3:.0f} ms pause before each call.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    for case in report["cases"]:
        lines += [f"## {case['case']}", "",
                  "| contender | median ms | IQR ms | runs | vs eager | vs best peer, same "
                  "precision |", "|---|---:|---:|---:|---:|---:|"]
        for row in case["rows"]:
            if "error" in row:
                lines.append(f"| {row['contender']} | failed: {row['error']} | | | | |")
            else:
                peer, eager = row.get("vs_best_peer"), row.get("speedup_vs_eager")
                lines.append(f"| {row['contender']} | {row['median_ms']:.2f} | "
                             f"{row['q1_ms']:.2f}-{row['q3_ms']:.2f} | {row['runs']} | "
                             f"{f'{eager:.2f}x' if eager else ''} | "
                             f"{f'{peer:.2f}x' if peer else ''} |")
        lines.append("")
    overhead = report.get("overhead")
    if overhead:
        lines += per_call_lines("Per-call overhead (one-element graph, x + 1)",
                                 overhead["per_call"])
        lines += ["", f"Overhead of the embedded op over the direct VM call: "
                      f"{overhead['overhead_us']:.2f} us ({overhead['calls_per_sample']} calls per "
                      f"sample, {overhead['samples']} samples).", ""]
    region = report.get("torchscript_region")
    if region:
        lines += per_call_lines("PyTorch inside TVM: one TorchScript region called from a "
                                 "TVM program", region["per_call"])
        lines += ["", f"Crossing from TVM into TorchScript: {region['crossing_us']:.2f} us a call "
                      "(region call from the TVM program, less the VM call itself, less the "
                      "region's own time called from C++).", ""]
    detection = report.get("detection_hybrid")
    if detection:
        lines += [f"## {detection['model']}: both directions of fallback", "",
                  "| how it runs | median ms | IQR ms |", "|---|---:|---:|"]
        for name, median in detection["median_ms"].items():
            q1, q3 = detection["iqr_ms"][name]
            lines.append(f"| {name} | {median:.3f} | {q1:.3f}-{q3:.3f} |")
        lines.append("")
    concurrency = report.get("concurrency")
    if concurrency:
        lines += ["## One loaded module, many threads", "",
                  "| model | threads x calls | VM per concurrent call (calls/s) | "
                  "one VM, calls take turns (calls/s) |", "|---|---|---:|---:|"]
        for row in concurrency:
            rates = row["calls_per_s"]
            lines.append(f"| {row['model']} | {row['threads']} x {row['calls_per_thread']} | "
                         f"{rates['VM per concurrent call (pool)']:.0f} "
                         f"({row['virtual_machines']} VMs) | "
                         f"{rates['one VM, calls take turns']:.0f} |")
        lines.append("")
    first_call = report.get("enable_first_call")
    if first_call:
        lines += ["## enable(): first calls in a fresh process", "",
                  f"{first_call['model']}: {first_call['cold_s']:.2f} s compiling "
                  f"({first_call['cold_compiles']} group(s)), {first_call['warm_s']:.2f} s from "
                  f"the disk cache ({first_call['warm_disk_loads']} loaded): "
                  f"{first_call['cold_over_warm']}x.", ""]
    if report["tuning_seconds"]:
        lines.append("Tuning time (s, includes compilation): " + ", ".join(
            f"{k}: {v}" for k, v in report["tuning_seconds"].items()))
    path.write_text("\n".join(lines) + "\n")


def write_chart(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases = report["cases"]
    figure, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4.5), squeeze=False)
    for axis, case in zip(axes[0], cases):
        rows = [r for r in case["rows"] if "error" not in r]
        axis.barh([r["contender"] for r in rows], [r["speedup_vs_eager"] for r in rows])
        axis.axvline(1.0, color="grey", linewidth=0.8)
        axis.set_title(case["case"])
        axis.set_xlabel("speed vs PyTorch eager (higher is better)")
        axis.invert_yaxis()
    for axis in axes[0][1:]:
        axis.set_yticklabels([])
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2,bert")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--time-budget", default="30min", help="per model and batch")
    parser.add_argument("--database", default=None, help="tuning database folder")
    parser.add_argument("--skip", action="append", default=[], help="a contender to leave out")
    parser.add_argument("--out", default=None,
                        help="results folder (default bench/results/<cpu>, e.g. intel-xeon-amx)")
    parser.add_argument("--no-extras", action="store_true",
                        help="only the model tables (no overhead, enable, concurrency runs)")
    args = parser.parse_args(argv)
    args.tuning_seconds = {}
    torch.set_num_threads(THREADS)

    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_model(),
              "cpu_flags": cpu_flags(), "cores": THREADS,
              "threads": THREADS, "repeat": args.repeat, "warmup": args.warmup,
              "versions": versions(), "cases": [], "tuning_seconds": args.tuning_seconds}
    for name in args.models.split(","):
        # BERT at batch 1 only (the setting); image models at every batch size.
        for batch in [1] if name == "bert" else [int(b) for b in args.batches.split(",")]:
            case = make_case(name, batch)
            print(case.label, file=sys.stderr, flush=True)
            report["cases"].append(run_case(case, args))
    if not args.no_extras:
        report["overhead"] = measure_call_overhead()
        report["enable_first_call"] = measure_enable_first_call()
        report["torchscript_region"] = measure_torchscript_region_overhead()
        report["detection_hybrid"] = measure_detection_hybrid()
        report["concurrency"] = measure_concurrent_throughput()
    out = Path(args.out or f"bench/results/{cpu_slug()}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, out / "benchmark.md")
    charted = write_chart(report, out / "benchmark.png")
    print((out / "benchmark.md").read_text())
    print(f"wrote {out}/benchmark.json, benchmark.md" + (", benchmark.png" if charted else
                                                          " (no matplotlib: no chart)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
