"""precision="bf16" on every path, PyTorch's matrix-product kernels, and one thread pool.

Accuracy is stated as in README: cosine similarity with PyTorch's float32 output at least
0.999, and the largest error at most 3% of the output's largest magnitude (bfloat16 keeps 8
bits of mantissa; products accumulate in float32). Tests that bfloat16 was really used assert
that the error is above float32's.
"""

import os
import subprocess

import pytest
import torch

import tvmbridge.torch as tt
from conftest import BUILD, run_in_threads


class Block(torch.nn.Module):
    """A transformer block's matrix products: projections, attention, GELU feed-forward."""

    def __init__(self, width: int = 64, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, 4 * width)
        self.down = torch.nn.Linear(4 * width, width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
        mixed = (scores @ v).transpose(1, 2).reshape(batch, length, width)
        x = self.norm(x + self.out(mixed))
        return x + self.down(torch.nn.functional.gelu(self.up(x)))


def _model_and_input():
    torch.manual_seed(0)
    return Block().eval(), torch.randn(2, 16, 64)


def _accuracy(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    cosine = torch.nn.functional.cosine_similarity(actual.flatten(), expected.flatten(), dim=0)
    relative = (actual - expected).abs().max() / expected.abs().max()
    return cosine.item(), relative.item()


def _assert_bf16_accuracy(actual, expected):
    assert actual.dtype == expected.dtype == torch.float32  # outputs keep their dtype
    cosine, relative = _accuracy(actual, expected)
    assert cosine >= 0.999, f"cosine similarity {cosine}"
    assert relative <= 0.03, f"largest error {relative:.3g} of the output's magnitude"
    assert relative > 1e-5, "as exact as float32: the products did not run in bfloat16"


def test_fp32_default_matches_pytorch():
    model, x = _model_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", torch.bfloat16])
def test_bf16_torchscript_within_stated_accuracy(precision):
    model, x = _model_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False,
                          precision=precision)
    _assert_bf16_accuracy(compiled(x), model(x))
    # NaN stays NaN, in the rows it reaches, as in PyTorch.
    poisoned = x.clone()
    poisoned[0, 3, 5] = float("nan")
    torch.testing.assert_close(torch.isnan(compiled(poisoned)), torch.isnan(model(poisoned)))


@pytest.mark.parametrize("width", [16, 128])
def test_bf16_keeps_linear_layers_with_small_weights_in_float32(width):
    """With precision="bf16", linear layers whose weights have under 64x256 elements compute in
    float32 (bfloat16 saves them nothing and its casts cost: pipeline._BF16_MIN_WEIGHT_ELEMENTS),
    so a model of such layers gives float32's results; larger ones run in bfloat16."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(width, 6 * width), torch.nn.Tanh(),
                                torch.nn.Linear(6 * width, width)).eval()
    x = torch.randn(4, width)
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False, precision="bf16")
    with torch.no_grad():
        actual, expected = compiled(x), model(x)
    if width * 6 * width < 64 * 256:
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    else:
        _assert_bf16_accuracy(actual, expected)


class FeedForward(torch.nn.Module):
    """A transformer's feed-forward block: 128 -> 512 with its bias and GELU, 512 -> 128, the
    residual addition."""

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(128, 512), torch.nn.Linear(512, 128)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(x)))


def test_bf16_linear_layers_take_their_bias_and_gelu_in_onednns_kernel():
    """With precision="bf16" on AMX CPUs, a linear layer's bias and GELU go into oneDNN's kernel
    (packed_linear_bias_gelu) instead of TVM's pass over the result (BERT-base's feed-forward
    layers); other CPUs keep that pass. Results within bfloat16's stated accuracy, and NaN and
    infinities in the input give PyTorch's NaN and infinity masks."""
    from tvmbridge import build, pipeline

    torch.manual_seed(0)
    model, x = FeedForward().eval(), torch.randn(2, 16, 128)
    traced = torch.jit.trace(model, x)
    mod, _ = tt.from_torchscript(traced, [x], keep_params_as_input=False)
    fused = pipeline.fuse(mod, build.host_target(), "bf16").script()
    in_kernel = (pipeline.has_cpu_flag("amx_bf16")
                 and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert fused.count("tvmbridge.aten.packed_linear_bias_gelu") == int(in_kernel)
    # TVM's GELU is a block of that name (its erf is our polynomial, vector_math.py).
    assert ('sblock("gelu")' in fused) == (not in_kernel)
    compiled = tt.compile(traced, [x], never_slower=False, precision="bf16")
    poisoned = x.clone()
    poisoned[0, 3, 5], poisoned[1, 7, 0] = float("nan"), float("inf")
    with torch.no_grad():
        _assert_bf16_accuracy(compiled(x), model(x))
        actual, expected = compiled(poisoned), model(poisoned)
    assert torch.isnan(expected).any()
    torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
    torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))


def test_bf16_export_and_torch_compile_paths():
    model, x = _model_and_input()
    # never_slower=False: on a loaded machine the check may hand a region back to PyTorch,
    # whose float32 is what _assert_bf16_accuracy must not see.
    exported = tt.compile(model, [x], ir="export", precision="bf16", never_slower=False)
    _assert_bf16_accuracy(exported(x), model(x))
    dynamo = torch.compile(model, backend="tvmbridge",
                           options={"precision": "bf16", "never_slower": False})
    _assert_bf16_accuracy(dynamo(x), model(x))
    misspelt = torch.compile(model, backend="tvmbridge", options={"precison": "bf16"})
    with pytest.raises(Exception, match="unknown option.s. precison; it takes target"):
        misspelt(x)


def test_bf16_enable():
    model, x = _model_and_input()
    frozen = torch.jit.freeze(torch.jit.trace(model, x))
    with torch.no_grad(), tt.enabled(cache_dir=None, precision="bf16", never_slower=False):
        for _ in range(3):  # TorchScript's profiling run, then the groups' first call
            result = frozen(x)
    _assert_bf16_accuracy(result, model(x))


def test_unknown_precision_is_refused_with_the_choices():
    model, x = _model_and_input()
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16.*'fp16'"):
        tt.compile(torch.jit.trace(model, x), [x], precision="fp16")


def test_parallel_loops_follow_torch_threads():
    """Compiled code runs its parallel loops on PyTorch's threads (src/runtime/
    torch_threads.cc): the same answer with one thread and with all of them."""
    model, x = _model_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = compiled(x)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(compiled(x), single, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(single, model(x), rtol=1e-5, atol=1e-5)


# oneDNN's bfloat16 convolutions need AVX-512 (or AVX-NE-CONVERT); elsewhere convolutions stay
# TVM's, in float32, and these tests have nothing to check.
needs_bf16_convolutions = pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason="this CPU has no oneDNN bfloat16 convolutions")


