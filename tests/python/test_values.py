"""Bad values, not only bad shapes: what callers send must not crash the process, read foreign
memory or turn NaN into a number.

- Every op that reads or writes through indices checks them inside the compiled code; an index
  out of range raises (IndexError from the runtime op, RuntimeError through the TorchScript
  forward, exactly as PyTorch's own scripted modules do) and the module keeps working.
  Negative indices wrap where PyTorch wraps them.
- Integer division by zero raises as in PyTorch; the lowest integer divided by -1 raises
  too (PyTorch's own kernel traps there, ending the process).
- NaN stays NaN through clamps, maxima, pooling and arg-reductions.
- Compiling runs the model on the caller's example tensors (or values in an Input's
  value_range), never on made-up values that could select memory.
- The same from C++ (tvmbridge-run: torch::jit::load and the runtime, no Python) and in the
  Relax module from_torchscript returns (plain TVM).
"""

import subprocess

import numpy as np
import pytest
import torch

import differential
import tvmbridge.torch as tt
from conftest import BUILD, run_in_threads


def compiled_whole(model: torch.nn.Module, example_inputs, **options):
    """Scripted and compiled with every node in TVM (nothing timed, nothing left over)."""
    options.setdefault("never_slower", False)
    options.setdefault("min_block_size", 1)
    return tt.compile(torch.jit.script(model.eval()), list(example_inputs),
                      require_full_compilation=True, **options)


class EmbeddingHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(100, 16)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, ids):
        return self.head(self.embed(ids))


@pytest.fixture(scope="module")
def embedding_model():
    torch.manual_seed(0)
    model = EmbeddingHead().eval()
    ids = torch.randint(0, 100, (2, 8))
    return model, ids, compiled_whole(model, [ids])


@pytest.mark.parametrize("bad", [100, 100_000_000, -5, -(2**63)])
def test_token_id_out_of_range_raises_and_the_module_keeps_working(embedding_model, bad):
    model, ids, compiled = embedding_model
    bad_ids = ids.clone()
    bad_ids[1, 3] = bad
    with pytest.raises(RuntimeError, match=rf"aten::embedding: index {bad} is out of range for "
                                           r"dimension 0 with size 100 \(expected 0 <= index "
                                           r"< 100\)"):
        compiled(bad_ids)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-5, atol=1e-5)


def test_the_runtime_op_raises_index_error(embedding_model):
    _, ids, compiled = embedding_model
    bad_ids = ids.clone()
    bad_ids[0, 0] = 1000
    with pytest.raises(IndexError, match="out of range"):
        torch.ops.tvmbridge.run(compiled.tvm_module_0, [bad_ids])


def test_serving_threads_with_bad_ids_get_answers_or_errors(embedding_model):
    """8 threads, a third of their calls with an out-of-range id: every call answers right or
    raises, and the process lives."""
    model, ids, compiled = embedding_model
    with torch.no_grad():
        expected = model(ids)
    problems, raised = [], []

    def serve(seed):
        generator = torch.Generator().manual_seed(seed)
        for call in range(60):
            good = call % 3 != 0
            batch = ids.clone()
            if not good:
                batch[0, int(torch.randint(0, 8, (), generator=generator))] = 100 + call
            try:
                result = compiled(batch)
            except RuntimeError as error:
                if good or "out of range" not in str(error):
                    problems.append(f"call {call}: unexpected error {error}")
                raised.append(call)
                continue
            if not good:
                problems.append(f"call {call}: no error for an out-of-range id")
            elif not torch.allclose(result, expected, rtol=1e-5, atol=1e-5):
                problems.append(f"call {call}: wrong answer")

    run_in_threads(serve, 8)
    assert not problems, problems[:5]
    assert len(raised) == 8 * 20


# op -> (the module (tests/python/differential.py's), a valid index tensor, an index out of
# range, a negative index PyTorch accepts or None), over a [6, 5] float tensor.
INDEXING = {
    "index_select": (differential.IndexSelect1, [0, 4, 2], 5, None),
    "gather": (differential.Gather1, [0, 4, 2], 5, None),
    "take": (differential.Take, [0, 29, 7], 30, -30),
    "index": (differential.Index0, [0, 5, 2], 6, -6),
    "index_put": (differential.IndexPut, [0, 5, 2], 6, -1),
    "scatter": (differential.Scatter1, [0, 4, 2], 5, None),
    "one_hot": (differential.OneHot, [0, 4, 2], 5, None),
}


