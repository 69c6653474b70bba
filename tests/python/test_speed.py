"""Speed features: default CPU schedules, auto-tuning (MetaSchedule), never slower than
PyTorch."""

import json
import re

import pytest
import torch

import tvmbridge.torch as tt
from conftest import run_python
from tvmbridge import build, pipeline, schedule
from tvmbridge.tuning import Tuning, parse_duration


class ConvRelu(torch.nn.Module):
    """One task big enough to tune (convolution and ReLU fused) and one too small (mean)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 16, 3)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean([2, 3])


def test_durations_parse():
    assert parse_duration("90s") == 90
    assert parse_duration("30min") == 1800
    assert parse_duration("1.5h") == 5400
    assert parse_duration(12) == 12
    assert parse_duration(None) is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(trials=-1), "trials must be an int >= 0"),
    (dict(trials=1.5), "trials must be an int >= 0"),
    (dict(time_budget="soon"), "is not a duration"),
    (dict(time_budget=0), "must be positive"),
])
def test_bad_tuning_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Tuning(**kwargs)


def test_tuning_must_be_a_tuning_object(small_model):
    with pytest.raises(TypeError, match="tuning must be a tvmbridge.Tuning"):
        tt.compile(torch.jit.script(small_model), [tt.Input((2, 3, 16, 16))], tuning={"trials": 10},
                   never_slower=False)


def test_every_function_of_a_cnn_gets_a_default_schedule():
    """Unscheduled TIR runs on one thread with scalar loops (100x slower): every function
    of a small CNN must come out of the pipeline scheduled, and with parallel loops."""
    import tvm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    mod, _ = tt.from_torchscript(torch.jit.script(model), [tt.Input((1, 3, 32, 32))],
                                 keep_params_as_input=False)
    target = build.host_target()
    with target:
        fused = pipeline.fuse(mod, target, onednn_convolutions=False)  # TVM's convolutions
        scheduled = schedule.default_cpu_schedule()(fused)
    functions = {gv.name_hint: f for gv, f in scheduled.functions_items()
                 if isinstance(f, tvm.tirx.PrimFunc)}
    assert functions
    for name, function in functions.items():
        assert function.attrs.get("tirx.is_scheduled"), f"{name} has no schedule"
    conv = [f for name, f in functions.items() if "conv2d" in name]
    assert conv and "T.parallel" in conv[0].script()


@pytest.mark.parametrize("producer_tanhs, inlined", [(0, True), (1, False)])
def test_large_producers_read_many_times_are_not_inlined(producer_tanhs, inlined):
    """An elementwise producer is inlined into its consumer unless its expression, repeated at
    each of the consumer's reads, exceeds schedule._INLINED_NODES_LIMIT: a tanh (700 expression
    nodes) inlined into a tanh (which reads its input 45 times, counting the reads inside
    the exp and the polynomial it is built of) makes a kernel of 32,000 nodes; recurrent cells'
    chains of these made the zoo's GRU compile 29.6 s instead of 5.3. A small producer (x + 1)
    stays inlined."""
    import tvm
    from tvm import te

    from tvmbridge import vector_math

    x = te.placeholder((64,), name="x")
    value = te.compute((64,), lambda i: x[i] + 1.0, name="producer_in")
    def tanh_of(tensor):
        return te.compute((64,), lambda i: vector_math.tanh(tensor[i]), name="producer_in")

    for _ in range(producer_tanhs):
        value = tanh_of(value)
    producer = te.compute((64,), lambda i: value[i], name="producer")
    result = te.compute((64,), lambda i: vector_math.tanh(producer[i]), name="consumer")
    mod = tvm.IRModule({"main": te.create_prim_func([x, result])})
    with build.host_target():
        scheduled = schedule.default_cpu_schedule()(mod)
    script = scheduled["main"].script()
    assert ('"producer"' not in script) == inlined, script
    assert '"consumer"' in script


class InvertedResidual(torch.nn.Module):
    """MobileNet-V2's block: expand (1x1), depthwise (3x3), ReLU6, project (1x1)."""

    def __init__(self, channels=16, expanded=32, stride=1, dilation=1):
        super().__init__()
        self.expand = torch.nn.Conv2d(channels, expanded, 1)
        self.depthwise = torch.nn.Conv2d(expanded, expanded, 3, stride=stride,
                                         padding=dilation, dilation=dilation, groups=expanded)
        self.project = torch.nn.Conv2d(expanded, channels, 1)

    def forward(self, x):
        x = torch.nn.functional.relu6(self.expand(x))
        return self.project(torch.nn.functional.relu6(self.depthwise(x)))


