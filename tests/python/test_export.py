"""The torch.export and torch.compile paths (tvmbridge/export.py): ATen graphs partitioned,
regions imported with TVM's ExportedProgram translator, compiled and called through
tvmbridge::run; compared with eager PyTorch (float32: rtol 1e-4, atol 1e-4 x the output's
largest magnitude, as the model zoo)."""

import warnings

import pytest
import torch
import torch.nn as nn

import tvmbridge
import tvmbridge.export as tx
from tvmbridge import export_ops
import tvmbridge.torch as tt


def assert_matches(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-4,
                               atol=1e-4 * max(1.0, expected.abs().max().item()))


def resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 64, 64)


class Bert(nn.Module):
    """A small BERT from transformers' config (no weights downloaded): token ids in, the last
    hidden state out."""

    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=128,
                            max_position_embeddings=64)
        self.bert = BertModel(config, add_pooling_layer=False).eval()

    def forward(self, ids):
        return self.bert(input_ids=ids).last_hidden_state


def bert():
    torch.manual_seed(0)
    return Bert().eval(), torch.randint(0, 500, (2, 16))


class WithUnsupportedOp(nn.Module):
    """A convolution, an op TVM's translator lacks (cummax), then more layers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean((2, 3))
        values, _ = torch.cummax(y, dim=1)
        return self.head(torch.tanh(values) * 2.0 + y)


MODELS = {"resnet18": resnet18, "bert": bert}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_path_matches_pytorch(name):
    model, x = MODELS[name]()
    # BERT's embeddings read through token ids, and its token-type ids are gathered from a
    # buffer: those stay in PyTorch, which checks them (with the views between them, too few
    # ops for a region of their own).
    reads_through_indices = name == "bert"
    compiled = tt.compile(model, [x], ir="export", never_slower=False,
                          require_full_compilation=not reads_through_indices)
    report = compiled.tvmbridge_report
    assert report.regions >= 1
    if reads_through_indices:
        assert report.torch_ops.get("aten::embedding") == 3, report.torch_ops
        assert set(report.torch_ops) <= {"aten::embedding", "aten::gather", "aten::expand",
                                         "aten::slice"}, report.torch_ops
    else:
        assert not report.torch_ops
    with torch.no_grad():
        assert_matches(compiled(x), model(x))


def test_export_path_leaves_bad_token_ids_to_pytorch():
    """TVM's translator lowers embeddings to unchecked gathers; on this path they run in
    PyTorch, so an out-of-range id raises PyTorch's IndexError instead of reading memory."""
    model, ids = bert()
    compiled = tt.compile(model, [ids], ir="export")
    bad = ids.clone()
    bad[0, 3] = 10_000_000
    with pytest.raises(IndexError, match="index out of range"):
        compiled(bad)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_compile_backend_matches_pytorch(name):
    model, x = MODELS[name]()
    torch._dynamo.reset()
    optimized = torch.compile(model, backend="tvmbridge")
    with torch.no_grad():
        assert_matches(optimized(x), model(x))


def test_unsupported_op_stays_in_pytorch_on_both_paths():
    assert "cummax.default" not in export_ops.translatable_ops()
    torch.manual_seed(0)
    model, x = WithUnsupportedOp().eval(), torch.randn(2, 3, 10, 10)
    compiled = tt.compile(model, [x], ir="export", min_block_size=1, never_slower=False)
    report = compiled.tvmbridge_report
    assert report.regions >= 2 and report.torch_ops == {"aten::cummax": 1}
    with torch.no_grad():
        assert_matches(compiled(x), model(x))
        with pytest.raises(tvmbridge.UnsupportedOperatorError, match="aten::cummax"):
            tt.compile(model, [x], ir="export", require_full_compilation=True)

    reports = []

    def recording_backend(graph_module, example_inputs):
        run = tx.backend(graph_module, example_inputs, min_block_size=1, never_slower=False)
        reports.append(run.tvmbridge_report)
        return run

    torch._dynamo.reset()
    optimized = torch.compile(model, backend=recording_backend)
    with torch.no_grad():
        assert_matches(optimized(x), model(x))
    assert reports and reports[0].regions >= 2 and reports[0].torch_ops == {"aten::cummax": 1}


def test_compiled_module_exports_saves_and_loads(tmp_path):
    model, x = resnet18()
    compiled = tt.compile(model, [x], ir="export", never_slower=False)
    program = torch.export.export(compiled, (x,))
    calls = [n for n in program.graph.nodes if n.target is torch.ops.tvmbridge.run.default]
    assert len(calls) == compiled.tvmbridge_report.regions
    path = tmp_path / "resnet18_tvm.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path)
    with torch.no_grad():
        assert_matches(loaded.module()(x), model(x))


