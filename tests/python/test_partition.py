"""Partial compilation: what TVM cannot take stays in TorchScript, and the result is right.

The four models of the partitioning issue: a detection head with data-dependent ops after a
convolutional trunk, a scripted greedy decoder (data-dependent while loop around a GRU cell),
an in-place write between two convolutions, and a custom op registered only in PyTorch.
"""

from typing import Dict, Optional

import pytest
import torch
import torch.nn as nn

import tvmbridge
import tvmbridge.torch as tt
from conftest import randomize_
from shared_models import DetectionHead, GreedyDecoder, WithCustomOp

TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def compile_and_check(model, inputs, **options):
    """Compiles (scripted), compares with eager PyTorch, saves and reloads; returns the
    explanation."""
    scripted = torch.jit.script(model)
    compiled = tt.compile(scripted, inputs=[tt.Input(tuple(x.shape), x.dtype) for x in inputs],
                          **options, never_slower=False)
    with torch.no_grad():
        expected = model(*inputs)
        actual = compiled(*inputs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    return tt.explain(scripted, inputs, **options), compiled


def test_detection_head():
    torch.manual_seed(0)
    model = randomize_(DetectionHead())
    explanation, _ = compile_and_check(model, [torch.randn(1, 3, 16, 16)])
    assert explanation.placement_of("aten::conv2d") == {"TVM block 0"}
    assert explanation.placement_of("aten::topk") == {"TVM block 0"}
    for kind in ("aten::nonzero", "aten::index_select"):
        assert explanation.placement_of(kind) == {"PyTorch"}, kind
    # selected * 2 + 1 has a data-dependent shape: it must not be compiled for one size.
    mul = [n for n in explanation.nodes if n["kind"] == "aten::mul"]
    assert mul and all(n["region"] < 0 for n in mul)
    assert any("data-dependent shape" in n["reason"] for n in mul)
    assert {n["cause"] for n in mul} == {"input_from_pytorch"}


def test_greedy_decoder_with_data_dependent_loop():
    torch.manual_seed(3)
    model = GreedyDecoder().eval()
    h = torch.randn(1, 32)
    explanation, compiled = compile_and_check(model, [h])
    assert explanation.placement_of("prim::Loop") == {"PyTorch"}
    assert explanation.placement_of("aten::gru_cell") == {"PyTorch"}
    # The dense part of the loop body is compiled, inside the loop.
    assert explanation.placement_of("aten::linear") == {"TVM block 0"}
    assert explanation.placement_of("aten::tanh") == {"TVM block 0"}
    # Another start state takes a different number of steps and still matches.
    h2 = torch.randn(1, 32) * 3
    with torch.no_grad():
        torch.testing.assert_close(compiled(h2), model(h2), **TOLERANCE)


class InPlaceBetweenConvolutions(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 3, padding=1)
        self.third = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.first(x)
        y.add_(0.5)                 # removable by TorchScript: becomes functional
        y[:, 0] = 0.0               # through a view of a fresh tensor: becomes a scatter
        z = torch.relu(self.second(torch.relu(y)))
        return self.third(z) + y.mean()


def test_in_place_write_through_a_view_is_compiled():
    torch.manual_seed(0)
    model = InPlaceBetweenConvolutions().eval()
    explanation, _ = compile_and_check(model, [torch.randn(1, 3, 12, 12)], min_block_size=1)
    assert not [n for n in explanation.nodes if n["kind"] in ("aten::fill_", "aten::copy_")]
    assert not explanation.torch_nodes
    assert len(explanation.regions) == 1


class ViewReadAfterWrite(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.first(x)
        row = y[:, 0]
        row.add_(1.0)               # the view is read again below: stays in PyTorch, in order
        return self.second(torch.relu(y)) + row.mean()


def test_in_place_write_to_a_view_read_again_stays_in_pytorch():
    torch.manual_seed(0)
    model = ViewReadAfterWrite().eval()
    explanation, _ = compile_and_check(model, [torch.randn(1, 3, 12, 12)], min_block_size=1)
    write = [n for n in explanation.nodes if n["kind"] == "aten::add_"]
    assert write and all(n["region"] < 0 for n in write)
    assert explanation.placement_of("aten::select") == {"PyTorch"}
    assert len(explanation.regions) == 2  # before and after the write


def test_custom_op_stays_in_pytorch(tmp_path):
    torch.manual_seed(0)
    model = randomize_(WithCustomOp())
    x = torch.randn(2, 3, 8, 8)
    explanation, compiled = compile_and_check(model, [x], min_block_size=1)
    assert explanation.placement_of("tvmbridge_test::scale_shift") == {"PyTorch"}
    assert len(explanation.regions) == 2
    path = tmp_path / "custom.pt"
    torch.jit.save(compiled, str(path))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(path))(x), model(x), **TOLERANCE)