def _fused_functions(model, shape):
    import tvm

    mod, _ = tt.from_torchscript(torch.jit.script(model), [tt.Input(shape)],
                                 keep_params_as_input=False)
    target = build.host_target()
    fused = pipeline.fuse(mod, target, onednn_convolutions=False)  # TVM's convolutions
    return [gv.name_hint for gv, f in fused.functions_items()
            if isinstance(f, tvm.tirx.PrimFunc)]


def test_convolutions_stay_packed_through_depthwise_and_relu6():
    """Plain and depthwise convolutions run in NCHW16c with ReLU6 fused into them: the only
    layout transforms are the block's way in and out (an unpacked depthwise convolution or
    a ReLU6 that ConvertLayout cannot see through would add two per block)."""
    names = _fused_functions(InvertedResidual().eval(), (1, 16, 14, 14))
    assert any(name.startswith("fused_depthwise_conv2d_NCHWc") and name.endswith("minimum")
               for name in names), names
    assert sum("layout_transform" in name for name in names) == 2, names
    assert not any("clip" in name for name in names), names


@pytest.mark.parametrize("shape, stride, dilation", [
    ((1, 16, 14, 14), 1, 1), ((2, 16, 15, 15), 2, 1), ((1, 16, 12, 12), 1, 2)])
def test_packed_depthwise_convolution_matches_pytorch(shape, stride, dilation):
    torch.manual_seed(0)
    model = InvertedResidual(stride=stride, dilation=dilation).eval()
    x = torch.randn(*shape)
    compiled = tt.compile(torch.jit.script(model), [x], never_slower=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_tune_then_resume_from_the_database(tmp_path):
    """`tvmbridge tune` tunes, writes records for this target, and produces a module that
    matches PyTorch; a second run with the same budget finds the work done and tunes
    nothing."""
    torch.manual_seed(0)
    model = ConvRelu().eval()
    path = tmp_path / "conv.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    database = tmp_path / "records"
    out = tmp_path / "conv_tuned.pt"
    command = ["tune", str(path), "--input", "1x8x16x16", "--trials", "16",
               "--database", str(database), "-o", str(out), "--keep-slower-regions"]
    cli = "import sys; from tvmbridge.cli import main; sys.exit(main())"

    first = run_python(cli, *command)
    assert first.returncode == 0, first.stderr
    assert "task 1/1" in first.stderr  # progress names the task
    (folder,) = database.iterdir()
    assert json.loads((folder / "target.json").read_text())["kind"] == "llvm"
    assert list(json.loads((folder / "trials.json").read_text()).values()) == [16]
    records = [json.loads(line) for line in
               (folder / "database_tuning_record.json").read_text().splitlines()]
    # MetaSchedule records a candidate that failed to build or run at 1e10 s. Some may fail;
    # most must be measured (every build used to time out in LocalBuilder's new workers).
    measured = [r for r in records if max(r[1][1]) < 1.0]
    assert len(measured) >= 8, f"{len(measured)} of {len(records)} candidates measured"

    import tvmbridge  # noqa: F401  (registers the runtime class for torch.jit.load)

    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(x), model(x), rtol=1e-4, atol=1e-4)
    assert len(tt.report(torch.jit.load(str(out))).regions) == 1

    second = run_python(cli, *command)
    assert second.returncode == 0, second.stderr
    assert "already tuned" in second.stderr
    assert list(json.loads((folder / "trials.json").read_text()).values()) == [16]


_TUNE_OVER_A_BATCH_RANGE = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO, format="%(message)s")
import tvmbridge.torch as tt