class ConvNet(torch.nn.Module):
    """The convolutions of CNNs: a stem with batch norm and pooling, a residual block, a
    strided and a dilated convolution, a depthwise and a grouped one, and one with padding
    on a single side (which stays TVM's, in float32)."""

    def __init__(self, channels: int = 16, depthwise: bool = True):
        super().__init__()
        c = channels
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, c, 3, padding=1, bias=False),
                                        torch.nn.BatchNorm2d(c), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d(2))
        self.residual = torch.nn.Conv2d(c, c, 3, padding=1)
        self.strided = torch.nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.dilated = torch.nn.Conv2d(2 * c, 2 * c, 3, padding=2, dilation=2)
        self.depthwise = torch.nn.Conv2d(2 * c, 2 * c, 3, padding=1,
                                         groups=2 * c if depthwise else 1)
        self.grouped = torch.nn.Conv2d(2 * c, 2 * c, 1, groups=4)
        self.one_sided = torch.nn.Sequential(torch.nn.ZeroPad2d((0, 1, 0, 1)),
                                             torch.nn.Conv2d(2 * c, c, 2))

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.residual(x))
        x = self.dilated(torch.relu(self.strided(x)))
        x = self.grouped(torch.nn.functional.relu6(self.depthwise(x)))
        return self.one_sided(x)


def _conv_net_and_input(seed: int = 0, depthwise: bool = True):
    torch.manual_seed(seed)
    model = ConvNet(depthwise=depthwise).eval()
    with torch.no_grad():  # batch norm statistics that are not the identity
        model.stem[1].running_mean.uniform_(-0.5, 0.5)
        model.stem[1].running_var.uniform_(0.5, 2.0)
    return model, torch.randn(2, 3, 32, 32)


def _assert_fp32_matches_with_nan_and_inf(compiled, model, x, poisoned) -> set:
    """`compiled` matches `model` in float32 on `x`, and on `poisoned` (x with NaN and inf put
    in) its NaN and infinity masks are PyTorch's. Returns the names of the ops that ran."""
    with torch.no_grad(), torch.profiler.profile() as profile:
        actual, actual_poisoned = compiled(x), compiled(poisoned)
    with torch.no_grad():
        torch.testing.assert_close(actual, model(x), rtol=1e-4, atol=1e-5)
        expected_poisoned = model(poisoned)
    torch.testing.assert_close(torch.isnan(actual_poisoned), torch.isnan(expected_poisoned))
    torch.testing.assert_close(torch.isinf(actual_poisoned), torch.isinf(expected_poisoned))
    assert torch.isnan(expected_poisoned).any()
    return {event.name for event in profile.events()}


@pytest.fixture
def static_convolution_choice(monkeypatch):
    """Builds with pipeline.uses_onednn_convolutions's choice alone, not timing the other
    kernels: for tests of one kernel's numerics."""
    from tvmbridge import pipeline

    monkeypatch.setattr(pipeline, "convolution_kernel_choices",
                        lambda precision, mod, tuning=False: (
                            pipeline.uses_onednn_convolutions(precision, mod, tuning),))


def test_fp32_convolutions_run_where_chosen_and_match_pytorch(static_convolution_choice):
    """float32 convolutions of a model without depthwise ones run on oneDNN (NHWC, packed
    weights) where the static choice says (this CPU), and TVM's otherwise; either way the
    outputs, NaN and infinities included, are PyTorch's."""
    from tvmbridge import pipeline

    model, x = _conv_net_and_input(depthwise=False)
    traced = torch.jit.trace(model, x)
    mod, _ = tt.from_torchscript(traced, [x])
    compiled = tt.compile(traced, [x], never_slower=False)
    kernels = _assert_fp32_matches_with_nan_and_inf(compiled, model, x, _poisoned(x))
    on_onednn = "tvmbridge::onednn_conv2d" in kernels
    assert on_onednn == pipeline.uses_onednn_convolutions("fp32", mod)


def _made_up_build_timings(monkeypatch, first_ms: float, second_ms: float) -> list:
    """Makes build's timing of two builds (tvmbridge.torch.time_alternately) report
    `first_ms` for the first build and `second_ms` for the second, after running both (they
    load and run on the made-up inputs); returns the list each timing appends to."""
    from tvmbridge import _native

    timed, real_global_func = [], _native.global_func

    def global_func(name):
        if name != "tvmbridge.torch.time_alternately":
            return real_global_func(name)

        def time_alternately(run_first, run_second):
            run_first(), run_second()
            timed.append(name)
            return [second_ms, first_ms]
        return time_alternately

    monkeypatch.setattr(_native, "global_func", global_func)
    return timed


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16_convolutions)])
@pytest.mark.parametrize("faster", ["oneDNN", "TVM"])
@pytest.mark.parametrize("depthwise", [True, False], ids=["depthwise", "plain"])
def test_convolutions_run_on_the_kernels_timed_faster(monkeypatch, precision, faster,
                                                      depthwise):
    """A region with convolutions is built both ways (oneDNN's and TVM's convolutions),
    loaded and timed both ways, and the faster kept: the kernels that run are the ones the
    timing (made up here, so that the test does not depend on this machine) said were
    faster, and the outputs match PyTorch's, NaN and infinities included."""
    from tvmbridge import pipeline

    model, x = _conv_net_and_input(depthwise=depthwise)
    traced = torch.jit.trace(model, x)
    mod, _ = tt.from_torchscript(traced, [x], keep_params_as_input=False)  # as build sees it
    if pipeline._avx512_vendor() is None:
        pytest.skip("without AVX-512 float32 convolutions are TVM's: there is nothing to time")
    without_convolutions, _ = tt.from_torchscript(
        torch.jit.trace(torch.nn.Linear(8, 4).eval(), torch.randn(2, 8)), [torch.randn(2, 8)],
        keep_params_as_input=False)
    assert len(pipeline.convolution_kernel_choices(precision, without_convolutions)) == 1
    choices = pipeline.convolution_kernel_choices(precision, mod)
    assert choices == (pipeline.uses_onednn_convolutions(precision, mod),
                       not pipeline.uses_onednn_convolutions(precision, mod))
    milliseconds = {onednn: 1.0 if onednn == (faster == "oneDNN") else 2.0 for onednn in choices}
    timed = _made_up_build_timings(monkeypatch, milliseconds[choices[0]],
                                   milliseconds[choices[1]])
    compiled = tt.compile(traced, [x], never_slower=False, precision=precision)
    assert len(timed) == 1  # one region, timed both ways
    with torch.no_grad(), torch.profiler.profile() as profile:
        actual = compiled(x)
    on_onednn = "tvmbridge::onednn_conv2d" in {event.name for event in profile.events()}
    assert on_onednn == (faster == "oneDNN")
    with torch.no_grad():
        expected = model(x)
        if precision == "fp32":
            _assert_fp32_matches_with_nan_and_inf(compiled, model, x, _poisoned(x))
        else:
            cosine, relative = _accuracy(actual, expected)
            assert cosine >= 0.999 and relative <= 0.03, (cosine, relative)
            actual, expected = compiled(_poisoned(x)), model(_poisoned(x))
            torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
            torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")
