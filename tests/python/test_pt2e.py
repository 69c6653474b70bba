"""PT2E-quantized models (torchao's prepare_pt2e / convert_pt2e with X86InductorQuantizer, the
flow Inductor users quantize with) through ``compile(..., ir="export")``: the quantize and
dequantize ops convert, the convolutions run on PyTorch's int8 kernels (a residual addition
after one inside its kernel, where oneDNN takes it), and the result matches PT2E's own model to
one step of the output's scale on at most 5% of the values, as for eager-mode quantized models
(test_quantized.py)."""

import pytest
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401 (registers quantized_decomposed ops)
import torch.nn as nn

import differential
import tvmbridge.torch as tt
from test_quantized import assert_within_one_step
from tvmbridge import build, export, pipeline, quantized


def conv_bn(inputs: int, outputs: int, **conv) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1, **conv), nn.BatchNorm2d(outputs))


class Blocks(nn.Module):
    """A strided stem with ReLU and max pooling, a ResNet basic block (residual addition, then
    ReLU), and a MobileNet-V2 block (ReLU6, a depthwise convolution, a residual addition
    without activation), then max pooling, whose quantized output is the model's (so it lies
    on one grid): every pattern X86InductorQuantizer fuses around a convolution, and pooling
    on the grid of its input."""

    def __init__(self):
        super().__init__()
        self.stem, self.stem_relu = conv_bn(3, 16, stride=2), nn.ReLU()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv1, self.relu1 = conv_bn(16, 16), nn.ReLU()
        self.conv2, self.relu2 = conv_bn(16, 16), nn.ReLU()
        self.expand, self.relu6 = conv_bn(16, 32), nn.ReLU6()
        self.depthwise, self.depthwise_relu6 = conv_bn(32, 32, groups=32), nn.ReLU6()
        self.project = conv_bn(32, 16)
        self.head_pool = nn.MaxPool2d(2)

    def forward(self, x):
        y = self.pool(self.stem_relu(self.stem(x)))
        y = self.relu2(self.conv2(self.relu1(self.conv1(y))) + y)
        z = self.depthwise_relu6(self.depthwise(self.relu6(self.expand(y))))
        return self.head_pool(self.project(z) + y)


