"""The Python API: inputs, module kinds, from_torchscript, errors."""

import os

import numpy as np
import pytest
import torch
import tvm

import tvmbridge
import tvmbridge.torch as tt
from conftest import SmallNet, randomize_


def test_example_tensors_work_in_place_of_input_specs(small_model):
    x = torch.randn(2, 3, 16, 16)
    compiled = tt.compile(torch.jit.trace(small_model, x), inputs=[x], never_slower=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), small_model(x), rtol=1e-4, atol=1e-4)


@torch.jit.script
def scripted_gate(x, y):
    if bool(x.sum() > 0):
        return torch.relu(x * y + 1.0)
    return torch.sigmoid(x - y)


def traced_body(x):
    return torch.relu(x) * 2.0 + torch.sigmoid(x)


def test_script_and_traced_functions_compile_explain_and_convert(tmp_path):
    """ScriptFunctions (@torch.jit.script def, torch.jit.trace of a function) go wherever a
    module goes; the scripted one keeps its branch on values, named parameters included."""
    x, y = torch.randn(2, 5), torch.randn(2, 5)
    compiled = tt.compile(scripted_gate, [x, y], min_block_size=1, never_slower=False)
    assert tt.report(compiled).regions
    for a in (x.abs(), -x.abs()):
        torch.testing.assert_close(compiled(a, y), scripted_gate(a, y), rtol=1e-6, atol=1e-6)
    path = tmp_path / "gate.pt"
    torch.jit.save(compiled, str(path))
    torch.testing.assert_close(torch.jit.load(str(path))(x, y), scripted_gate(x, y))
    assert "aten::relu" in str(tt.explain(scripted_gate, [x, y]))

    traced = torch.jit.trace(traced_body, torch.randn(4))
    compiled = tt.compile(traced, [tt.Input((4,))], never_slower=False)
    assert len(tt.report(compiled).regions) == 1
    torch.testing.assert_close(compiled(x[0, :4]), traced(x[0, :4]), rtol=1e-6, atol=1e-6)

    mod, _ = tt.from_torchscript(traced, [tt.Input((4,))], keep_params_as_input=False)
    executable = tvm.compile(mod, target="llvm")
    vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x[0, :4].numpy())).numpy()
    np.testing.assert_allclose(got, traced(x[0, :4]).numpy(), rtol=1e-6, atol=1e-6)


def test_loaded_module_and_path_compile(tmp_path, small_model):
    path = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(small_model), str(path))
    x = torch.randn(2, 3, 16, 16)
    for source in (torch.jit.load(str(path)), str(path)):
        compiled = tt.compile(source, inputs=[tt.Input((2, 3, 16, 16))], never_slower=False)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), small_model(x), rtol=1e-4, atol=1e-4)


def test_plain_nn_module_is_refused_with_advice(small_model):
    with pytest.raises(TypeError, match="torch.jit.script"):
        tt.compile(small_model, inputs=[tt.Input((2, 3, 16, 16))], never_slower=False)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: tt.Input((1, -3)), ValueError),
        (lambda: tt.Input((1, 2.5)), ValueError),
        (lambda: tt.Input((1, 3), dtype=torch.complex64), TypeError),
    ],
)
def test_bad_input_specs(make, error):
    with pytest.raises(error, match="tvmbridge.Input"):
        make()


def test_wrong_number_of_input_specs(small_model):
    with pytest.raises(ValueError, match=r"takes 1 input\(s\) but 2 input spec\(s\)"):
        tt.compile(torch.jit.script(small_model), inputs=[tt.Input((2, 3, 16, 16))] * 2,
                   never_slower=False)