def test_convolution_timing_that_fails_keeps_the_static_choice(monkeypatch, caplog):
    """Where timing the two builds fails (a value check refusing the made-up inputs), the
    build says so and keeps pipeline.uses_onednn_convolutions's choice; the model compiles
    and matches PyTorch."""
    import logging

    from tvmbridge import _native, pipeline

    model, x = _conv_net_and_input(depthwise=True)
    traced = torch.jit.trace(model, x)
    mod, _ = tt.from_torchscript(traced, [x])
    if pipeline._avx512_vendor() is None:
        pytest.skip("without AVX-512 float32 convolutions are TVM's: there is nothing to time")
    real_global_func = _native.global_func

    def refusing_timing(*_):
        raise RuntimeError("tvmbridge: made-up inputs refused")

    monkeypatch.setattr(_native, "global_func", lambda name: refusing_timing if name ==
                        "tvmbridge.torch.time_alternately" else real_global_func(name))
    with caplog.at_level(logging.INFO, logger="tvmbridge"):
        compiled = tt.compile(traced, [x], never_slower=False)
    assert "builds not timed (tvmbridge: made-up inputs refused)" in caplog.text
    kernels = _assert_fp32_matches_with_nan_and_inf(compiled, model, x, _poisoned(x))
    assert ("tvmbridge::onednn_conv2d" in kernels) == pipeline.uses_onednn_convolutions(
        "fp32", mod)


class TokenMlp(torch.nn.Module):
    """Token ids in, a linear layer large enough for bfloat16 (64x256 weight elements and up)."""

    def __init__(self):
        super().__init__()
        self.embed, self.up = torch.nn.Embedding(100, 256), torch.nn.Linear(256, 512)

    def forward(self, ids):
        return torch.relu(self.up(self.embed(ids)))


@pytest.mark.parametrize("has_amx,never_slower,faster", [
    (False, True, "fp32"), (False, True, "bf16"), (False, False, None), (True, True, None)])
def test_bf16_builds_are_timed_against_float32_where_bfloat16_may_not_win(
        monkeypatch, caplog, has_amx, never_slower, faster):
    """precision="bf16" on a CPU without AMX, with never_slower: each region is built in
    bfloat16 and in float32 and timed (made-up token ids: ones), and the faster build is kept
    (on an AMX-less Xeon bfloat16 was 1.2-1.5x slower than float32). With AMX, or with
    never_slower=False, the bfloat16 build is kept untimed. The timings are made up here, so
    each choice is tested; the built library's outputs tell which build it is, and compile
    passes never_slower on to the build."""
    import logging

    import tvm
    from tvm import relax

    from tvmbridge import _native, build, pipeline

    torch.manual_seed(0)
    model, ids = TokenMlp().eval(), torch.randint(0, 100, (4, 32))
    traced = torch.jit.trace(model, ids)
    mod, _ = tt.from_torchscript(traced, [ids], keep_params_as_input=False)
    real_has_cpu_flag = pipeline.has_cpu_flag
    monkeypatch.setattr(pipeline, "has_cpu_flag", lambda flag: has_amx if flag == "amx_bf16"
                        else real_has_cpu_flag(flag))
    # bf16 is built first, fp32 second
    timed = _made_up_build_timings(monkeypatch, *((2.0, 1.0) if faster == "fp32" else (1.0, 2.0)))
    with caplog.at_level(logging.INFO, logger="tvmbridge"):
        library = build.build_library(mod, build.host_target(), precision="bf16",
                                      never_slower=never_slower)
    assert len(timed) == (1 if faster else 0)
    load = _native.runtime_func("tvmbridge.runtime.load_library")
    main = relax.VirtualMachine(load(library), tvm.cpu())["main"]
    actual = torch.from_dlpack(main(tvm.runtime.tensor(ids.numpy())))
    with torch.no_grad():
        expected = model(ids)
    if faster == "fp32":
        assert "building fp32" in caplog.text
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    else:
        _assert_bf16_accuracy(actual, expected)
    timed.clear()
    tt.compile(traced, [ids], precision="bf16", never_slower=never_slower)
    assert len(timed) == (1 if faster else 0)  # never_slower's own timing is not this one


def _traced_for_onednn_convolutions(model, x, precision: str):
    """`model` traced on `x`, and its Relax module, where `precision`'s convolutions run on
    oneDNN on this CPU (the test is skipped elsewhere: they are TVM's there)."""
    from tvmbridge import pipeline

    traced = torch.jit.trace(model, x)
    mod, _ = tt.from_torchscript(traced, [x], keep_params_as_input=False)
    if not pipeline.uses_onednn_convolutions(precision, mod):
        pytest.skip(f"{precision} convolutions are TVM's on this CPU")
    return traced, mod


