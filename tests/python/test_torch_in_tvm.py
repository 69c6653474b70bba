"""PyTorch inside TVM: from_torchscript(..., fallback="torchscript") gives one Relax program in
which what TVM cannot take runs as TorchScript through libtorch."""

import json

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

import tvmbridge.torch as tt
from conftest import ROOT, randomize_, run_python
from shared_models import DetectionHead, GreedyDecoder, WithCustomOp

TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def run_vm(executable, inputs):
    vm = relax.VirtualMachine(executable, tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(x.numpy()) for x in inputs])
    return as_torch(result)


def as_torch(result):
    if hasattr(result, "numpy"):
        return torch.from_numpy(result.numpy())
    return tuple(as_torch(item) for item in result)


def hybrid(model, inputs):
    mod, params = tt.from_torchscript(torch.jit.script(model), inputs, fallback="torchscript")
    assert params == {}
    return mod


CASES = {
    "detection_head": (DetectionHead, lambda: [torch.randn(1, 3, 16, 16)]),
    "custom_op": (WithCustomOp, lambda: [torch.randn(2, 3, 8, 8)]),
    "greedy_decoder": (GreedyDecoder, lambda: [torch.randn(1, 32)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_models_with_unconvertible_parts_run_whole_under_tvm(name):
    model_class, make_inputs = CASES[name]
    torch.manual_seed(0)
    model = randomize_(model_class())
    inputs = make_inputs()
    mod = hybrid(model, inputs)
    assert "tvmbridge.torchscript.run" in mod.script()
    actual = run_vm(tvm.compile(mod, target="llvm"), inputs)
    with torch.no_grad():
        expected = model(*inputs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)


def test_detection_head_shapes_and_data_dependent_output():
    torch.manual_seed(0)
    model = randomize_(DetectionHead())
    mod = hybrid(model, [torch.randn(1, 3, 16, 16)])
    # The trunk is Relax (convolutions), the data-dependent tail one TorchScript call whose
    # outputs have the rank, not a size, in their type.
    text = mod.script()
    assert "R.nn.conv2d" in text
    assert text.count("tvmbridge.torchscript.run") == 1
    ret = mod["main"].ret_ty
    assert [field.ndim for field in ret.fields] == [1, 2]
    # Another input keeps a different number of boxes: nothing was fixed to the example.
    executable = tvm.compile(mod, target="llvm")
    for seed in (1, 2):
        torch.manual_seed(seed)
        x = torch.randn(1, 3, 16, 16) * (seed + 1)
        with torch.no_grad():
            torch.testing.assert_close(run_vm(executable, [x]), model(x), **TOLERANCE)


def test_a_fully_convertible_model_has_no_torchscript_call():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()
    mod = hybrid(model, [torch.randn(2, 8)])
    assert "tvmbridge.torchscript.run" not in mod.script()


def test_fallback_argument_is_checked():
    scripted = torch.jit.script(torch.nn.ReLU())
    with pytest.raises(ValueError, match="fallback must be None or 'torchscript'"):
        tt.from_torchscript(scripted, [torch.randn(2)], fallback="python")
    with pytest.raises(ValueError, match="weights are embedded"):
        tt.from_torchscript(scripted, [torch.randn(2)], keep_params_as_input=True,
                            fallback="torchscript")


FRESH_PROCESS = """
import json, sys, numpy as np, torch, tvm
from tvm import relax
import tvmbridge  # registers tvmbridge.torchscript.run
sys.path.insert(0, sys.argv[3])
import shared_models  # registers the custom op the TorchScript region calls
vm = relax.VirtualMachine(tvm.runtime.load_module(sys.argv[1]), tvm.cpu())
x = np.load(sys.argv[2])
print(json.dumps(vm["main"](tvm.runtime.tensor(x)).numpy().tolist()))
"""


def test_exported_library_runs_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    model = randomize_(WithCustomOp())
    x = torch.randn(2, 3, 8, 8)
    executable = tvm.compile(hybrid(model, [x]), target="llvm")
    library = tmp_path / "model.so"
    executable.export_library(str(library))
    np.save(tmp_path / "x.npy", x.numpy())
    result = run_python(FRESH_PROCESS, str(library), str(tmp_path / "x.npy"), str(ROOT / "tests"))
    assert result.returncode == 0, result.stderr[-3000:]
    actual = torch.tensor(json.loads(result.stdout.strip().splitlines()[-1]))
    with torch.no_grad():
        torch.testing.assert_close(actual, model(x), **TOLERANCE)


def test_corrupt_region_is_refused():
    torch.manual_seed(0)
    mod = hybrid(randomize_(WithCustomOp()), [torch.randn(2, 3, 8, 8)])
    run = tvm.get_global_func("tvmbridge.torchscript.run")
    region = None
    for binding in mod["main"].body.blocks[0].bindings:
        call = binding.value
        if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op) and \
                call.op.name == "relax.call_pure_packed":
            region = call.args[1].value.numpy()
    assert region is not None
    # Regions are cached by their digest: change it too, so this one is not found loaded.
    region[10] = ord("0") if region[10] != ord("0") else ord("1")
    region[200] ^= 0xFF
    with pytest.raises(Exception, match="does not match its SHA-256"):
        run(tvm.runtime.tensor(region), tvm.runtime.tensor(np.zeros((2, 8, 8, 8), "float32")))