def test_dynamic_batch_is_served_by_one_compile():
    model, x = resnet18()
    batch = torch.export.Dim("batch", min=1, max=16)
    builds = tx.CACHE.builds
    compiled = tt.compile(model, [torch.randn(4, 3, 64, 64)], ir="export",
                          dynamic_shapes={"x": {0: batch}}, never_slower=False)
    assert tx.CACHE.builds - builds == compiled.tvmbridge_report.regions == 1
    with torch.no_grad():
        for size in range(1, 17):
            x = torch.randn(size, 3, 64, 64)
            assert_matches(compiled(x), model(x))
    assert tx.CACHE.builds - builds == 1


def test_torch_compile_serves_a_dimension_dynamo_marks_dynamic_with_one_build():
    """Batch sizes from 2 to 16, marked dynamic: one region build (dynamo specialises size 1
    by design, so that is left out)."""
    model, _ = resnet18()
    torch._dynamo.reset()
    optimized = torch.compile(model, backend="tvmbridge")
    builds = tx.CACHE.builds
    with torch.no_grad():
        for size in (2, 3, 9, 16):
            x = torch.randn(size, 3, 64, 64)
            torch._dynamo.mark_dynamic(x, 0)
            assert_matches(optimized(x), model(x))
    assert tx.CACHE.builds - builds == 1


def test_saved_program_loads_in_a_new_process(tmp_path):
    """A process that imports tvmbridge loads and runs the saved ExportedProgram."""
    import subprocess
    import sys

    from conftest import ROOT

    model, x = resnet18()
    compiled = tt.compile(model, [x], ir="export", never_slower=False)
    torch.export.save(torch.export.export(compiled, (x,)), tmp_path / "m.pt2")
    torch.save({"x": x, "expected": model(x).detach()}, tmp_path / "io.pt")
    script = (
        "import torch, tvmbridge.export\n"
        f"io = torch.load({str(tmp_path / 'io.pt')!r})\n"
        f"program = torch.export.load({str(tmp_path / 'm.pt2')!r})\n"
        "out = program.module()(io['x'])\n"
        "torch.testing.assert_close(out, io['expected'], rtol=1e-4, atol=1e-3)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin",
                                 **_lib_dir_env()}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _lib_dir_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k == "TVMBRIDGE_LIB_DIR"}


def test_compiled_module_packages_with_aot_inductor(tmp_path):
    """AOTInductor compiles the rest of the program around the TVM regions, which stay calls
    to tvmbridge::run on the packaged module."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 4)).eval()
    x = torch.randn(1, 3, 8, 8)
    compiled = tt.compile(model, [x], ir="export", never_slower=False)
    assert compiled.tvmbridge_report.regions == 1
    package = torch._inductor.aoti_compile_and_package(
        torch.export.export(compiled, (x,)), package_path=str(tmp_path / "model.pt2"))
    runner = torch._inductor.aoti_load_package(package)
    with torch.no_grad():
        assert_matches(runner(x), model(x))


def test_region_cache_tells_weights_apart():
    """Two models of one architecture with different weights get their own regions."""
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    second = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(3, 8)
    builds = tx.CACHE.builds
    compiled = [tt.compile(m, [x], ir="export") for m in (first, second)]
    assert tx.CACHE.builds - builds == 2
    with torch.no_grad():
        for model, module in zip((first, second), compiled):
            assert_matches(module(x), model(x))


def test_a_region_tvm_fails_on_runs_in_pytorch(monkeypatch):
    """When TVM's translator or build raises on a region its convert map accepted, the region
    stays in PyTorch (with a warning and the error in the report) instead of failing."""
    model, x = resnet18()

    def failing_build(*args, **kwargs):
        raise RuntimeError("std::bad_alloc")

    monkeypatch.setattr(tx, "build_region", failing_build)
    tx.CACHE.clear()
    compiled = tt.compile(model, [x], ir="export")
    report = compiled.tvmbridge_report
    assert report.regions == 0 and report.failed_regions == ["RuntimeError: std::bad_alloc"]
    assert report.torch_ops.get("aten::convolution", 0) > 0
    with torch.no_grad():
        assert_matches(compiled(x), model(x))


class Sum(nn.Module):
    def forward(self, x, y):
        return torch.relu(x) * 2.0 + torch.tanh(y)


def test_dims_sharing_a_symbol_must_agree_when_the_region_is_called():
    batch = torch.export.Dim("batch", min=1, max=8)
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    compiled = tt.compile(Sum(), [x, y], ir="export", never_slower=False,
                          dynamic_shapes={"x": {0: batch}, "y": {0: batch}})
    region = next(m for m in compiled.modules() if isinstance(m, tx.TVMRegion))
    assert len(torch.ops.tvmbridge.run(region.tvm_module, [torch.randn(6, 3)] * 2)) == 1
    with pytest.raises(ValueError, match="where input 0 has 5"):
        torch.ops.tvmbridge.run(region.tvm_module, [torch.randn(5, 3), torch.randn(6, 3)])


class SlowInTvm(nn.Module):
    """Two regions, each with a linear layer, on either side of an op TVM lacks (cummax)."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(32, 32)
        self.second = nn.Linear(32, 8)

    def forward(self, x):
        y = torch.relu(self.first(x))
        return torch.cummax(y, dim=1)[0] + 1.0, torch.tanh(self.second(y)) * 2.0