class ResidualBlocks(torch.nn.Module):
    """MobileNet-V2's inverted residual block, whose sum two later ops read (the next
    convolution and the next residual addition): oneDNN's kernel adds it. Then ResNet's, whose
    sum a ReLU reads: TVM's pass for the ReLU takes the addition in, so it stays there."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(8, 16, 1)
        self.expand = torch.nn.Conv2d(16, 32, 1)
        self.project = torch.nn.Conv2d(32, 16, 1)
        self.second = torch.nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        inverted = self.project(torch.nn.functional.relu6(self.expand(x))) + x
        return torch.relu(self.second(inverted) + inverted)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16_convolutions)])
def test_residual_additions_read_by_convolutions_are_added_in_onednns_kernel(
        static_convolution_choice, precision):
    """A residual addition whose sum would be a pass of TVM's of its own is computed by the
    convolution's kernel with its bias (packed_conv2d_bias_add_out); one that TVM's pass for a
    ReLU takes in stays TVM's. Outputs are PyTorch's, NaN and infinities included."""
    from tvmbridge import build, pipeline

    torch.manual_seed(0)
    model, x = ResidualBlocks().eval(), torch.randn(2, 8, 12, 12)
    traced, mod = _traced_for_onednn_convolutions(model, x, precision)
    fused = pipeline.fuse(mod, build.host_target(), precision).script()
    assert fused.count("tvmbridge.aten.packed_conv2d_bias_add_out") == 1
    compiled = tt.compile(traced, [x], never_slower=False, precision=precision)
    with torch.no_grad():
        actual, expected = compiled(x), model(x)
    if precision == "fp32":
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    else:
        _assert_bf16_accuracy(actual, expected)
    poisoned = x.clone()
    poisoned[0, 1, 4, 4], poisoned[1, 0, 7, 9], poisoned[1, 3, 2, 2] = (
        float("nan"), float("inf"), float("-inf"))
    with torch.no_grad():
        actual, expected = compiled(poisoned), model(poisoned)
    assert torch.isnan(expected).any()
    torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
    torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))


class BiasedConvolutions(torch.nn.Module):
    """A convolution plus bias, its result used once (the bias goes into oneDNN's kernel); a
    grouped one before a ReLU6; and a convolution whose result is also used elsewhere, its bias
    a separate addition (TVM's)."""

    def __init__(self):
        super().__init__()
        self.pointwise = torch.nn.Conv2d(8, 16, 1)
        self.depthwise = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.shared = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.shift = torch.nn.Parameter(torch.randn(1, 16, 1, 1))

    def forward(self, x):
        y = torch.nn.functional.relu6(self.depthwise(self.pointwise(x)))
        z = self.shared(y)
        return z + self.shift, z * 2


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16_convolutions)])
def test_convolution_biases_are_added_in_onednns_kernel(static_convolution_choice, precision):
    """Where convolutions run on oneDNN, a bias added to a convolution whose result nothing
    else uses is added in oneDNN's kernel (packed_conv2d_bias_out), except for bfloat16 grouped
    convolutions (oneDNN 3.2's kernel for those is slower with a bias); a convolution whose
    result is used twice keeps its addition in TVM. Outputs are PyTorch's, NaN and infinities
    included."""
    from tvmbridge import build, pipeline

    torch.manual_seed(0)
    model, x = BiasedConvolutions().eval(), torch.randn(2, 8, 12, 12)
    traced, mod = _traced_for_onednn_convolutions(model, x, precision)
    fused = pipeline.fuse(mod, build.host_target(), precision).script()
    assert fused.count("tvmbridge.aten.packed_conv2d_bias_out") == (1 if precision == "bf16"
                                                                     else 2)
    assert fused.count("tvmbridge.aten.packed_conv2d_out") == (2 if precision == "bf16" else 1)
    compiled = tt.compile(traced, [x], never_slower=False, precision=precision)
    if precision == "fp32":
        with torch.no_grad():
            for actual, expected in zip(compiled(x), model(x)):
                torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    else:
        with torch.no_grad():
            for actual, expected in zip(compiled(x), model(x)):
                cosine, relative = _accuracy(actual, expected)
                assert cosine >= 0.999 and relative <= 0.03, (cosine, relative)
    poisoned = x.clone()
    poisoned[0, 1, 4, 4], poisoned[1, 0, 7, 9], poisoned[1, 3, 2, 2] = (
        float("nan"), float("inf"), float("-inf"))
    with torch.no_grad():
        for actual, expected in zip(compiled(poisoned), model(poisoned)):
            assert torch.isnan(expected).any()
            torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
            torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))


def _assert_close_in(precision: str, actual: torch.Tensor, expected: torch.Tensor) -> None:
    """`actual` is PyTorch's `expected` within `precision`'s tolerance: float32's rounding, or
    bfloat16's stated accuracy (cosine >= 0.999, largest error <= 3% of the largest value)."""
    if precision == "fp32":
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    else:
        cosine, relative = _accuracy(actual, expected)
        assert cosine >= 0.999 and relative <= 0.03, (cosine, relative)


class InvertedResidual(torch.nn.Module):
    """MobileNet-V2's block: a 1x1 convolution expanding 8 channels to 48, batch norm, ReLU6; a
    3x3 depthwise one, batch norm, ReLU6; a 1x1 projection back to 8, batch norm; the residual
    addition. Twice, the second block reading the first's output."""

    def __init__(self):
        super().__init__()

        def block():
            return torch.nn.Sequential(
                torch.nn.Conv2d(8, 48, 1, bias=False), torch.nn.BatchNorm2d(48),
                torch.nn.ReLU6(),
                torch.nn.Conv2d(48, 48, 3, padding=1, groups=48, bias=False),
                torch.nn.BatchNorm2d(48), torch.nn.ReLU6(),
                torch.nn.Conv2d(48, 8, 1, bias=False), torch.nn.BatchNorm2d(8))

        self.blocks = torch.nn.ModuleList([block(), block()])
        for norm in self.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16_convolutions)])
def test_relu6_after_a_convolution_is_clamped_in_onednns_kernel(static_convolution_choice,
                                                               precision):
    """MobileNet-V2's ReLU6 passes (a fifth of its bfloat16 time) go into oneDNN's kernels: the
    expanding convolution's (its input a sixth of its result) and the depthwise one's after it
    (told that its input is a clamped result); no clamp is left to TVM. Outputs are PyTorch's,
    and NaN and infinities in the input give PyTorch's NaN and infinity masks (the kernels then
    clamp after oneDNN, keeping NaN)."""
    import tvm
    from tvm import relax

    from tvmbridge import build, pipeline

    torch.manual_seed(0)
    model, x = InvertedResidual().eval(), torch.randn(2, 8, 12, 12)
    traced, mod = _traced_for_onednn_convolutions(model, x, precision)
    fused_mod = pipeline.fuse(mod, build.host_target(), precision)
    told = []  # per clamping call, whether it was told its input is a clamped result

    def visit(expr):
        if (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
                and expr.op.name == "relax.call_dps_packed"
                and expr.args[0].global_symbol == "tvmbridge.aten.packed_conv2d_clamp_out"):
            told.append(int(expr.args[1].fields[5].value))

    for function in fused_mod.functions.values():
        if isinstance(function, relax.Function):
            relax.analysis.post_order_visit(function, visit)
    assert told == [0, 1, 0, 1]  # the depthwise convolutions read the expanding ones' results
    fused = fused_mod.script()
    assert "R.maximum" not in fused and "R.minimum" not in fused and "T.max(" not in fused
    compiled = tt.compile(traced, [x], never_slower=False, precision=precision)
    poisoned = x.clone()
    poisoned[0, 1, 4, 4], poisoned[1, 0, 7, 9], poisoned[1, 3, 2, 2] = (
        float("nan"), float("inf"), float("-inf"))
    with torch.no_grad():
        actual, expected = compiled(x), model(x)
        _assert_close_in(precision, actual, expected)
        actual, expected = compiled(poisoned), model(poisoned)
        assert torch.isnan(expected).any()
        torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
        torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))
        # A finite call after the poisoned one: the kernels clamp in oneDNN again.
        torch.testing.assert_close(compiled(x), compiled(x.clone()))