def test_require_full_compilation_lists_every_unsupported_op_with_location():
    torch.manual_seed(0)
    scripted = torch.jit.script(randomize_(DetectionHead()))
    with pytest.raises(tvmbridge.UnsupportedOperatorError) as info:
        tt.compile(scripted, inputs=[tt.Input((1, 3, 16, 16))], require_full_compilation=True,
                   never_slower=False)
    message = str(info.value)
    for kind in ("aten::nonzero", "aten::index_select"):
        assert kind in message
    assert "shared_models.py:" in message  # source locations


def test_torch_executed_ops_and_modules():
    torch.manual_seed(0)
    model = randomize_(WithCustomOp())
    x = torch.randn(2, 3, 8, 8)
    scripted = torch.jit.script(model)
    forced = tt.explain(scripted, [x], min_block_size=1, torch_executed_ops=["aten::relu"])
    assert forced.placement_of("aten::relu") == {"PyTorch"}
    assert any("torch_executed_ops" in n["reason"] for n in forced.nodes_for("user_choice"))
    by_module = tt.explain(scripted, [x], min_block_size=1, torch_executed_modules=["fc"])
    assert by_module.placement_of("aten::linear") == {"PyTorch"}
    with pytest.raises(ValueError, match="not an operator TorchScript knows"):
        tt.explain(scripted, [x], torch_executed_ops=["aten::no_such_op"])
    with pytest.raises(ValueError, match="no op of the model runs inside a submodule named"):
        tt.explain(scripted, [x], torch_executed_modules=["NoSuchHead"])


def test_min_block_size_keeps_small_regions_in_pytorch():
    torch.manual_seed(0)
    model = randomize_(WithCustomOp())
    x = torch.randn(2, 3, 8, 8)
    small = tt.explain(torch.jit.script(model), [x], min_block_size=1)
    large = tt.explain(torch.jit.script(model), [x], min_block_size=3)
    assert len(small.regions) == 2
    assert len(large.regions) == 1  # mean + fc after the custom op: 2 ops, stay in PyTorch
    assert any("below min_block_size=3" in n["reason"]
               for n in large.nodes_for("below_min_block_size"))


@pytest.mark.parametrize("layer", ["lstm", "transformer_encoder_layer"])
def test_a_whole_layer_in_one_op_makes_a_region_of_its_own(layer):
    """min_block_size counts ops; one op that is a whole layer (aten::lstm, PyTorch's fused
    transformer encoder layer) is dozens of kernels' work, so it goes to TVM alone."""
    torch.manual_seed(0)
    if layer == "lstm":
        model, x, op = nn.LSTM(16, 32, batch_first=True), torch.randn(1, 10, 16), "aten::lstm"
    else:
        model = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
        x, op = torch.randn(2, 10, 64), "aten::_transformer_encoder_layer_fwd"
    model = randomize_(model).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        explanation = tt.explain(traced, [x], min_block_size=3)
        assert explanation.placement_of(op) == {"TVM block 0"}, str(explanation)
        assert not explanation.nodes_for("below_min_block_size")
        compiled = tt.compile(traced, [x], never_slower=False)
        torch.testing.assert_close(compiled(x), model(x), **TOLERANCE)


def test_explain_prints_a_table():
    torch.manual_seed(0)
    text = str(tt.explain(torch.jit.script(randomize_(DetectionHead())),
                          [torch.randn(1, 3, 16, 16)]))
    assert "TVM block 0" in text and "PyTorch" in text and "aten::nonzero" in text


class RepeatedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        for _ in range(x.size(0)):   # trip count from a static shape
            x = torch.relu(self.fc(x)) + 0.5
        return x