def test_from_torchscript_gives_module_and_named_params(small_model):
    mod, params = tt.from_torchscript(torch.jit.script(small_model), [tt.Input((2, 3, 16, 16))])
    assert isinstance(mod, tvm.IRModule)
    main = mod["main"]
    # Inputs first, then one parameter per weight, in the order of `params`.
    assert len(main.params) == 1 + len(params)
    assert [p.name for p in main.params[1:]] == list(params)
    assert "fc.weight" in params and "fc.bias" in params
    np.testing.assert_allclose(params["fc.bias"].numpy(), small_model.fc.bias.detach().numpy())

    # The module runs under TVM alone and matches PyTorch.
    executable = tvm.compile(mod, target="llvm")
    vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
    x = torch.randn(2, 3, 16, 16)
    out = vm["main"](tvm.runtime.tensor(x.numpy()), *params.values())
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), small_model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_from_torchscript_can_embed_weights(small_model):
    mod, params = tt.from_torchscript(
        torch.jit.script(small_model), [tt.Input((2, 3, 16, 16))], keep_params_as_input=False
    )
    assert params == {}
    assert len(mod["main"].params) == 1


class WithCummax(torch.nn.Module):
    def forward(self, x):
        values, _ = torch.cummax(torch.relu(x), -1)
        return values


def test_unsupported_ops_are_named():
    scripted = torch.jit.script(WithCummax())
    assert tt.unsupported_ops(scripted) == ["aten::cummax"]
    # from_torchscript converts whole graphs: it names what it cannot convert.
    with pytest.raises(tvmbridge.UnsupportedOperatorError, match="aten::cummax"):
        tt.from_torchscript(scripted, inputs=[tt.Input((3, 8))])
    # compile leaves it to PyTorch unless asked not to.
    with pytest.raises(tvmbridge.UnsupportedOperatorError, match="aten::cummax"):
        tt.compile(scripted, inputs=[tt.Input((3, 8))], require_full_compilation=True,
                   never_slower=False)
    compiled = tt.compile(scripted, inputs=[tt.Input((3, 8))], min_block_size=1, never_slower=False)
    x = torch.randn(3, 8)
    torch.testing.assert_close(compiled(x), WithCummax()(x))


class DataDependent(torch.nn.Module):
    def forward(self, x):
        if bool(x.sum() > 0):
            y = torch.relu(x) * 2
            z = y + 1
        else:
            y = x - 1
            z = torch.sigmoid(x)
        return y, z


def test_data_dependent_branch_becomes_relax_if():
    scripted = torch.jit.script(DataDependent())
    mod, _ = tt.from_torchscript(scripted, inputs=[tt.Input((3,))])
    assert "if " in mod.script(show_meta=False)
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    for x in (torch.ones(3), -torch.ones(3)):  # one input per branch
        actual = [out.numpy() for out in vm["main"](tvm.runtime.tensor(x.numpy()))]
        for a, e in zip(actual, scripted(x)):
            np.testing.assert_allclose(a, e.numpy(), rtol=1e-6, atol=1e-6)


def test_data_dependent_control_flow_stays_in_torchscript_when_compiled():
    scripted = torch.jit.script(DataDependent())
    compiled = tt.compile(scripted, inputs=[tt.Input((3,))], min_block_size=1, never_slower=False)
    for x in (torch.ones(3), -torch.ones(3)):
        for a, e in zip(compiled(x), DataDependent()(x)):
            torch.testing.assert_close(a, e)
    explanation = tt.explain(scripted, [tt.Input((3,))], min_block_size=1)
    assert explanation.placement_of("prim::If") == {"PyTorch"}
    # x.sum() > 0 is one region before the branch; each branch body holds its own.
    assert explanation.placement_of("aten::gt") == {"TVM block 0"}
    assert explanation.placement_of("aten::relu") == {"TVM block 1"}
    assert explanation.placement_of("aten::sigmoid") == {"TVM block 2"}


def test_training_mode_dropout_is_refused_only_when_it_matters():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
    # compile() freezes in eval mode, so a model left in train mode still converts correctly.
    compiled = tt.compile(torch.jit.script(model.train()), inputs=[tt.Input((2, 4))],
                          never_slower=False)
    x = torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model.eval()(x), rtol=1e-5, atol=1e-5)