def _assert_nan_and_inf_as_pytorch(compiled, model, x, nan_at: tuple, inf_at: tuple) -> None:
    """`x` with a NaN at `nan_at` and +inf at `inf_at`: `compiled` gives NaN and infinities where
    `model` does, and the NaN reaches some outputs but not all."""
    poisoned = x.clone()
    poisoned[nan_at], poisoned[inf_at] = float("nan"), float("inf")
    actual, expected = compiled(poisoned), model(poisoned)
    assert torch.isnan(expected).any() and not torch.isnan(expected).all()
    torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
    torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))


class ResidualStage(torch.nn.Module):
    """ResNet's stem and two basic blocks: a 7x7 convolution of stride 2, batch norm, ReLU,
    3x3 max pooling of stride 2; then per block two 3x3 convolutions with batch norm, the
    residual addition and a ReLU. 32 channels, so that the stem's ReLU is clamped in oneDNN's
    kernel, as ResNet-18's is (pipeline._clamps_in_kernel)."""

    def __init__(self, width: int = 32):
        super().__init__()

        def convolution(inputs, size):
            return [torch.nn.Conv2d(inputs, width, size, stride=2 if size == 7 else 1,
                                    padding=size // 2, bias=False), torch.nn.BatchNorm2d(width)]

        self.stem = torch.nn.Sequential(*convolution(3, 7), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d(3, 2, 1))
        self.blocks = torch.nn.ModuleList([
            torch.nn.Sequential(*convolution(width, 3), torch.nn.ReLU(), *convolution(width, 3))
            for _ in range(2)])
        for norm in self.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(x + block(x))
        return x


@needs_bf16_convolutions
def test_bf16_networks_pool_and_keep_their_residual_stream_in_bfloat16(
        static_convolution_choice):
    """In bfloat16, a convolution's result is max-pooled in bfloat16 (exact: widening keeps
    order, NaN and the infinities), and a residual block's sum that a convolution reads is
    stored once, rounded to bfloat16, for every later reader (the next block's addition too),
    as bfloat16 networks keep it. So TVM's kernels write bfloat16 throughout: the only float32
    result is the model's output, which is not rounded. Outputs within bfloat16's stated
    accuracy; NaN and infinities give PyTorch's masks."""
    import tvm
    from tvm import relax

    from tvmbridge import build, pipeline

    torch.manual_seed(0)
    model, x = ResidualStage().eval(), torch.randn(2, 3, 64, 64)
    traced, mod = _traced_for_onednn_convolutions(model, x, "bf16")
    fused_mod = pipeline.fuse(mod, build.host_target(), "bf16")
    written, pooled = [], []  # the dtype each TVM kernel writes, in order; max pooling's input

    def visit(expr):
        if (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
                and expr.op.name == "relax.call_tir"):
            written.append(expr.ty.dtype)
            if "max_pool" in expr.args[0].name_hint:
                pooled.extend(arg.ty.dtype for arg in expr.args[1].fields)

    relax.analysis.post_order_visit(fused_mod["main"], visit)
    assert written.count("float32") == 1 and written[-1] == "float32", written
    assert pooled == ["bfloat16"]
    compiled = tt.compile(traced, [x], never_slower=False, precision="bf16")
    with torch.no_grad():
        _assert_bf16_accuracy(compiled(x), model(x))
        _assert_nan_and_inf_as_pytorch(compiled, model, x, nan_at=(0, 1, 4, 4),
                                       inf_at=(1, 0, 50, 40))


class PooledBranches(torch.nn.Module):
    """GoogLeNet's inception pattern: a value (a ReLU TVM computes) read by a convolution and by
    a max pooling whose result another convolution reads, the branches concatenated."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.direct, self.pooled = torch.nn.Conv2d(16, 8, 1), torch.nn.Conv2d(16, 8, 1)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        direct = self.direct(y)
        return torch.cat([direct, self.pooled(torch.nn.functional.max_pool2d(y, 3, 1, 1))], 1)


@needs_bf16_convolutions
def test_bf16_max_pooling_of_a_value_a_convolution_also_reads(static_convolution_choice):
    """The pooling reads the bfloat16 rounding the first convolution made of its input (a
    rebuilt call: it once failed the whole build, leaving GoogLeNet in PyTorch), and pools it in
    bfloat16. Within bfloat16's stated accuracy, NaN and infinity masks PyTorch's."""
    torch.manual_seed(0)
    model, x = PooledBranches().eval(), torch.randn(2, 16, 16, 16)
    traced, _ = _traced_for_onednn_convolutions(model, x, "bf16")
    compiled = tt.compile(traced, [x], never_slower=False, precision="bf16")
    assert not tt.report(compiled).build_failures
    with torch.no_grad():
        _assert_bf16_accuracy(compiled(x), model(x))
        _assert_nan_and_inf_as_pytorch(compiled, model, x, nan_at=(0, 1, 4, 4),
                                       inf_at=(1, 0, 10, 9))


class VideoBlock(torch.nn.Module):
    """3-D convolutions as video models (R3D-18) have them: a strided stem with a bias, batch
    norm, a grouped and a dilated convolution."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv3d(3, 16, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2))
        self.body = torch.nn.Conv3d(16, 32, 3, padding=1, bias=False)
        self.norm = torch.nn.BatchNorm3d(32)
        self.grouped = torch.nn.Conv3d(32, 32, 3, stride=2, padding=1, groups=4)
        self.dilated = torch.nn.Conv3d(32, 8, 3, padding=2, dilation=2)

    def forward(self, x):
        x = torch.relu(self.norm(self.body(torch.relu(self.stem(x)))))
        return self.dilated(torch.relu(self.grouped(x)))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16_convolutions)])