def test_static_loop_is_unrolled_by_from_torchscript_and_by_compile():
    import numpy as np
    import tvm

    torch.manual_seed(0)
    model = RepeatedLayer().eval()
    scripted = torch.jit.script(model)
    x = torch.randn(3, 8)
    mod, params = tt.from_torchscript(scripted, [tt.Input((3, 8))])
    assert mod.script(show_meta=False).count("R.matmul") == 3
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x.numpy()), *params.values())
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
        explanation, _ = compile_and_check(model, [x], min_block_size=1)
    assert explanation.placement_of("prim::Loop") == set()  # unrolled: x.size(0) is static
    assert explanation.placement_of("aten::linear") == {"TVM block 0"}
    assert len(explanation.regions) == 1
    assert sum(n["kind"] == "aten::linear" for n in explanation.nodes) == 3


class LoopNest(nn.Module):
    """Both trip counts come from static shapes: 60 x 60 = 3600 copies of the body unrolled."""

    def forward(self, x):
        total = torch.zeros_like(x)
        scaled = x * 2.0
        for i in range(x.size(0)):
            for j in range(x.size(1)):
                total = total + scaled * 0.25
        return total


def test_unrolling_has_a_budget():
    """A loop nest that would unroll past the budget (1024 nodes) keeps its outer loop as a
    TorchScript loop around the unrolled inner one, compiled once; a small nest unrolls
    whole."""
    model = torch.jit.script(LoopNest())
    big = torch.randn(60, 60)
    explanation = tt.explain(model, [big], min_block_size=1)
    (loop,) = [n for n in explanation.nodes if n["kind"] == "prim::Loop"]  # the outer one
    assert loop["region"] < 0 and "too long to unroll" in loop["reason"]
    assert loop["cause"] == "control_flow" and loop["fallback"]
    # Before the loop: zeros_like and the scaling; in it: the unrolled inner loop.
    assert sorted(r["nodes"] for r in explanation.regions) == [2, 120]
    assert sum(n["kind"] == "aten::add" for n in explanation.nodes) == 60  # the inner, unrolled
    compiled = tt.compile(model, [big], min_block_size=1, never_slower=False)
    torch.testing.assert_close(compiled(big), model(big), rtol=1e-4, atol=1e-4)
    small = torch.randn(4, 5)
    explanation = tt.explain(model, [small], min_block_size=1)
    assert explanation.placement_of("prim::Loop") == set()
    assert sum(n["kind"] == "aten::add" for n in explanation.nodes) == 20