def randomise_batch_norms(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from their identity defaults, so that
    folding them into the convolutions matters."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def quantize_pt2e(model: nn.Module, x: torch.Tensor) -> torch.fx.GraphModule:
    """`model` quantized as the PT2E tutorial does (differential.quantize_pt2e), calibrated on
    four random batches of `x`'s shape, wider than `x`'s values."""
    return differential.quantize_pt2e(model, x, [torch.randn(x.shape) * 1.5 for _ in range(4)])


output_scale = differential.last_quantize_scale


@pytest.fixture(scope="module")
def blocks():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    return quantize_pt2e(randomise_batch_norms(Blocks()), x), x


def capture_relax(monkeypatch) -> list:
    """The Relax modules the export path builds from now on (their regions built again, not
    taken from the cache), appended to the list returned."""
    modules = []
    build_library = build.build_library

    def capture(mod, *args, **kwargs):
        modules.append(mod)
        return build_library(mod, *args, **kwargs)

    export.CACHE.clear()
    monkeypatch.setattr(build, "build_library", capture)
    return modules


def compiled_relax(converted, x, monkeypatch):
    """`converted` compiled through ir="export" as one region, and that region's Relax module."""
    modules = capture_relax(monkeypatch)
    compiled = tt.compile(converted, [x], ir="export", never_slower=False)
    report = tt.report(compiled)
    assert report.regions == 1 and not report.torch_ops and not report.failed_regions, report
    return compiled, modules[0]


def int8_kernel_calls(mod) -> dict:
    """How many calls of each int8 kernel `mod`'s build makes."""
    text = pipeline.fuse(mod, build.host_target(), integer_convolutions=True)["main"].script()
    kernels = (quantized.QUANTIZED_CONV2D, quantized.QUANTIZED_CONV2D_ADD,
               quantized.QUANTIZED_CONV2D_FLOAT, quantized.QUANTIZED_LINEAR_FLOAT)
    return {kernel: text.count(f'"{kernel}"') for kernel in kernels}


@pytest.mark.parametrize("residual_adds", [True, False])
def test_pt2e_convolutions_run_on_int8_kernels(blocks, residual_adds, monkeypatch):
    """The whole model is one TVM region; every convolution is a call of an int8 kernel, the
    two residual additions inside theirs (oneDNN's) where that is chosen, no float32
    convolution is left, and the max poolings pool integers. Both choices match PT2E's model
    to a step."""
    converted, x = blocks
    monkeypatch.setattr(pipeline, "_onednn_int8_kernels", lambda: residual_adds)
    compiled, mod = compiled_relax(converted, x, monkeypatch)
    calls = int8_kernel_calls(mod)
    plain, added = calls[quantized.QUANTIZED_CONV2D], calls[quantized.QUANTIZED_CONV2D_ADD]
    assert (plain, added) == ((4, 2) if residual_adds else (4, 0)), calls
    fused = pipeline.fuse(mod, build.host_target(), integer_convolutions=True)
    kernels = [gv.name_hint for gv, f in fused.functions.items()
               if not isinstance(f, type(fused["main"]))]
    # Without the fused additions, the two convolutions before them stay float32: TVM's
    # kernels, or oneDNN's where this CPU runs float32 convolutions there.
    float_convolutions = [k for k in kernels if "conv2d" in k]
    onednn_float_convolutions = sum(fused["main"].script().count(f'"{kernel}"') for kernel in (
        pipeline._PACKED_CONV2D, pipeline._PACKED_CONV2D_BIAS))
    assert len(float_convolutions) + onednn_float_convolutions == (0 if residual_adds else 2), (
        kernels, onednn_float_convolutions)
    pools = [k for k in kernels if "max_pool2d" in k]
    assert len(pools) == 2 and not [k for k in pools if "quantize" in k], kernels
    with torch.no_grad():
        expected = converted(x)
        actual = compiled(x)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    assert_within_one_step(actual, expected, output_scale(converted))


def test_pt2e_model_matches_on_new_inputs(blocks):
    """Compiled once, called on inputs it was not compiled or calibrated with (default
    settings: never_slower measures the region against PyTorch's)."""
    converted, x = blocks
    compiled = tt.compile(converted, [x], ir="export")
    scale = output_scale(converted)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        sample = torch.randn(x.shape, generator=generator) * 2
        with torch.no_grad():
            assert_within_one_step(compiled(sample), converted(sample), scale)


class ClippedConvolution(nn.Module):
    """A convolution clamped to [-1, 0.5]: a clip on both sides, neither of them relu's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.clamp = nn.Hardtanh(-1.0, 0.5)

    def forward(self, x):
        return self.clamp(self.conv(x))


def test_pt2e_hardtanh_with_other_bounds_matches():
    """A clip that is not relu6 after a convolution converts, and its bounds hold."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 8, 8)
    converted = quantize_pt2e(ClippedConvolution(), x)
    compiled = tt.compile(converted, [x], ir="export", never_slower=False)
    report = tt.report(compiled)
    assert report.regions == 1 and not report.torch_ops, report
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 3
    with torch.no_grad():
        expected, actual = converted(sample), compiled(sample)
    assert_within_one_step(actual, expected, output_scale(converted))
    assert actual.min() >= -1.0 - 1e-6 and actual.max() <= 0.5 + 1e-6


class SixteenBitRoundTrip(nn.Module):
    """PT2E's quantize ops on int16 (a custom QuantizationSpec gives these), around float ops."""

    def forward(self, x):
        ops = torch.ops.quantized_decomposed
        q = ops.quantize_per_tensor(x * 3, 0.01, 0, -32768, 32767, torch.int16)
        return torch.relu(ops.dequantize_per_tensor(q, 0.01, 0, -32768, 32767, torch.int16) + 1)


def test_pt2e_quantization_to_other_dtypes_stays_in_pytorch():
    """Only the 8-bit dtypes the int8 kernels take convert; an int16 quantize and dequantize
    run in PyTorch, the float ops around them in TVM, and the result is PyTorch's."""
    x = torch.randn(2, 8)
    compiled = tt.compile(SixteenBitRoundTrip(), [x], ir="export", never_slower=False,
                          min_block_size=1)
    report = tt.report(compiled)
    assert report.torch_ops == {"quantized_decomposed::quantize_per_tensor": 1,
                                "quantized_decomposed::dequantize_per_tensor": 1}, report
    assert report.regions == 2 and not report.failed_regions, report
    sample = torch.randn(2, 8, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(compiled(sample), SixteenBitRoundTrip()(sample), rtol=0, atol=0)


class TwoLinears(nn.Module):
    """Linear, ReLU, linear on a [batch, tokens, features] input, as a transformer's MLP."""

    def __init__(self):
        super().__init__()
        self.up, self.relu, self.down = nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)

    def forward(self, x):
        return self.down(self.relu(self.up(x)))


# Models whose last layer PT2E leaves with a float32 output: (model, input shape, the last
# layer, the int8 kernel with a float32 result that takes each such layer, how many).
FLOAT_RESULTS = {
    "convolution": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(8, 4, 3)),
                    (1, 3, 12, 12), lambda model: model[2], quantized.QUANTIZED_CONV2D_FLOAT, 1),
    "linear": (TwoLinears, (2, 10, 16), lambda model: model.down,
               quantized.QUANTIZED_LINEAR_FLOAT, 2),
}


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("layer", sorted(FLOAT_RESULTS))
def test_pt2e_layers_with_float32_results(layer, onednn, monkeypatch):
    """A convolution or linear layer whose output PT2E leaves in float32 (the model's last;
    and every linear layer, whose bias TVM adds before quantizing) runs on oneDNN's int8 kernel
    with a float32 result where that is chosen, else in float32 on the dequantized values;
    either matches PT2E's model to what one step of the last layer's input can move it (the
    step times the largest sum of absolute weights of an output, doubled for the weights' own
    rounding)."""
    make, shape, last_layer, kernel, layers = FLOAT_RESULTS[layer]
    torch.manual_seed(0)
    model, x = make(), torch.randn(shape)
    converted = quantize_pt2e(model, x)
    monkeypatch.setattr(pipeline, "_onednn_int8_kernels", lambda: onednn)
    compiled, mod = compiled_relax(converted, x, monkeypatch)
    assert int8_kernel_calls(mod)[kernel] == (layers if onednn else 0)
    weight = last_layer(model).weight
    one_step = output_scale(converted) * weight.abs().reshape(len(weight), -1).sum(1).max().item()
    sample = torch.randn(shape, generator=torch.Generator().manual_seed(3)) * 2
    with torch.no_grad():
        torch.testing.assert_close(compiled(sample), converted(sample), rtol=0,
                                   atol=2 * one_step)


def test_pt2e_model_through_the_torch_compile_backend(blocks, monkeypatch):
    """torch.compile(backend="tvmbridge") of a PT2E model: dynamo's graph is one TVM region
    whose convolutions run on the int8 kernels, and it matches PT2E's model to a step."""
    converted, x = blocks
    modules = capture_relax(monkeypatch)
    reports = []

    def recording_backend(graph_module, example_inputs):
        run = export.backend(graph_module, example_inputs, never_slower=False)
        reports.append(run.tvmbridge_report)
        return run

    torch._dynamo.reset()
    optimized = torch.compile(converted, backend=recording_backend)
    with torch.no_grad():
        actual, expected = optimized(x), converted(x)
    assert len(reports) == 1 and reports[0].regions == 1 and not reports[0].torch_ops, reports
    calls = int8_kernel_calls(modules[0])
    assert calls[quantized.QUANTIZED_CONV2D] + calls[quantized.QUANTIZED_CONV2D_ADD] == 6, calls
    assert_within_one_step(actual, expected, output_scale(converted))