def test_3d_convolutions_run_on_onednn_and_match_pytorch(static_convolution_choice, precision):
    """Where convolutions run on oneDNN, 3-D ones do too (NDHWC, weights packed once; TVM's
    own 3-D convolutions made R3D-18 no faster than PyTorch), the stem's bias added in the
    kernel; outputs are PyTorch's, NaN and infinities included."""
    from tvmbridge import build, pipeline

    torch.manual_seed(0)
    model, x = VideoBlock().eval(), torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        model.norm.running_mean.uniform_(-0.5, 0.5)
        model.norm.running_var.uniform_(0.5, 2.0)
    traced, mod = _traced_for_onednn_convolutions(model, x, precision)
    fused = pipeline.fuse(mod, build.host_target(), precision).script()
    convolutions = (fused.count("tvmbridge.aten.packed_conv2d_bias_out")
                    + fused.count("tvmbridge.aten.packed_conv2d_clamp_out")
                    + fused.count("tvmbridge.aten.packed_conv2d_out"))
    assert convolutions == 4 and "conv3d" not in fused, fused
    compiled = tt.compile(traced, [x], never_slower=False, precision=precision)
    poisoned = x.clone()
    poisoned[0, 1, 2, 4, 4], poisoned[1, 0, 1, 7, 9] = float("nan"), float("inf")
    with torch.no_grad(), torch.profiler.profile() as profile:
        actual, actual_poisoned = compiled(x), compiled(poisoned)
    events = [event.name for event in profile.events()]
    assert events.count("tvmbridge::onednn_conv2d") == 8
    with torch.no_grad():
        expected, expected_poisoned = model(x), model(poisoned)
    _assert_close_in(precision, actual, expected)
    assert torch.isnan(expected_poisoned).any()
    torch.testing.assert_close(torch.isnan(actual_poisoned), torch.isnan(expected_poisoned))
    torch.testing.assert_close(torch.isinf(actual_poisoned), torch.isinf(expected_poisoned))


def _poisoned(x: torch.Tensor) -> torch.Tensor:
    poisoned = x.clone()
    poisoned[0, 1, 4, 4], poisoned[1, 0, 20, 9] = float("nan"), float("inf")
    return poisoned


def test_fp32_linear_layers_run_on_the_kernel_chosen_for_this_cpu():
    """float32 linear layers run on the packed kernel build chooses for this CPU (oneDNN on
    AMD with AVX-512, MKL elsewhere) and match PyTorch, NaN and infinity included."""
    from tvmbridge import pipeline

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 96), torch.nn.GELU(),
                                torch.nn.Linear(96, 32)).eval()
    x = torch.randn(2, 7, 48)
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False)
    poisoned = x.clone()
    poisoned[0, 3, 5], poisoned[1, 0, 0] = float("nan"), float("inf")
    kernels = _assert_fp32_matches_with_nan_and_inf(compiled, model, x, poisoned)
    expected_kernel = {pipeline._ONEDNN_LINEAR: "mkldnn::_linear_pointwise",
                       pipeline._PACKED_LINEAR: "mkl::_mkl_linear"}.get(pipeline._float32_linear_kernel())
    if expected_kernel:
        assert expected_kernel in kernels


@pytest.mark.parametrize("vendor, mkl, expected", [
    ("AuthenticAMD", True, "onednn_linear"), ("GenuineIntel", True, "packed_linear"),
    ("GenuineIntel", False, None)])
def test_fp32_linear_kernel_follows_what_was_measured_per_cpu(monkeypatch, vendor, mkl, expected):
    from tvmbridge import pipeline

    monkeypatch.setattr(pipeline, "_cpuinfo", lambda: {"vendor_id": vendor, "flags": "avx512f"})
    monkeypatch.setattr(pipeline, "_mkl_supported", lambda: mkl)
    if not torch.backends.mkldnn.is_available() and vendor == "AuthenticAMD":
        expected = "packed_linear" if mkl else None
    kernel = pipeline._float32_linear_kernel()
    assert kernel == (expected and f"tvmbridge.aten.{expected}")


@pytest.mark.parametrize("vendor, flags, depthwise, expected", [
    ("GenuineIntel", "avx2 avx512f", True, True),
    ("GenuineIntel", "avx2 avx512f", False, True),
    ("AuthenticAMD", "avx2 avx512f", True, False),
    ("AuthenticAMD", "avx2 avx512f", False, True),
    ("AuthenticAMD", "avx2", False, False),
    ("GenuineIntel", "avx2", False, False),
])
def test_fp32_convolution_choice_follows_what_was_measured_per_cpu(monkeypatch, vendor, flags,
                                                                    depthwise, expected):
    """oneDNN for float32 convolutions on Intel with AVX-512; on AMD with AVX-512 only for
    models without depthwise convolutions (bench/results/amd-epyc-zen4/kernel_choice.md); never
    without AVX-512, nor when MetaSchedule tunes them."""
    from tvmbridge import pipeline

    model, x = _conv_net_and_input(depthwise=depthwise)
    mod, _ = tt.from_torchscript(torch.jit.trace(model, x), [x])
    monkeypatch.setattr(pipeline, "_cpuinfo", lambda: {"vendor_id": vendor, "flags": flags})
    assert pipeline.uses_onednn_convolutions("fp32", mod) == (
        expected and torch.backends.mkldnn.is_available())
    assert not pipeline.uses_onednn_convolutions("fp32", mod, tuning=True)


@needs_bf16_convolutions
def test_bf16_convolutions_within_stated_accuracy_and_keep_nan(tmp_path,
                                                               static_convolution_choice):
    """Convolutions run in bfloat16 on oneDNN's kernel (src/runtime/aten_kernels.cc): the
    model has no matrix product, so an error above float32's shows they did. NaN and
    infinities reach the same outputs as in PyTorch; the saved module loads and agrees, and
    serves from C++ without Python (tvmbridge-run)."""
    model, x = _conv_net_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False, precision="bf16")
    with torch.no_grad():
        _assert_bf16_accuracy(compiled(x), model(x))
        poisoned = x.clone()
        poisoned[0, 1, 4, 4] = float("nan")
        poisoned[1, 0, 20, 9] = float("inf")
        actual, expected = compiled(poisoned), model(poisoned)
        torch.testing.assert_close(torch.isnan(actual), torch.isnan(expected))
        torch.testing.assert_close(torch.isinf(actual), torch.isinf(expected))
        assert torch.isnan(expected).any() and not torch.isnan(expected).all()
        path = tmp_path / "convnet_bf16.pt"
        torch.jit.save(compiled, str(path))
        torch.testing.assert_close(torch.jit.load(str(path))(x), compiled(x), rtol=0, atol=0)
    served = subprocess.run([str(BUILD / "tvmbridge-run"), str(path), "--input",
                             "2x3x32x32:float32", "--repeat", "1", "--warmup", "0"],
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-2000:]
    assert "output 0: shape [2, 16, 8, 8] dtype float32" in served.stdout


