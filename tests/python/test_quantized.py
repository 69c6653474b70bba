"""Quantized models (PyTorch eager-mode static and dynamic quantization, fbgemm and x86),
traced and scripted: every quantized op of the old TVM frontend converts, the whole model
compiles with no fallback, and the result matches PyTorch's int8 kernels. Convolutions run on
PyTorch's int8 kernels where its engine is x86's; elsewhere, and for the other ops, tvmbridge
computes in float32 and rounds onto the output's grid, so a value may land one quantization step
away where PyTorch's integer arithmetic rounds a near-tie the other way: the check allows one
step of the output's scale, on at most 5% of the values (or one value)."""

import warnings

import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq
import torch.nn as nn

import tvmbridge.torch as tt
from tvmbridge import build, pipeline


class ConvBlock(nn.Module):
    """quantize_per_tensor, conv2d_relu (fused), conv2d, max_pool2d, dequantize."""

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, groups=2)
        self.pool = nn.MaxPool2d(2, padding=1)

    def forward(self, x):
        return self.dequant(self.pool(self.conv2(self.relu(self.conv1(self.quant(x))))))

    fuse = [["conv1", "relu"]]


class Arithmetic(nn.Module):
    """quantized add, add_relu, mul, add_scalar, mul_scalar and cat (FloatFunctional)."""

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv = nn.Conv2d(3, 3, 1)
        self.ops = nn.ModuleList(nnq.FloatFunctional() for _ in range(6))

    def forward(self, x):
        q = self.quant(x)
        y = self.conv(q)
        a = self.ops[0].add(q, y)
        b = self.ops[1].add_relu(a, y)
        c = self.ops[2].mul(b, a)
        d = self.ops[3].add_scalar(c, 0.3)
        e = self.ops[4].mul_scalar(d, -1.5)
        return self.dequant(self.ops[5].cat([e, b], 1))


class Activations(nn.Module):
    """quantized relu6, leaky_relu, hardswish, and hardsigmoid / adaptive_avg_pool2d / mean of
    quantized tensors."""

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv = nn.Conv2d(3, 6, 3)
        self.relu6, self.leaky, self.hardswish = nn.ReLU6(), nn.LeakyReLU(0.2), nn.Hardswish()
        self.hardsigmoid = nn.Hardsigmoid()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.cat = nnq.FloatFunctional()

    def forward(self, x):
        y = self.conv(self.quant(x))
        parts = [self.relu6(y), self.leaky(y), self.hardswish(y)]
        gate = self.hardsigmoid(self.pool(parts[2]))
        pooled = torch.mean(self.pool(parts[0]), [2, 3], keepdim=True)
        return self.dequant(self.cat.cat(parts[1:], 1)), self.dequant(gate), self.dequant(pooled)


class Classifier(nn.Module):
    """linear_relu (fused), linear, flatten of a quantized tensor."""

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.fc1, self.relu, self.fc2 = nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10)

    def forward(self, x):
        return self.dequant(self.fc2(self.relu(self.fc1(torch.flatten(self.quant(x), 1)))))

    fuse = [["fc1", "relu"]]


class Upsampler(nn.Module):
    """quantized conv_transpose2d (per-tensor weights, what fbgemm supports for it)."""

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.dequant(self.up(self.quant(x)))

    qconfig = tq.default_qconfig