def test_partitioned_model_runs_from_cpp(tmp_path):
    import subprocess

    from conftest import BUILD

    torch.manual_seed(0)
    model = randomize_(DetectionHead())
    compiled = tt.compile(torch.jit.script(model), inputs=[tt.Input((1, 3, 16, 16))],
                          never_slower=False)
    path = tmp_path / "head_tvm.pt"
    torch.jit.save(compiled, str(path))
    out = tmp_path / "out.pkl"
    result = subprocess.run(
        [str(BUILD / "tvmbridge-run"), str(path), "--input", "1x3x16x16", "--seed", "3",
         "--repeat", "1", "--warmup", "0", "--save-output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    torch.manual_seed(3)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    for actual, wanted in zip(torch.load(out), expected):
        torch.testing.assert_close(actual, wanted, **TOLERANCE)


class SmallUNet(nn.Module):
    """A group norm, a transposed convolution and a channel mean after packed (NCHW16c)
    convolutions: TVM 0.27's layout handling failed on each, and the whole compile with it."""

    def __init__(self):
        super().__init__()
        self.down1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(4, 8)
        self.down2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        skip = torch.relu(self.norm(self.down1(x)))
        deep = torch.relu(self.down2(skip))
        upsampled = nn.functional.interpolate(deep, scale_factor=2.0, mode="nearest")
        joined = torch.cat([skip, self.up(deep)], 1)
        return self.head(joined) + upsampled.mean(1, keepdim=True)


def test_unet_with_group_norm_transposed_convolution_and_channel_mean_compiles_whole():
    model = randomize_(SmallUNet()).eval()
    explanation, compiled = compile_and_check(model, [torch.randn(1, 3, 16, 16)])
    assert not explanation.torch_nodes
    assert len(tt.report(compiled).regions) == 1 and not tt.report(compiled).build_failures


class TwoRegions(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        scores = torch.relu(self.conv(x)).mean([2, 3])
        ranked, _ = torch.cummax(scores, dim=1)  # no converter: splits the regions
        return torch.sigmoid(ranked) * 2.0 + 1.0


def test_a_region_tvm_cannot_build_runs_in_pytorch(monkeypatch):
    """A TVM build failure costs its region only: the region runs in PyTorch, with a warning
    and an entry in the report; require_full_compilation makes it an error."""
    import tvm

    from tvmbridge import build

    real_build = build.build_library

    def failing_for_sigmoid(mod, *args, **kwargs):
        if "sigmoid" in mod.script():
            raise tvm.error.InternalError("injected: TVM cannot build sigmoid today")
        return real_build(mod, *args, **kwargs)

    monkeypatch.setattr(build, "build_library", failing_for_sigmoid)
    model = randomize_(TwoRegions()).eval()
    x = torch.randn(1, 3, 8, 8)
    scripted = torch.jit.script(model)
    with pytest.warns(UserWarning, match="TVM could not build a region of 3 node"):
        compiled = tt.compile(scripted, [x], min_block_size=1, never_slower=False)
    torch.testing.assert_close(compiled(x), model(x), **TOLERANCE)
    report = tt.report(compiled)
    assert [f["nodes"] for f in report.build_failures] == [3]
    assert "injected: TVM cannot build sigmoid today" in report.build_failures[0]["error"]
    assert report.placement_of("aten::sigmoid") == {"PyTorch"}
    assert report.placement_of("aten::conv2d") != {"PyTorch"}
    sigmoid = next(n for n in report.nodes if n["kind"] == "aten::sigmoid")
    assert sigmoid["fallback"] and sigmoid["cause"] == "build_failed"
    assert sigmoid["reason"].startswith("TVM could not build this region")
    with pytest.raises(Exception, match="injected"):
        tt.compile(torch.jit.trace(doubled_sigmoid, x), [x], never_slower=False,
                   require_full_compilation=True)


def doubled_sigmoid(x):
    return torch.sigmoid(x) * 2.0


def test_the_causes_python_lists_are_the_ones_reports_give():
    from tvmbridge import _native

    native = [str(name) for name in _native.global_func("tvmbridge.torch.placement_causes")()]
    assert tuple(native) == tt.CAUSES


class ClassTokenFirst(nn.Module):
    """timm's ViT `_pos_embed`: a list grown under attribute checks, joined to another with +
    (aten::add.t, the list overload of add) and concatenated."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, 4))
        self.reg_token: Optional[torch.Tensor] = None

    def forward(self, x):
        to_cat = []
        if self.cls_token is not None:
            to_cat.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.reg_token is not None:
            to_cat.append(self.reg_token.expand(x.shape[0], -1, -1))
        return torch.cat(to_cat + [x], dim=1) * 2.0


def test_lists_joined_with_plus_convert():
    model = torch.jit.script(ClassTokenFirst().eval())
    x = torch.randn(2, 3, 4)
    compiled = tt.compile(model, [x], min_block_size=1, never_slower=False)
    assert all(node["region"] >= 0 for node in tt.report(compiled).nodes)
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


class MemoisedBias(nn.Module):
    """timm's LeViT attention: a bias computed once per device and kept in a dict attribute,
    which forward writes, so freezing keeps it."""

    def __init__(self):
        super().__init__()
        self.biases = nn.Parameter(torch.randn(4, 6))
        self.register_buffer("index", torch.tensor([[0, 5, 2], [1, 1, 3]]), persistent=False)
        self.cache: Dict[str, torch.Tensor] = {}

    def bias(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self.cache:
            self.cache[key] = self.biases[:, self.index]
        return self.cache[key]

    def forward(self, x):
        return torch.softmax(x + self.bias(x.device), -1)


def test_a_dict_attribute_used_as_a_memo_is_computed_in_tvm():
    model = MemoisedBias().eval()
    x = torch.randn(2, 4, 2, 3)
    expected = model(x)  # fills the memo, as a model used before compiling has
    compiled = tt.compile(torch.jit.script(model), [x], min_block_size=1, never_slower=False)
    assert all(node["region"] >= 0 for node in tt.report(compiled).nodes)
    torch.testing.assert_close(compiled(x), expected, rtol=1e-6, atol=1e-6)