@needs_bf16_convolutions
def test_bf16_convolutions_of_two_models_keep_their_own_weights(static_convolution_choice):
    """Packed weights are cached per weight constant: two models with the same shapes and
    different weights, alive together, each compute with their own; and a model compiled
    after another was freed too."""
    first, x = _conv_net_and_input(seed=0)
    second, _ = _conv_net_and_input(seed=1)
    compile_bf16 = lambda model: tt.compile(torch.jit.trace(model, x), [x],  # noqa: E731
                                            never_slower=False, precision="bf16")
    compiled_first, compiled_second = compile_bf16(first), compile_bf16(second)
    with torch.no_grad():
        _assert_bf16_accuracy(compiled_first(x), first(x))
        _assert_bf16_accuracy(compiled_second(x), second(x))
        del compiled_first
        third, _ = _conv_net_and_input(seed=2)
        _assert_bf16_accuracy(compile_bf16(third)(x), third(x))
        _assert_bf16_accuracy(compiled_second(x), second(x))


@needs_bf16_convolutions
def test_bf16_convolutions_serve_every_batch_size_on_the_export_path(static_convolution_choice):
    """One weight packing serves calls of other batch sizes (a dynamic batch dimension)."""
    model, x = _conv_net_and_input()
    batch = torch.export.Dim("batch", min=1, max=8)
    compiled = tt.compile(model, [x], ir="export", precision="bf16", never_slower=False,
                          dynamic_shapes={"x": {0: batch}})
    with torch.no_grad():
        for size in (2, 5, 1):
            images = torch.randn(size, 3, 32, 32)
            _assert_bf16_accuracy(compiled(images), model(images))