class ConvRelu(torch.nn.Module):  # test_speed.ConvRelu, which this process cannot import
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 16, 3)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean([2, 3])


torch.manual_seed(0)
model = ConvRelu().eval()
images = tt.Input(min_shape=(1, 8, 16, 16), opt_shape=(2, 8, 16, 16), max_shape=(8, 8, 16, 16))
compiled = tt.compile(torch.jit.trace(model, torch.randn(2, 8, 16, 16)), [images],
                      never_slower=False,
                      tuning=tt.Tuning(trials=16, database=sys.argv[1]))
with torch.no_grad():
    for batch in (2, 1, 5):  # the tuned code, then the default schedule on either side
        x = torch.randn(batch, 8, 16, 16)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
"""


def test_symbolic_tasks_are_tuned_at_the_opt_shape(tmp_path):
    """MetaSchedule measures fixed shapes only: a task over a batch range is tuned as its
    function at the opt batch, and the compiled module runs the tuned code at that batch and
    the default schedule at the others (outputs checked at both, in the child process, which
    keeps MetaSchedule's log handlers away from pytest's captured streams)."""
    database = tmp_path / "records"
    run = run_python(_TUNE_OVER_A_BATCH_RANGE, str(database))
    assert run.returncode == 0, run.stderr
    assert "their records are made and used at the opt shape" in run.stderr
    assert re.search(r"runs its tuned schedule at \w+=2, its default elsewhere", run.stderr)
    (folder,) = database.iterdir()
    assert list(json.loads((folder / "trials.json").read_text()).values()) == [16]
    records = [json.loads(line) for line in
               (folder / "database_tuning_record.json").read_text().splitlines()]
    assert sum(1 for r in records if max(r[1][1]) < 1.0) >= 8  # measured, not failed


def test_tuned_code_is_dispatched_to_at_the_opt_shape_only(tmp_path):
    """A symbolic function whose opt-shape version has a record becomes one function: the
    record's code where the extents are the opt shape's, the default schedule elsewhere."""
    import numpy as np
    import tvm
    from tvm import te, tirx
    from tvm.s_tir import meta_schedule as ms

    from tvmbridge.tuning import dispatch_tuned_at_opt, specialise_at

    rows = tirx.Var("rows", "int64")
    a = te.placeholder((rows, 64), name="a")
    b = te.compute((rows, 64), lambda i, j: a[i, j] * 2.0 + 1.0, name="b")
    func = te.create_prim_func([a, b])
    target = build.host_target()
    static, symbols = specialise_at(func, {"rows": 16})
    assert list(symbols) == ["rows"]
    assert [int(e) for e in static.params[0].ty.shape] == [16, 64]

    database = ms.database.JSONDatabase(work_dir=str(tmp_path))
    normalize = tvm.get_global_func("tvm.s_tir.meta_schedule.normalize_mod")
    workload = database.commit_workload(normalize(static))
    scheduled = schedule.default_schedule(workload.mod["main"], target)
    database.commit_tuning_record(ms.database.TuningRecord(
        scheduled.trace, workload, [1e-6], target,
        ms.arg_info.ArgInfo.from_prim_func(workload.mod["main"])))

    mod = dispatch_tuned_at_opt(tvm.IRModule({"main": func}), database, target,
                                {"rows": 16})
    dispatched = mod["main"]
    assert dispatched.attrs["tirx.is_scheduled"]
    assert isinstance(dispatched.body, tirx.IfThenElse)
    assert str(dispatched.body.condition) == "rows == T.int64(16)"

    library = tvm.compile(mod, target=target)
    for count in (16, 5, 17):
        x = np.random.default_rng(count).standard_normal((count, 64)).astype("float32")
        out = tvm.runtime.tensor(np.zeros_like(x))
        library["main"](tvm.runtime.tensor(x), out)
        np.testing.assert_allclose(out.numpy(), x * 2 + 1, rtol=1e-6)

    # No record at the opt shape (another opt value): the function is left to the defaults.
    untouched = dispatch_tuned_at_opt(tvm.IRModule({"f": func}), database, target, {"rows": 8})
    assert untouched["f"].same_as(func)


def test_never_slower_keeps_only_regions_that_beat_pytorch(small_model, tmp_path):
    compiled = tt.compile(torch.jit.script(small_model), [tt.Input((2, 3, 16, 16))])
    report = tt.report(compiled)
    measured = [r for r in report.regions if "tvm_ms" in r]
    returned = report.measured_slower
    assert measured or returned, "the region was neither measured nor returned to PyTorch"
    for region in measured:  # what stayed in TVM was faster
        assert region["tvm_ms"] < region["torch_ms"]
    for region in returned:  # what went back was not
        assert region["torch_ms"] <= region["tvm_ms"]
    returned_nodes = report.nodes_for("measured_slower")
    assert len(returned_nodes) == sum(region["nodes"] for region in returned)
    assert all(n["fallback"] and n["region"] < 0 for n in returned_nodes)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), small_model(x), rtol=1e-4, atol=1e-4)

    path = tmp_path / "small.pt"  # the decisions travel with the saved model
    torch.jit.save(compiled, str(path))
    assert tt.report(torch.jit.load(str(path))).nodes == report.nodes


def test_measuring_is_off_when_asked_or_when_everything_must_compile(small_model):
    scripted = torch.jit.script(small_model)
    for options in (dict(never_slower=False), dict(require_full_compilation=True)):
        report = tt.report(tt.compile(scripted, [tt.Input((2, 3, 16, 16))], **options))
        assert report.regions and all("tvm_ms" not in r for r in report.regions)


def test_report_refuses_other_modules(small_model):
    with pytest.raises(TypeError, match="made by tvmbridge.torch.compile"):
        tt.report(torch.jit.script(small_model))


def test_elementwise_kernels_use_512_bit_vectors_on_cpus_with_amx():
    """On CPUs with AMX the host target turns off LLVM's preference for 256-bit vectors, so a
    GELU kernel computes in zmm registers (LLVM's default tuning for these CPUs gives it ymm
    ones only, half the work per instruction); elsewhere the target keeps LLVM's choice."""
    import tvm

    target = build.host_target()
    if not pipeline.has_cpu_flag("amx_tile"):
        assert "mattr" not in target.attrs
        return
    x = torch.randn(64, 256)
    mod, _ = tt.from_torchscript(torch.jit.trace(torch.nn.GELU().eval(), x), [x],
                                 keep_params_as_input=False)
    default = tvm.target.Target({"kind": "llvm", "mcpu": target.attrs["mcpu"]})

    def registers(of_target):
        code = build._compile(mod, of_target, None, "fp32", False).mod.imports[0]
        asm = code.inspect_source("asm")
        return asm.count("%zmm"), asm.count("%ymm")

    wide, narrow = registers(target)
    assert wide > 0 and wide > narrow
    assert registers(default)[0] == 0


@pytest.mark.parametrize("pooling", [torch.nn.MaxPool2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1)],
                         ids=["max", "mean"])
def test_partial_sums_of_reductions_stay_off_the_heap(pooling):
    """A reduction's partial sums (a pooling window's, one vector) live in a stack buffer that
    LLVM keeps in registers. In TVM's heap workspace (a "local" buffer), every update was a
    store and a load: ResNet-18's bfloat16 max pooling took 1.45 instead of 1.01 ms at batch 8.
    The compiled kernels make no workspace call, and pool as PyTorch does."""
    x = torch.randn(2, 32, 28, 28)
    traced = torch.jit.trace(pooling.eval(), x)
    mod, _ = tt.from_torchscript(traced, [x], keep_params_as_input=False)
    code = build._compile(mod, build.host_target(), None, "fp32", True).mod.imports[0]
    source = code.inspect_source("ll")
    assert "TVMBackendParallelLaunch" in source  # pooling in parallel
    assert "TVMBackendAllocWorkspace" not in source
    compiled = tt.compile(traced, [x], never_slower=False)
    torch.testing.assert_close(compiled(x), pooling(x), rtol=1e-6, atol=1e-6)