def assert_all_match(compiled, model, x):
    with torch.no_grad():
        for actual, expected in zip(compiled(x), model(x)):
            assert_matches(actual, expected)


def test_never_slower_times_regions_on_the_export_path(monkeypatch):
    """Each built region is timed against PyTorch on the example inputs; a region TVM does not
    win stays in PyTorch and the report says so with both times."""
    torch.manual_seed(0)
    model, x = SlowInTvm().eval(), torch.randn(4, 32)
    tx.CACHE.clear()
    measured = tt.compile(model, [x], ir="export", min_block_size=1)
    report = measured.tvmbridge_report
    assert report.timings and all(t.tvm_ms > 0 and t.torch_ms > 0 for t in report.timings)
    assert report.regions == sum(t.tvm_faster for t in report.timings)
    assert_all_match(measured, model, x)

    # Make TVM lose every comparison: every region must then run in PyTorch.
    real_run = tx.TVMRegion.forward

    def slow_run(self, *inputs):
        import time

        time.sleep(0.03)
        return real_run(self, *inputs)

    monkeypatch.setattr(tx.TVMRegion, "forward", slow_run)
    tx.CACHE.clear()
    slow = tt.compile(model, [x], ir="export", min_block_size=1)
    report = slow.tvmbridge_report
    assert report.regions == 0 and len(report.slower_regions) == len(report.timings) >= 2
    # The 30 ms delay makes TVM lose: PyTorch's own time for these few ops depends on the
    # machine's load (1 to 12 ms on a 2-core AMD EPYC, its thread pool waking after each pause).
    assert all(t.tvm_ms >= 30.0 and t.tvm_ms > t.torch_ms for t in report.timings), report.timings
    assert report.torch_ops.get("aten::addmm") == 2, report.torch_ops
    assert not any(isinstance(m, tx.TVMRegion) for m in slow.modules())
    assert_all_match(slow, model, x)

    # The torch.compile backend decides the same way; never_slower=False keeps TVM.
    reports = []

    def recording_backend(graph_module, example_inputs, never_slower):
        run = tx.backend(graph_module, example_inputs, min_block_size=1,
                         never_slower=never_slower)
        reports.append(run.tvmbridge_report)
        return run

    for never_slower in (True, False):
        torch._dynamo.reset()
        optimized = torch.compile(model, backend=lambda g, e: recording_backend(g, e,
                                                                                 never_slower))
        assert_all_match(optimized, model, x)
    timed, untimed = reports
    assert timed.regions == 0 and len(timed.slower_regions) >= 2
    assert untimed.regions >= 2 and not untimed.timings


@pytest.mark.parametrize("pool, shape", [(nn.functional.max_pool1d, (1, 3, 9)),
                                         (nn.functional.max_pool2d, (1, 3, 8, 8)),
                                         (nn.functional.max_pool3d, (1, 2, 4, 4, 4))])
def test_max_pooling_with_its_default_stride_converts(pool, shape):
    """`F.max_pool2d(x, 2)` exports its omitted stride as [], which TVM's translator rejected
    (the region stayed in PyTorch); it is the kernel's size (found by the pt2e family)."""

    class Pooled(nn.Module):
        def forward(self, x):
            return pool(torch.relu(x), 2) * 2.0

    x = torch.randn(shape)
    x.view(-1)[0] = float("nan")
    compiled = tt.compile(Pooled(), [x], ir="export", min_block_size=1, never_slower=False)
    report = tt.report(compiled)
    assert report.regions == 1 and not report.torch_ops and not report.failed_regions, report
    torch.testing.assert_close(compiled(x), Pooled()(x), rtol=0, atol=0, equal_nan=True)