@pytest.mark.parametrize("op", list(INDEXING))
def test_indexing_ops_check_their_indices(op):
    module, valid, too_large, negative = INDEXING[op]
    model = module()
    x = torch.randn(6, 5)
    # gather and scatter take one row of indices per row of x
    as_index = (lambda v: torch.tensor(v).expand(6, -1).contiguous()) if op in (
        "gather", "scatter") else torch.tensor
    index = as_index(valid)
    compiled = compiled_whole(model, [x, index])
    torch.testing.assert_close(compiled(x, index), model(x, index), rtol=0, atol=0)
    for bad in (too_large, -too_large - 1):
        wrong = as_index([valid[0], bad, valid[2]])
        with pytest.raises((RuntimeError, IndexError)):
            model(x, wrong)  # PyTorch refuses it too
        with pytest.raises(RuntimeError, match=rf"index {bad} is out of range"):
            compiled(x, wrong)
    if negative is not None:  # wraps as in PyTorch
        wrapped = as_index([valid[0], negative, valid[2]])
        torch.testing.assert_close(compiled(x, wrapped), model(x, wrapped), rtol=0, atol=0)
    torch.testing.assert_close(compiled(x, index), model(x, index), rtol=0, atol=0)


def test_take_with_negative_indices_matches_pytorch():
    """The issue's case: take(x, [1, -1]) gave 81 where PyTorch gives 4."""
    model = differential.Take()
    x = torch.arange(5.0).reshape(1, 5).expand(6, 5).contiguous()
    index = torch.tensor([1, -1])
    compiled = compiled_whole(model, [x, index])
    assert compiled(x, index).tolist() == model(x, index).tolist() == [1.0, 4.0]


class IntegerDivision(torch.nn.Module):
    def forward(self, a, b):
        return a // b, torch.remainder(a, b), torch.div(a, b, rounding_mode="trunc")


def test_integer_division_by_zero_or_overflowing_raises():
    model = IntegerDivision()
    a = torch.tensor([7, -7, 9, 5])
    b = torch.tensor([2, 2, -4, 3])
    compiled = compiled_whole(model, [a, b])
    for got, want in zip(compiled(a, b), model(a, b)):
        assert got.tolist() == want.tolist()
    zero = torch.tensor([2, 0, -4, 3])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        model(a, zero)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        compiled(a, zero)
    # PyTorch 2.14.1 ends the process with SIGFPE here; the compiled module raises.
    with pytest.raises(RuntimeError, match=r"integer overflow \(the lowest int64 divided by -1\)"):
        compiled(torch.tensor([-(2**63), 8, -8, 1]), torch.tensor([-1, -1, 3, 1]))
    for got, want in zip(compiled(a, b), model(a, b)):  # and keeps working
        assert got.tolist() == want.tolist()


class NanPaths(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(16, 16, 1)

    def forward(self, x, y):
        return (torch.relu(x), torch.clamp(x, -0.5, 0.5), torch.nn.functional.relu6(x),
                torch.nn.functional.hardtanh(x), torch.maximum(x, y), torch.minimum(x, y),
                torch.maximum(x, torch.zeros(())), torch.nn.functional.max_pool2d(x, 2),
                x.amax(3), x.amin(2), x.argmax(3), x.argmin(2), torch.relu(self.conv(x)))


def test_nan_stays_nan():
    torch.manual_seed(0)
    model = NanPaths().eval()
    x, y = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    compiled = compiled_whole(model, [x, y])
    x[0, 0, 1, 2] = float("nan")
    x[0, 3, 0, 0] = float("nan")
    y[0, 5, 2, 2] = float("nan")
    x[0, 7, 3, 3] = float("inf")
    x[0, 8, 1, 1] = float("-inf")
    with torch.no_grad():
        expected = model(x, y)
    for index, (got, want) in enumerate(zip(compiled(x, y), expected)):
        assert torch.equal(torch.isnan(got), torch.isnan(want)), f"output {index}: NaN mask"
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True,
                                   msg=f"output {index}")


class RoiPool(torch.nn.Module):
    def forward(self, features, boxes):
        # (input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)
        return torch.ops.torchvision.roi_align(features, boxes, 1.0, 2, 2, 2, False)


def test_compile_runs_the_model_on_the_examples_given():
    """roi_align's batch-index column made of random numbers crashed torchvision's kernel
    during the compile-time runs; with the caller's boxes it compiles, and a box naming a
    missing image raises instead of reading past the feature maps."""
    import torchvision  # noqa: F401  (registers torchvision's ops)

    features = torch.randn(2, 4, 8, 8)
    boxes = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0], [1, 1.0, 2.0, 6.0, 7.0]])
    model = RoiPool()
    compiled = tt.compile(torch.jit.script(model), [features, boxes],
                          min_block_size=1, never_slower=False)
    torch.testing.assert_close(compiled(features, boxes), model(features, boxes), rtol=1e-5,
                               atol=1e-5)
    assert tt.report(compiled).regions, "roi_align should run in TVM"
    missing = boxes.clone()
    missing[1, 0] = 7
    with pytest.raises(RuntimeError, match="out of range"):
        compiled(features, missing)


class OneHotHead(torch.nn.Module):
    def forward(self, classes):
        return torch.nn.functional.one_hot(classes, 3).float().sum(0)