def test_multiple_inputs_and_tuple_output():
    class TwoInOut(torch.nn.Module):
        def forward(self, x, y):
            return torch.relu(x + y), torch.cat([x, y], 1).mean(1)

    model = TwoInOut()
    compiled = tt.compile(torch.jit.script(model), inputs=[tt.Input((4, 8)), tt.Input((4, 8))],
                          never_slower=False)
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    actual, expected = compiled(x, y), model(x, y)
    assert isinstance(actual, tuple) and len(actual) == 2
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


def test_randomize_helper_changes_outputs():
    torch.manual_seed(0)
    plain = SmallNet().eval()
    randomized = randomize_(SmallNet().eval())
    randomized.load_state_dict({k: v for k, v in plain.state_dict().items() if "bn" not in k},
                               strict=False)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(plain(x), randomized(x))


@pytest.mark.parametrize("target, error", [("nonsense", ValueError), ({"kind": "cuda"}, ValueError)])
def test_bad_targets_are_refused_before_compiling(small_model, target, error):
    with pytest.raises(error):
        tt.compile(torch.jit.script(small_model), [tt.Input((2, 3, 16, 16))], target=target,
                   never_slower=False)


def test_edge_models_compile(small_model):
    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(2)

    x = torch.randn(3)
    torch.testing.assert_close(tt.compile(torch.jit.script(Identity()), [x],
                                          never_slower=False)(x), x)
    torch.testing.assert_close(tt.compile(torch.jit.script(Constant()), [x],
                                          never_slower=False)(x), torch.ones(2))
    empty = torch.randn(0, 4)
    relu = tt.compile(torch.jit.script(torch.nn.ReLU()), [empty], min_block_size=1,
                      never_slower=False)
    assert relu(empty).shape == (0, 4)


def test_tvm_uses_every_core_unless_the_user_chose():
    import subprocess
    import sys

    from conftest import ROOT

    code = "import os, tvmbridge; print(os.environ['TVM_NUM_THREADS'], os.cpu_count())"
    base = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    base["PYTHONPATH"] = str(ROOT / "python")
    chosen, cores = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True,
                                   text=True, check=True).stdout.split()
    assert chosen == cores
    kept = subprocess.run([sys.executable, "-c", code], env=dict(base, TVM_NUM_THREADS="1"),
                          capture_output=True, text=True, check=True).stdout.split()[0]
    assert kept == "1"


class RowsByIndex(torch.nn.Module):
    def forward(self, x):
        rows = [x[i] * float(i + 1) for i in range(x.size(0))]  # a list grown in a loop
        first, second, third = rows                             # unpacked where it is made
        return first - second + third * 0.5


def test_loops_over_input_sizes_unroll_in_relax():
    """from_torchscript knows the input shapes: `range(x.size(0))` has a known trip count, so
    the loop unrolls and the list it grows becomes functional."""
    scripted = torch.jit.script(RowsByIndex())
    mod, _ = tt.from_torchscript(scripted, inputs=[tt.Input((3, 5))])
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    x = torch.randn(3, 5)
    actual = vm["main"](tvm.runtime.tensor(x.numpy())).numpy()
    np.testing.assert_allclose(actual, scripted(x).numpy(), rtol=1e-6, atol=1e-6)


class Positives(torch.nn.Module):
    def forward(self, x):
        (where,) = torch.where(x > 0)        # a list holding a data-dependent tensor
        picked = torch.tanh(x[where] * 2.0)  # so is everything computed from it
        return picked * 3.0 + 1.0, x * 2.0


def test_tensors_taken_from_a_data_dependent_list_stay_dynamic():
    """The example runs use the caller's tensor twice, so they agree on every size; sizes that
    come out of where(condition) must still not be specialised."""
    scripted = torch.jit.script(Positives())
    example = torch.tensor([1.0, -1.0, 2.0, -3.0, 0.5])
    compiled = tt.compile(scripted, [example], min_block_size=1, never_slower=False)
    for x in (example, torch.tensor([1.0, 2.0, 3.0, -4.0, 5.0]), -torch.ones(5)):
        for actual, expected in zip(compiled(x), scripted(x)):
            torch.testing.assert_close(actual, expected)
