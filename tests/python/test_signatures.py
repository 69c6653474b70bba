"""Forward signatures beyond tensors (issue 21): optional tensors, numbers, lists, tuples and
dicts. Their example values go in `inputs`; they stay arguments of the compiled module, what
reads them runs in TorchScript, and tensors taken out of them are checked like tensor inputs.
Outputs are compared with PyTorch (float32: rtol 1e-5, atol 1e-5)."""

import sys
from typing import Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn as nn
import tvm

import tvmbridge.torch as tt
from conftest import ROOT


def assert_matches(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


class OptionalBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, bias: Optional[torch.Tensor] = None):
        y = torch.relu(self.fc(x)) * 2.0 + 1.0
        if bias is not None:
            y = y + bias
        return torch.tanh(y) * 3.0 - 1.0


class Numbers(nn.Module):
    """A loop run `steps` times, a scale and a flag the caller picks per call."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, steps: int, scale: float, flag: bool):
        for _ in range(steps):
            x = torch.tanh(self.fc(x)) * 0.5 + 0.1
        if flag:
            x = x * scale
        return torch.sigmoid(x) * 2.0


class Containers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, images: List[torch.Tensor], extra: Dict[str, torch.Tensor],
                pair: Tuple[torch.Tensor, float]):
        first, second = images[0], images[1]
        features = torch.relu(self.conv(first)) * 2.0 + torch.relu(self.conv(second))
        return features.mean() + extra["bias"].sum() * pair[1] + pair[0].sum()


torch.manual_seed(0)
X = torch.randn(2, 8)


@pytest.mark.parametrize("example_bias", [None, torch.randn(2, 8)], ids=["none", "tensor"])
def test_optional_tensor_input_takes_none_and_tensors(example_bias, tmp_path):
    model = torch.jit.script(OptionalBias()).eval()
    compiled = tt.compile(model, [X, example_bias], never_slower=False)
    assert len(tt.report(compiled).regions) == 2  # before and after the branch on `bias`
    path = tmp_path / "m.pt"
    torch.jit.save(compiled, str(path))
    loaded = torch.jit.load(str(path))
    for module in (compiled, loaded):
        for bias in (None, torch.randn(2, 8)):
            assert_matches(module(X, bias), model(X, bias))
        if example_bias is None:  # nothing specialised the bias: it broadcasts as in PyTorch
            row = torch.randn(1, 8)
            assert_matches(module(X, row), model(X, row))
        # A bias the example run saw is checked against its shape where it is taken out of
        # its optional; where it saw none, PyTorch's add refuses it.
        expected = (r"a tensor from bias.*has shape \[3, 8\]" if example_bias is not None
                    else "must match the size of tensor b")
        with pytest.raises(Exception, match=expected):
            module(X, torch.randn(3, 8))


def test_number_inputs_change_per_call():
    model = torch.jit.script(Numbers()).eval()
    compiled = tt.compile(model, [X, 3, 0.5, True], never_slower=False)
    report = tt.report(compiled)
    assert len(report.regions) >= 1  # the loop's body
    for steps, scale, flag in [(0, 0.5, True), (1, 2.0, False), (3, 0.5, True), (7, -1.0, True)]:
        assert_matches(compiled(X, steps, scale, flag), model(X, steps, scale, flag))


def test_list_dict_and_tuple_inputs():
    torch.manual_seed(1)
    model = torch.jit.script(Containers()).eval()
    images = [torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)]
    arguments = (images, {"bias": torch.randn(4)}, (torch.randn(2), 0.5))
    compiled = tt.compile(model, list(arguments), never_slower=False)
    assert len(tt.report(compiled).regions) >= 1
    for _ in range(3):
        call = ([torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)], {"bias": torch.randn(4)},
                (torch.randn(2), 1.5))
        assert_matches(compiled(*call), model(*call))
    wrong = ([torch.randn(1, 3, 9, 9), images[1]],) + arguments[1:]
    with pytest.raises(Exception, match=r"a tensor from images.*has shape \[1, 3, 9, 9\]"):
        compiled(*wrong)


def test_example_values_are_checked_against_the_declared_types():
    model = torch.jit.script(Numbers()).eval()
    with pytest.raises(TypeError, match=r"input 1 \('steps'\) is declared int by forward; the "
                                        r"example given is a str"):
        tt.compile(model, [X, "three", 0.5, True])
    with pytest.raises(TypeError, match=r"input 0 \('x'\) of forward is a Tensor; give a tensor "
                                        r"or a tvmbridge.Input for it, not a int"):
        tt.compile(model, [3, 3, 0.5, True])
    with pytest.raises(TypeError, match=r"input 1 \('steps'\) of forward is a int; give its "
                                        r"example value"):
        tt.compile(model, [X, X, 0.5, True])
    with pytest.raises(TypeError, match=r"inputs\[3\] is a object"):
        tt.compile(model, [X, 3, 0.5, object()])
    containers = torch.jit.script(Containers()).eval()
    with pytest.raises(TypeError, match=r"input 2 \('pair'\) is declared Tuple\[Tensor, float\] "
                                        r"by forward.*\(2 elements expected\)"):
        tt.compile(containers, [[X, X], {"bias": X}, (X,)])
    with pytest.raises(TypeError, match=r"from_torchscript takes tensor inputs"):
        tt.from_torchscript(model, [X, 3, 0.5, True])


class Defaults(nn.Module):
    def forward(self, x, bias: Optional[torch.Tensor] = None, scale: float = 2.0):
        y = torch.tanh(x) * scale
        if bias is not None:
            y = y + bias
        return y * 3.0 + 1.0


def test_arguments_left_out_take_forwards_defaults(tmp_path):
    """`inputs` may stop before forward's arguments with defaults (a detector's `targets=None`,
    a timm ViT's `attn_mask=None`): the model is compiled for calls without them, as
    torch.export specialises, so the branches on them fold and TVM gets the whole model. The
    compiled forward keeps them, also after saving; another value raises, naming the argument.
    Given in inputs, they stay run-time values."""
    model = torch.jit.script(Defaults())
    compiled = tt.compile(model, [X], min_block_size=1, never_slower=False)
    assert "Tensor? bias=None, float scale=2." in str(compiled.forward.schema)
    assert all(node["region"] >= 0 for node in tt.report(compiled).nodes)  # no prim::If left
    tt.save(compiled, tmp_path / "defaults.pt")
    loaded = torch.jit.load(str(tmp_path / "defaults.pt"))
    bias = torch.randn(2, 8)
    for module in (compiled, loaded):
        assert_matches(module(X), model(X))
        assert_matches(module(X, None, 2.0), model(X))
        with pytest.raises(Exception, match="input 'bias' was left out when the model was "
                                            "compiled, so the compiled model is specialised to "
                                            "its default"):
            module(X, bias)
        with pytest.raises(Exception, match=r"input 'scale' .* its default \(2\.0*\)"):
            module(X, None, 0.5)
    general = tt.compile(model, [X, bias, 0.5], min_block_size=1, never_slower=False)
    assert_matches(general(X, bias, 0.5), model(X, bias, 0.5))
    assert_matches(general(X, None, 3.0), model(X, None, 3.0))

    class Required(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(ValueError, match=r"input 1 \('y'\) has no default value"):
        tt.compile(torch.jit.script(Required()), [X])


class TupleDefault(nn.Module):
    def forward(self, x, shape: Tuple[int, int] = (4, 4)):
        return x.reshape(shape)


def test_from_torchscript_takes_forwards_defaults_for_arguments_left_out():
    """from_torchscript, given fewer inputs than forward declares, converts for calls without
    the rest (their defaults fold, as compile's do): the Relax function takes the inputs given
    (it stopped at the count; nn.TransformerEncoderLayer's `src_mask=None`, test_attention.py).
    A default the Relax function cannot hold as a constant (a tuple), and an argument without
    a default, are refused by name."""
    mod, _ = tt.from_torchscript(torch.jit.script(Defaults()), [tt.Input(tuple(X.shape))])
    assert len(mod["main"].params) == 1
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    assert_matches(torch.from_numpy(vm["main"](tvm.runtime.tensor(X.numpy())).numpy()),
                   Defaults()(X))
    with pytest.raises(ValueError, match=r"input 1 \('shape'\) left out defaults to a "
                                         r"Tuple\[int, int\], which a Relax function cannot "
                                         r"take as a constant"):
        tt.from_torchscript(torch.jit.script(TupleDefault()), [tt.Input((2, 8))])

    class Required(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(ValueError, match=r"input 1 \('y'\) has no default value"):
        tt.from_torchscript(torch.jit.script(Required()), [tt.Input((2, 8))])


def assert_isolated_detections_match(actual: dict, expected: dict, at_least: int):
    """Random weights tie many scores, and float noise may order tied boxes otherwise, which
    changes what NMS keeps among them. A score at least 1e-5 from every other names its box:
    each such detection of PyTorch's (and there must be `at_least`) is in the compiled model's,
    with the same label and box."""
    assert set(actual) == set(expected) == {"boxes", "labels", "scores"}
    assert actual["scores"].shape == expected["scores"].shape
    scores = expected["scores"]
    gaps = (scores[:, None] - scores[None, :]).abs() + torch.eye(len(scores))
    isolated = (gaps.min(1).values > 1e-5).nonzero().flatten()
    assert len(isolated) >= at_least
    for k in isolated:
        nearest = (actual["scores"] - scores[k]).abs().argmin()
        torch.testing.assert_close(actual["scores"][nearest], scores[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(actual["boxes"][nearest], expected["boxes"][k],
                                   rtol=1e-4, atol=1e-3)
        assert actual["labels"][nearest] == expected["labels"][k]


def _detections(name: str) -> tuple:
    """torchvision's detector `name` (random weights, 5 classes), scripted as its users script
    it and compiled for one 160 x 160 image; PyTorch's and the compiled model's detections
    (compiled, expected) on a new image."""
    import torchvision

    sys.path.insert(0, str(ROOT / "tests" / "zoo"))
    from models import randomize_

    torch.manual_seed(0)
    scripted = torch.jit.script(randomize_(torchvision.models.get_model(
        name, weights=None, weights_backbone=None, num_classes=5)))
    compiled = tt.compile(scripted, [[torch.rand(3, 160, 160)]], never_slower=False)
    assert tt.report(compiled).regions
    with torch.no_grad():
        image = torch.rand(3, 160, 160)
        (expected,) = scripted([image])[1]
        (actual,) = compiled([image])[1]
    return actual, expected


def test_scripted_detector_with_list_input_and_list_of_dict_output():
    """torchvision's Faster R-CNN, scripted as its users script it: forward(images:
    List[Tensor], targets=None) returning (losses, List[Dict[str, Tensor]]). The backbone runs
    in TVM; NMS and what follows (data-dependent sizes) in PyTorch, and a new image, with other
    sizes kept, still works. Its scores are far enough apart that all of them match, sorted,
    within 1e-5; the labels as a set."""
    actual, expected = _detections("fasterrcnn_mobilenet_v3_large_320_fpn")
    assert expected["scores"].numel() > 10
    torch.testing.assert_close(actual["scores"].sort()[0], expected["scores"].sort()[0],
                               rtol=1e-5, atol=1e-5)
    assert torch.equal(actual["labels"].sort()[0], expected["labels"].sort()[0])
    assert_isolated_detections_match(actual, expected, at_least=6)


def test_scripted_ssdlite_with_tied_scores():
    """torchvision's SSDlite, scripted: its random head scores thousands of pairs of its 300
    detections equal, so which tied boxes survive NMS and the cut to 300 is float noise; the
    detections whose score is isolated must match."""
    actual, expected = _detections("ssdlite320_mobilenet_v3_large")
    assert_isolated_detections_match(actual, expected, at_least=5)