def quantize_static(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    model.eval()
    for group in getattr(model, "fuse", []):
        tq.fuse_modules(model, group, inplace=True)
    model.qconfig = getattr(type(model), "qconfig", tq.get_default_qconfig("fbgemm"))
    tq.prepare(model, inplace=True)
    with torch.no_grad():
        for batch in calibration:
            model(batch)
    return tq.convert(model, inplace=True)


STATIC = {
    "conv_block": (ConvBlock, (1, 3, 12, 12)),
    "arithmetic": (Arithmetic, (1, 3, 6, 6)),
    "activations": (Activations, (1, 3, 10, 10)),
    "classifier": (Classifier, (2, 3, 4, 4)),
    "conv_transpose": (Upsampler, (1, 3, 5, 5)),
}


def output_scales(model: nn.Module, x: torch.Tensor) -> list:
    """The scale of each quantized tensor the model dequantizes for its outputs."""
    scales = []
    hooks = [m.register_forward_pre_hook(lambda _, args: scales.append(args[0].q_scale()))
             for m in model.modules() if isinstance(m, nnq.DeQuantize)]
    model(x)
    for hook in hooks:
        hook.remove()
    return scales


def assert_within_one_step(actual, expected, scale):
    steps = (actual - expected).abs() / scale
    assert steps.max().item() <= 1.001, f"{steps.max().item():.2f} steps off (scale {scale})"
    off = int((steps > 0.5).sum())
    assert off <= max(1, 0.05 * steps.numel()), f"{off} of {steps.numel()} values differ"


def compile_whole(model, x, way):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.trace(model, x) if way == "trace" else torch.jit.script(model)
        return tt.compile(module, [x], require_full_compilation=True, never_slower=False)


@pytest.mark.parametrize("way", ["trace", "script"])
@pytest.mark.parametrize("name", sorted(STATIC))
def test_quantized_model_matches_pytorch(name, way):
    torch.manual_seed(0)
    build, shape = STATIC[name]
    model = quantize_static(build(), torch.randn(4, *shape) * 2)
    compiled = compile_whole(model, torch.randn(shape), way)
    # Its own generator: whether compiling draws random numbers must not change the input.
    # (The 1-step bound is not guaranteed: hardsigmoid's fixed 1/256 grid after a pooled
    # hardswish turns one input step into two output steps on about 1 input in 13 tried.)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 1.5
    with torch.no_grad():
        expected = model(x)
        actual = compiled(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = actual if isinstance(actual, tuple) else (actual,)
    scales = output_scales(model, x)
    assert len(actual) == len(expected) == len(scales)
    for a, e, scale in zip(actual, expected, scales):
        assert a.dtype == e.dtype == torch.float32 and a.shape == e.shape
        assert_within_one_step(a, e, scale)


class ResidualBlock(nn.Module):
    """A ResNet basic block after a strided stem with max pooling, and a depthwise convolution:
    the patterns whose convolutions, pooling and residual addition TVM runs on integers."""

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.stem, self.relu = nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv1, self.relu1 = nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.residual = nnq.FloatFunctional()
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)

    def forward(self, x):
        y = self.pool(self.relu(self.stem(self.quant(x))))
        y = self.residual.add_relu(self.conv2(self.relu1(self.conv1(y))), y)
        return self.dequant(self.depthwise(y))

    fuse = [["stem", "relu"], ["conv1", "relu1"]]
    qconfig = tq.get_default_qconfig("x86")


def test_convolutions_run_on_int8_kernels(monkeypatch):
    """Every quantized convolution becomes one call of an int8 kernel
    (tvmbridge.aten.quantized_conv2d), the pooling and the residual addition TVM's integer code,
    and the result equals PyTorch's int8 model's to a step; TVM's float32 form of the same model (where the kernels are not taken) agrees too."""
    torch.manual_seed(0)
    model = quantize_static(ResidualBlock(), torch.randn(4, 1, 3, 32, 32))
    x = torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod, _ = tt.from_torchscript(torch.jit.trace(model, x), [x], keep_params_as_input=False)
    fused = pipeline.fuse(mod, build.host_target(), integer_convolutions=True)
    calls = fused["main"].script().count('"tvmbridge.aten.quantized_conv2d"')
    assert calls == 4
    kernels = [gv.name_hint for gv, f in fused.functions.items()
               if not isinstance(f, type(fused["main"]))]
    assert not [k for k in kernels if "conv2d" in k], kernels  # no float32 convolution left
    assert "max_pool2d" in kernels, kernels  # pools integers: no quantize/dequantize around it
    additions = [k for k in kernels if "_add" in k]
    assert additions and not [k for k in additions if "transpose" in k], kernels  # NHWC
    with torch.no_grad():
        expected = model(x)
    scale = output_scales(model, x)[0]
    assert_within_one_step(compile_whole(model, x, "trace")(x), expected, scale)
    monkeypatch.setattr(pipeline, "_integer_convolutions", lambda: False)
    assert_within_one_step(compile_whole(model, x, "trace")(x), expected, scale)


class DynamicModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("engine", ["x86", "qnnpack"])
@pytest.mark.parametrize("way", ["trace", "script"])
def test_dynamically_quantized_linear_matches_pytorch(way, engine, monkeypatch):
    """quantized::linear_dynamic: the input's quantization is chosen per call from its range,
    so a compiled module serves inputs of any range. With x86's engine the compiled code calls
    tvmbridge.aten.quantized_linear_dynamic: PyTorch's own kernel, or on AMX-INT8 CPUs the same
    integer products on oneDNN, scaled in float32 in another order (within 1e-5 of the output's
    size); converted under another engine, it computes the same in float32 on the grids (within
    a step of the input's grid)."""
    torch.manual_seed(0)
    model = tq.quantize_dynamic(DynamicModel().eval(), {nn.Linear}, dtype=torch.qint8)
    x = torch.randn(4, 16)
    monkeypatch.setattr(torch.backends.quantized, "engine", engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.trace(model, x) if way == "trace" else torch.jit.script(model)
        relax_text = tt.from_torchscript(module, [x])[0].script()
    assert relax_text.count('"tvmbridge.aten.quantized_linear_dynamic"') == (
        2 if engine == "x86" else 0)
    compiled = tt.compile(module, [x], require_full_compilation=True, never_slower=False)
    monkeypatch.setattr(torch.backends.quantized, "engine", "x86")
    for spread in (0.1, 1.0, 20.0):
        x = torch.randn(4, 16) * spread
        with torch.no_grad():
            expected = model(x)
            # One step of the input grid times the weights' size bounds the difference.
            size = max(1.0, expected.abs().max().item())
            bound = 1e-5 * size if engine == "x86" else 2e-2 * spread * size
            torch.testing.assert_close(compiled(x), expected, rtol=0, atol=bound)


def test_quantized_tensors_do_not_cross_into_pytorch():
    """A quantized tensor that PyTorch code reads keeps its producer in PyTorch too: the
    regions take and give float tensors only."""
    torch.manual_seed(0)
    model = quantize_static(ConvBlock(), torch.randn(4, 1, 3, 12, 12))
    x = torch.randn(1, 3, 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x)
    compiled = tt.compile(traced, [x], torch_executed_ops=["aten::max_pool2d"],
                          min_block_size=1, never_slower=False)
    torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)
    placements = {n["kind"]: n["region"] for n in tt.report(compiled).nodes}
    assert placements["aten::max_pool2d"] == -1
    assert placements["quantized::conv2d"] == -1  # its quantized result goes to max_pool2d


class QuantizedOutput(nn.Module):
    def forward(self, x):
        return torch.quantize_per_tensor(x, 0.1, 10, torch.quint8)


def test_a_quantized_output_is_refused_by_the_frontend_and_left_to_pytorch_by_compile():
    x = torch.randn(2, 3)
    scripted = torch.jit.script(QuantizedOutput())
    with pytest.raises(Exception, match="returns a quantized tensor"):
        tt.from_torchscript(scripted, [x])
    compiled = tt.compile(scripted, [x], min_block_size=1, never_slower=False)
    assert compiled(x).dtype == torch.quint8
    assert torch.equal(compiled(x).int_repr(), QuantizedOutput()(x).int_repr())