def test_value_range_gives_the_compile_time_runs_valid_values():
    spec = tt.Input((16,), torch.int64, value_range=(0, 3))
    compiled = tt.compile(torch.jit.script(OneHotHead()), [spec], min_block_size=1,
                          never_slower=False)
    classes = torch.tensor([0, 2, 1, 2] * 4)
    assert compiled(classes).tolist() == OneHotHead()(classes).tolist()
    with pytest.raises((RuntimeError, ValueError), match="Class values must be smaller than"):
        # Integers in [0, 10) by default: PyTorch itself refuses them during the example runs.
        tt.compile(torch.jit.script(OneHotHead()), [tt.Input((16,), torch.int64)])


class TwoTables(torch.nn.Module):
    """Ids reach a 7-row embedding through a view, and a 3-row index_select."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(7, 4)
        self.register_buffer("table", torch.randn(3, 4))

    def forward(self, ids):
        flat = ids.view(-1)
        return self.embed(flat) + torch.index_select(self.table, 0, flat)


def test_compile_time_runs_draw_ids_below_the_rows_of_the_tables_they_index():
    """No example and no value_range: integers in [0, 10) would be out of range for both
    tables (PyTorch raises during the example runs); the graph implies [0, 3)."""
    model = TwoTables().eval()
    for module in (torch.jit.script(model), torch.jit.trace(model, torch.zeros(2, 3).long())):
        compiled = tt.compile(module, [tt.Input((2, 3), torch.int64)], min_block_size=1,
                              never_slower=False)
        ids = torch.tensor([[0, 1, 2], [2, 1, 0]])
        torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-6, atol=1e-6)
        with pytest.raises(RuntimeError, match="index 5 is out of range for dimension 0 with "
                                               "size 3"):
            compiled(torch.tensor([[0, 1, 2], [2, 1, 5]]))


@pytest.mark.parametrize("value_range", [(3, 3), (0, 1.5), ("a", 2)])
def test_bad_value_ranges_are_refused(value_range):
    with pytest.raises(ValueError, match="value_range"):
        tt.Input((4,), torch.int64, value_range=value_range)


def test_never_slower_measures_regions_with_integer_inputs(embedding_model):
    model, ids, _ = embedding_model
    compiled = tt.compile(torch.jit.script(model), [ids], min_block_size=1)
    regions = tt.report(compiled).regions
    measured = tt.report(compiled).measured_slower
    assert all("tvm_ms" in r and "torch_ms" in r for r in regions) and (regions or measured)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-5, atol=1e-5)


class SmallTable(torch.nn.Module):
    def __init__(self, rows: int):
        super().__init__()
        self.embed = torch.nn.Embedding(rows, 4)

    def forward(self, ids):
        return torch.relu(self.embed(ids)).sum(-1)


@pytest.mark.parametrize("rows", [5, 10])
def test_tvmbridge_run_from_cpp_raises_on_bad_ids(rows, tmp_path):
    """tvmbridge-run (libtorch's torch::jit::load and the runtime, no Python) draws integer
    inputs in [0, 10): a 5-row table gets ids out of range and must fail with the index
    error, not crash; a 10-row table answers."""
    torch.manual_seed(0)
    path = tmp_path / "table.pt"
    compiled = compiled_whole(SmallTable(rows), [torch.zeros(1, 16, dtype=torch.int64)])
    torch.jit.save(compiled, str(path))
    result = subprocess.run([str(BUILD / "tvmbridge-run"), str(path), "--input", "1x16:int64",
                             "--repeat", "1", "--warmup", "0", "--seed", "0"],
                            capture_output=True, text=True, timeout=300)
    if rows == 10:
        assert result.returncode == 0, result.stderr
        assert "output 0: shape [1, 16] dtype float32" in result.stdout
    else:
        assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
        assert "aten::embedding: index" in result.stderr
        assert "is out of range for dimension 0 with size 5" in result.stderr


def test_from_torchscript_module_checks_indices_in_tvm():
    """The Relax module from_torchscript returns carries the checks: run by plain TVM's VM
    (with tvmbridge imported, which registers the check function), a bad id raises
    IndexError naming the op."""
    import tvm
    from tvm import relax

    from tvmbridge import build

    model = SmallTable(5).eval()
    ids = torch.tensor([[0, 4, 2, 1]])
    mod, _ = tt.from_torchscript(torch.jit.script(model), [ids], keep_params_as_input=False)
    executable = tvm.compile(mod, target=build.host_target())
    main = relax.VirtualMachine(executable, tvm.cpu())["main"]
    got = main(tvm.runtime.tensor(ids.numpy())).numpy()
    np.testing.assert_allclose(got, model(ids).detach().numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(IndexError, match=r"aten::embedding: index 7 is out of range"):
        main(tvm.runtime.tensor(np.array([[0, 7, 2, 1]])))