@pytest.mark.parametrize("function, dtype", [
    pytest.param("packed_linear", torch.bfloat16, marks=needs_bf16_convolutions),
    pytest.param("packed_linear", torch.float32, marks=pytest.mark.skipif(
        not torch.backends.mkl.is_available(), reason="PyTorch without MKL")),
    pytest.param("onednn_linear", torch.bfloat16, marks=needs_bf16_convolutions),
    pytest.param("onednn_linear", torch.float32, marks=pytest.mark.skipif(
        not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")),
])
def test_packed_linear_serves_other_row_counts_and_keeps_each_weight(function, dtype):
    """The linear layers' kernels (tvmbridge.aten.packed_linear: oneDNN for bfloat16, MKL's
    packed sgemm for float32; tvmbridge.aten.onednn_linear: oneDNN for both) pack a weight
    for its first call's row count: calls with other row counts (a symbolic batch) and more
    dimensions agree with PyTorch, two weights of the same shape keep their own packing, and
    a weight of the wrong shape or dtype is refused by name."""
    import tvm_ffi

    from tvmbridge import _native

    linear = _native.runtime_func(f"tvmbridge.aten.{function}")
    torch.manual_seed(0)
    weights = [torch.randn(64, 48).to(dtype) for _ in range(2)]
    constants = [tvm_ffi.from_dlpack(w) for w in weights]  # alive, as a module's constants
    tolerance = {"rtol": 1e-2, "atol": 1e-1} if dtype == torch.bfloat16 else {}
    for shape in ([5, 64], [2, 64], [3, 7, 64], [1, 64], [5, 64]):
        x = torch.randn(shape).to(dtype)
        for weight, constant in zip(weights, constants):
            result = torch.from_dlpack(linear(tvm_ffi.from_dlpack(x), constant))
            expected = (x.double() @ weight.double()).to(dtype)
            assert result.shape == expected.shape and result.dtype == dtype
            torch.testing.assert_close(result, expected, **tolerance)
    with pytest.raises(Exception,
                       match=rf"{function} takes x \[\.\.\., K\] and a weight \[K, N\]"):
        linear(tvm_ffi.from_dlpack(torch.randn(5, 32).to(dtype)), constants[0])
    with pytest.raises(Exception, match="bfloat16 or float32 x and weight of one dtype"):
        linear(tvm_ffi.from_dlpack(torch.randn(5, 64).double()), constants[0])
    other = torch.float32 if dtype == torch.bfloat16 else torch.bfloat16
    with pytest.raises(Exception, match="of one dtype, got"):
        linear(tvm_ffi.from_dlpack(torch.randn(5, 64).to(other)), constants[0])


@needs_bf16_convolutions
@pytest.mark.parametrize("function", ["packed_linear", "onednn_linear"])
def test_bf16_linear_layers_run_on_primitives_made_once_on_amx_cpus(function):
    """Where the CPU has AMX, a bfloat16 linear layer whose row count the program fixes runs on
    a oneDNN primitive made once per weight and row count (onednn_kernels.cc, Bf16Linear), as
    does a single row of a symbolic row count (a call passing the row count to pack for);
    other symbolic row counts, and every call on CPUs without AMX, run PyTorch's kernel. Both
    agree with PyTorch's bfloat16 product, NaN and infinities where it has them, and each
    weight keeps its own values."""
    import tvm_ffi

    from tvmbridge import _native, pipeline

    linear = _native.runtime_func(f"tvmbridge.aten.{function}")
    has_amx = "amx_bf16" in pipeline._cpuinfo().get("flags", "").split()
    torch.manual_seed(0)
    weights = [torch.randn(96, 40).bfloat16() for _ in range(2)]
    constants = [tvm_ffi.from_dlpack(w) for w in weights]  # alive, as a module's constants
    for shape in ([1, 96], [5, 96], [1, 1, 96], [2, 3, 96], [17, 96], [1, 96]):
        x = torch.randn(shape)
        x.view(-1, 96)[0, 0] = float("nan")  # the first row all NaN
        x.view(-1, 96)[-1, 1] = float("inf")  # the last row +-inf by the weight's signs
        x = x.bfloat16()
        rows = x.numel() // 96
        # Fixed rows; symbolic ones, packed for 8 rows or for the first call's (0).
        for packing_rows in ([], [8], [0]):
            symbolic_rows = bool(packing_rows)
            for weight, constant in zip(weights, constants):
                with torch.profiler.profile() as profile:
                    result = torch.from_dlpack(
                        linear(tvm_ffi.from_dlpack(x), constant, *packing_rows))
                ours = "tvmbridge::onednn_bf16_linear" in {e.name for e in profile.events()}
                assert ours == (has_amx and (not symbolic_rows or rows == 1)), (shape, has_amx)
                expected = (x.double() @ weight.double()).bfloat16()
                assert result.shape == expected.shape and result.dtype == torch.bfloat16
                torch.testing.assert_close(result, expected, rtol=1e-2, atol=1e-1,
                                           equal_nan=True)
                assert torch.equal(result.isnan(), expected.isnan())
                assert torch.equal(result.isinf(), expected.isinf())
    if not has_amx:
        print("this CPU has no AMX-BF16: every call ran PyTorch's kernel, as it should")
    with pytest.raises(Exception, match=rf"{function} takes x \[\.\.\., K\] and a weight"):
        linear(tvm_ffi.from_dlpack(torch.randn(1, 32).bfloat16()), constants[0])
    with pytest.raises(Exception, match="of one dtype, got"):
        linear(tvm_ffi.from_dlpack(torch.randn(1, 96)), constants[0])


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="no /proc/self/statm")
@pytest.mark.parametrize("kernel, dtype", [
    pytest.param("packed_linear", torch.bfloat16, marks=needs_bf16_convolutions),
    pytest.param("packed_linear", torch.float32, marks=pytest.mark.skipif(
        not torch.backends.mkl.is_available(), reason="PyTorch without MKL")),
    ("packed_conv2d_out", torch.float32),
])
def test_packed_weights_of_freed_constants_are_released(kernel, dtype):
    """A kernel's packed weight lives as long as the constant it packs: once a module's
    constants are gone, the next weight packed drops their packings and the constants with
    them, although a packing holds its plain weight (to pack it for new shapes). Before,
    such entries were never dropped, and the zoo's one process ran out of 24 GiB."""
    import tvm_ffi

    from tvmbridge import _native

    run = _native.runtime_func(f"tvmbridge.aten.{kernel}")
    ffi = lambda t: tvm_ffi.from_dlpack(t.to(dtype).contiguous())  # noqa: E731

    def call(weight_shape):  # packs a fresh constant of that shape; returns nothing of it
        weight = ffi(torch.randn(weight_shape))
        if kernel == "packed_linear":
            run(ffi(torch.randn(5, weight_shape[0])), weight)
        else:  # a 3x3 convolution of a 4x4 NHWC image, no padding
            out = torch.empty(1, 2, 2, weight_shape[0], dtype=dtype)
            run(ffi(torch.randn(1, 4, 4, weight_shape[1])), weight,
                tvm_ffi.Shape([1, 1, 0, 0, 1, 1, 1]), tvm_ffi.from_dlpack(out))

    big = (4096, 4096) if kernel == "packed_linear" else (1024, 1024, 3, 3)
    small = (8, 8) if kernel == "packed_linear" else (8, 8, 3, 3)
    call(small)
    before = _resident_mib()
    for _ in range(4):
        call(big)  # 16-64 MiB each, and as much again packed
    call(small)  # drops the last big one's packing
    grown = _resident_mib() - before
    assert grown < 100, f"{grown:.0f} MiB still held after four freed weights"


@needs_bf16_convolutions
def test_convolutions_of_libraries_built_before_packed_results_still_run():
    """Saved modules built before the convolution returned oneDNN's result call
    tvmbridge.aten.conv2d_bf16, which writes into a float32 NHWC output; it stays."""
    import tvm_ffi

    from tvmbridge import _native

    torch.manual_seed(0)
    x, weight = torch.randn(1, 8, 10, 10), torch.randn(4, 8, 3, 3)
    out = torch.empty(1, 5, 5, 4)  # NHWC: stride 2 and padding 1 over 10 x 10
    conv = _native.runtime_func("tvmbridge.aten.conv2d_bf16")
    # geometry: stride (2, 2), padding (1, 1), dilation (1, 1), groups 1
    conv(tvm_ffi.from_dlpack(x.permute(0, 2, 3, 1).contiguous()),
         tvm_ffi.from_dlpack(weight.to(torch.bfloat16)), tvm_ffi.Shape([2, 2, 1, 1, 1, 1, 1]),
         tvm_ffi.from_dlpack(out))
    expected = torch.nn.functional.conv2d(x, weight, stride=2, padding=1)
    _assert_bf16_accuracy(out.permute(0, 3, 1, 2), expected)


class UpsamplingHead(torch.nn.Module):
    """A convolution feeding a group norm and a transposed convolution: TVM 0.27's layout
    handling fails on the transposed convolution's NHWC input."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.norm = torch.nn.GroupNorm(4, 16)
        self.up = torch.nn.ConvTranspose2d(16, 8, 2, stride=2)

    def forward(self, x):
        return self.up(self.norm(torch.relu(self.conv(x)))).mean(1)


@needs_bf16_convolutions
def test_bf16_build_falls_back_to_nchw_when_tvm_layouts_fail():
    """The build's retry without layout conversion also drops the NHWC of bfloat16
    convolutions: the model compiles whole, its convolutions TVM's in float32."""
    torch.manual_seed(0)
    model, x = UpsamplingHead().eval(), torch.randn(1, 3, 16, 16)
    compiled = tt.compile(torch.jit.trace(model, x), [x], precision="bf16", never_slower=False,
                          require_full_compilation=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@needs_bf16_convolutions
def test_onednn_convolutions_serve_threads_at_once(static_convolution_choice):
    """Four threads call one compiled model, with batch sizes of their own, at once: each
    convolution primitive runs in several threads with scratch memory of each call's own,
    and every answer is the one the model gives alone."""
    from tvmbridge import pipeline

    model, x = _conv_net_and_input()
    traced = torch.jit.trace(model, x)
    mod, _ = tt.from_torchscript(traced, [x])
    assert pipeline.uses_onednn_convolutions("bf16", mod)
    batches = tt.Input(min_shape=(1, 3, 32, 32), opt_shape=(2, 3, 32, 32),
                       max_shape=(4, 3, 32, 32))
    compiled = tt.compile(traced, [batches], precision="bf16", never_slower=False)
    inputs = [torch.randn(1 + seed % 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
              for seed in range(4)]
    with torch.no_grad():
        alone = [compiled(images) for images in inputs]
    problems = []

    def serve(index):
        with torch.no_grad():
            for _ in range(15):
                if not torch.equal(compiled(inputs[index]), alone[index]):
                    problems.append(f"thread {index}: a different answer")

    run_in_threads(serve, 4)
    assert not problems, problems[:3]
    with torch.no_grad():
        _assert_bf16_accuracy(alone[2], model(inputs[2]))
