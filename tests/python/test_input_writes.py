"""Writes into forward's inputs (issue 21): in-place ops on a model input compute out of place
in TVM, and the compiled forward copies the result into the caller's tensor where it ends, so
callers see what PyTorch shows them. Inputs and outputs are compared with PyTorch (float32:
rtol 1e-5, atol 1e-6, NaN masks equal); the generated cases are differential.py's
`input_writes` family."""

from typing import Tuple

import pytest
import torch
import torch.nn.functional as F

import tvmbridge.torch as tt

import differential


def assert_matches(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


class Net(torch.nn.Module):
    def __init__(self, write):
        super().__init__()
        self.write = write

    def forward(self, x):
        return self.write(x)


# The writes users' models make into their inputs (issue 21's list), then a result from them.
WRITES = {
    "fill_": lambda x: (x.fill_(2.0), x * 3.0)[1],
    "zero_": lambda x: x.zero_() + 1.0,
    "clamp_": lambda x: x.clamp_(-0.5, 0.5) * 2.0,
    "leaky_relu_": lambda x: F.leaky_relu_(x, 0.1) * 2.0,
    "hardswish_": lambda x: F.hardswish(x, inplace=True) * 2.0,
    "copy_ into a view": lambda x: (x[:, :2].copy_(torch.ones(4, 2)), x * 2.0)[1],
    "setitem on a row": lambda x: (x.__setitem__(1, float("nan")), torch.tanh(x))[1],
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_writes_into_an_input_compile_and_reach_the_caller(name, tmp_path):
    torch.manual_seed(0)
    x = torch.randn(4, 5)
    x[0, 0] = float("nan")
    model = torch.jit.trace(Net(WRITES[name]), x.clone(), check_trace=False)
    example = x.clone()
    compiled = tt.compile(model, [example], never_slower=False, require_full_compilation=True)
    assert torch.equal(example.isnan(), x.isnan()) and torch.equal(example.nan_to_num(),
                                                                     x.nan_to_num()), \
        "compiling must not write into the example"

    report = tt.report(compiled)
    assert not report.torch_nodes and len(report.regions) == 1
    (write_back,) = [n for n in report.nodes if n["region"] < 0 and n["kind"] == "aten::copy_"]
    assert write_back["reason"] == "writes the result back into input 'x', as PyTorch would"
    assert not write_back["fallback"]

    path = tmp_path / "model.pt"
    tt.save(compiled, path)
    for module in (compiled, torch.jit.load(str(path))):
        expected_input, actual_input = x.clone(), x.clone()
        expected = model(expected_input)
        actual = module(actual_input)
        assert_matches(actual, expected)
        assert_matches(actual_input, expected_input)


def test_a_result_that_is_the_input_is_the_callers_tensor():
    class Scale(torch.nn.Module):
        def forward(self, x, y) -> Tuple[torch.Tensor, torch.Tensor]:
            x.mul_(torch.sigmoid(y) * 2.0 + 1.0)
            return x.add_(1.0), y * 2.0

    model = torch.jit.script(Scale())
    compiled = tt.compile(model, [torch.randn(3), torch.randn(3)], never_slower=False,
                          require_full_compilation=True)
    x, y = torch.randn(3), torch.randn(3)
    expected_x = x.clone()
    expected = model(expected_x, y.clone())
    result, doubled = compiled(x, y)
    assert result is x, "PyTorch hands back the caller's tensor itself"
    assert_matches(x, expected_x)
    assert_matches(doubled, expected[1])


def test_writes_inside_a_branch_on_an_argument():
    class Branch(torch.nn.Module):
        def forward(self, x, flag: bool):
            y = torch.tanh(x) * 2.0
            if flag:
                x.add_(y)
            return x * 3.0 + 1.0

    model = torch.jit.script(Branch())
    compiled = tt.compile(model, [torch.randn(2, 3), True], never_slower=False)
    for flag in (True, False):
        x = torch.randn(2, 3)
        expected_x, actual_x = x.clone(), x.clone()
        assert_matches(compiled(actual_x, flag), model(expected_x, flag))
        assert_matches(actual_x, expected_x)


def test_a_write_that_changes_the_shape_stays_in_pytorch():
    model = torch.jit.trace(Net(lambda x: x.unsqueeze_(0) * 2.0), torch.randn(4, 5),
                            check_trace=False)
    compiled = tt.compile(model, [torch.randn(4, 5)], never_slower=False, min_block_size=1)
    reasons = {n["kind"]: n["reason"] for n in tt.report(compiled).torch_nodes}
    assert "in-place op on an aliased tensor" in reasons["aten::unsqueeze_"]
    x = torch.randn(4, 5)
    expected_x, actual_x = x.clone(), x.clone()
    assert_matches(compiled(actual_x), model(expected_x))
    assert actual_x.shape == (1, 4, 5)
    assert_matches(actual_x, expected_x)


def test_a_written_input_sharing_memory_with_another_is_refused():
    class Accumulate(torch.nn.Module):
        def forward(self, total, update):
            total.add_(update * 0.5)
            return total * update

    model = torch.jit.script(Accumulate())
    compiled = tt.compile(model, [torch.randn(3), torch.randn(3)], never_slower=False,
                          require_full_compilation=True)
    shared = torch.randn(3)
    with pytest.raises(RuntimeError, match=r"input 0 \('total'\) shares memory with input 1 "
                                           r"\('update'\), and the model writes into 'total'"):
        compiled(shared, shared)
    # Two halves of one buffer do not overlap: that is allowed, and the module still works.
    buffer = torch.randn(6)
    expected_buffer = buffer.clone()
    expected = model(expected_buffer[:3], expected_buffer[3:])
    assert_matches(compiled(buffer[:3], buffer[3:]), expected)
    assert_matches(buffer, expected_buffer)


def test_from_torchscript_still_refuses_writes_into_inputs():
    model = torch.jit.trace(Net(lambda x: x.relu_() * 2.0), torch.randn(4, 5), check_trace=False)
    with pytest.raises(Exception, match="modifies a model input"):
        tt.from_torchscript(model, [tt.Input((4, 5))])


# Views whose aliasing only their schema tells (no hand-kept list of view ops names them).
SCHEMA_VIEWS = {
    "diagonal": lambda b: b.diagonal(),
    "movedim": lambda b: b.movedim(0, 1),
    "unfold": lambda b: b.unfold(1, 2, 2),
    "split": lambda b: b.split(2, dim=1)[0],
    "unbind": lambda b: b.unbind(0)[1],
}


@pytest.mark.parametrize("view", sorted(SCHEMA_VIEWS))
def test_a_write_through_any_view_reaches_the_viewed_tensor(view):
    """Compiled, the write shows in the tensor it views, as in PyTorch; from_torchscript, which
    cannot keep such a write, refuses it by name instead of dropping it."""
    def write_through_view(x):
        base = torch.relu(x * 2.0)
        SCHEMA_VIEWS[view](base).mul_(3.0)
        return torch.sigmoid(base) + 1.0

    x = torch.randn(4, 4)
    model = torch.jit.trace(Net(write_through_view), x.clone(), check_trace=False)
    compiled = tt.compile(model, [x], never_slower=False)
    assert_matches(compiled(x.clone()), model(x.clone()))
    with pytest.raises(Exception, match="modifies a view of another tensor"):
        tt.from_torchscript(model, [tt.Input((4, 4))])


def test_a_second_write_through_a_written_view_reaches_the_viewed_tensor():
    """`b[0].clamp_(...).mul_(3)`: the first write's result is still a view of b (found by the
    view_writes family of differential.py)."""
    def chained_writes(x):
        base = torch.tanh(x) * 2.0
        base[0].clamp_(-0.5, 0.5).mul_(3.0)
        return base + 1.0

    x = torch.randn(3, 4)
    model = torch.jit.trace(Net(chained_writes), x.clone(), check_trace=False)
    compiled = tt.compile(model, [x], never_slower=False, require_full_compilation=True)
    assert_matches(compiled(x.clone()), model(x.clone()))
    (on_vm,) = differential.run_on_vm(model, x)  # whole in Relax: the writes became scatters
    assert_matches(on_vm, model(x.clone()))
