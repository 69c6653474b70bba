"""From a frontend's Relax module to fused TIR functions: which kernels run each op (TVM's
schedules, oneDNN's, MKL's, PyTorch's; chosen per CPU), the layouts convolutions run in, and
TVM's legalisation and fusion. :func:`fuse` is both the first half of every build
(:mod:`tvmbridge.build`) and what tuning extracts its tasks from (:mod:`tvmbridge.tuning`), so
tuning records match what is built."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Mapping

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

from . import attention, extrema, quantized, relax_patterns, reshapes, schedule, vector_math
from .relax_patterns import bound_call, has_call, outer_calls, same_tensor_type, use_counts


# Convolutions run in NCHW16c: vectors over 16 output channels whatever the image width, and
# the packed weights are read contiguously. Measured untuned on this project's 2-core box:
# ResNet-18 30 -> 21 ms (plain convolutions packed); MobileNet-V2 8.2 -> 5.1 ms (depthwise
# packed too, with clip as min/max so ReLU6 keeps the layout, and a register tile along the
# image row). Layout transforms remain only where NCHW ops meet packed ones. One block size
# for every convolution: ConvertLayout cannot go from one blocked layout to another (NCHW8c
# -> NCHW16c fails inside TVM), and 8-channel blocks everywhere made MobileNet-V2 slower
# (9.9 ms) than leaving its few 24-channel convolutions in NCHW.
_CHANNEL_BLOCK = 16


_PACKED_CONV = [f"NCHW{_CHANNEL_BLOCK}c", f"OIHW{_CHANNEL_BLOCK}i{_CHANNEL_BLOCK}o"]
_PACKED_DEPTHWISE = [f"NCHW{_CHANNEL_BLOCK}c", f"OIHW1i{_CHANNEL_BLOCK}o"]


def _conv_layout(call: relax.Call) -> dict:
    """ConvertLayout's choice per call: float32 NCHW convolutions, plain (groups=1; TVM keeps
    NCHW where the block does not divide the channels) or depthwise (one filter per channel,
    channels a multiple of the block), packed; other grouped convolutions NCHW; other calls
    keep their layouts."""
    attrs = call.attrs
    if attrs is None or not hasattr(attrs, "groups") or not hasattr(attrs, "data_layout"):
        return {}
    if attrs.data_layout != "NCHW" or call.ty.dtype != "float32":
        return {}
    if attrs.groups == 1:
        in_channels = call.args[0].ty.shape[1]
        if isinstance(in_channels, tvm.tirx.IntImm) and int(in_channels) < _CHANNEL_BLOCK:
            # A stem (RGB in): the whole input channel count as one block, packed output.
            block = int(in_channels)
            return {"relax.nn.conv2d": [f"NCHW{block}c", f"OIHW{block}i{_CHANNEL_BLOCK}o",
                                        _PACKED_CONV[0]]}
        return {"relax.nn.conv2d": _PACKED_CONV}
    if _is_depthwise(call):
        return {"relax.nn.conv2d": _PACKED_DEPTHWISE}
    # Other grouped convolutions (ResNeXt, RegNet) stay NCHW, said explicitly: left to infer
    # its layout from a packed input, TVM 0.27's conv2d fails ("Layouts must have the same
    # size").
    return {"relax.nn.conv2d": ["NCHW", "OIHW", "NCHW"]}


def _is_depthwise(call: relax.Call, block: int = _CHANNEL_BLOCK) -> bool:
    """groups == input channels == output channels (NCHW), a static multiple of `block`."""
    try:
        in_channels, out_channels = int(call.args[0].ty.shape[1]), int(call.ty.shape[1])
    except (TypeError, AttributeError):  # symbolic or unknown channel counts
        return False
    return call.attrs.groups == in_channels == out_channels and out_channels % block == 0


def _depthwise_conv2d_nchwc(data, weight, strides, padding, dilation, out_dtype):
    """Depthwise convolution in NCHW[b]c with weights in OIHW1i[b]o (TOPI declares this
    operator but no longer implements it)."""
    from tvm import te, topi

    batch, chunks, height, width, block = data.shape
    _, _, kernel_h, kernel_w, _, _ = weight.shape
    stride_h, stride_w = (int(v) for v in strides)
    dilation_h, dilation_w = (int(v) for v in dilation)
    top, left, bottom, right = (int(v) for v in padding)
    out_h = (height + top + bottom - (kernel_h - 1) * dilation_h - 1) // stride_h + 1
    out_w = (width + left + right - (kernel_w - 1) * dilation_w - 1) // stride_w + 1
    padded = topi.nn.pad(data, [0, 0, top, left, 0], [0, 0, bottom, right, 0], name="pad")
    ry = te.reduce_axis((0, kernel_h), name="ry")
    rx = te.reduce_axis((0, kernel_w), name="rx")
    return te.compute(
        (batch, chunks, out_h, out_w, block),
        lambda n, c, y, x, b: te.sum(
            padded[n, c, y * stride_h + ry * dilation_h, x * stride_w + rx * dilation_w, b]
            .astype(out_dtype) * weight[c, 0, ry, rx, 0, b].astype(out_dtype),
            axis=[ry, rx]),
        name="depthwise_conv2d_NCHWc")


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """TVM's legalisation for NCHW; TOPI's conv2d_NCHWc and our depthwise compute for the
    packed layouts (which TVM's own legalisation leaves unlowered)."""
    from tvm import topi
    from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

    attrs = call.attrs
    if len(attrs.data_layout) == 4:
        return _nn_conv2d(bb, call)
    if attrs.groups != 1:
        return bb.call_te(_depthwise_conv2d_nchwc, call.args[0], call.args[1], attrs.strides,
                          attrs.padding, attrs.dilation, call.ty.dtype,
                          primfunc_name_hint="depthwise_conv2d_NCHWc")
    return bb.call_te(topi.nn.conv2d_NCHWc, call.args[0], call.args[1], attrs.strides,
                      attrs.padding, attrs.dilation, attrs.data_layout, attrs.out_layout,
                      call.ty.dtype, primfunc_name_hint="conv2d_NCHWc")


_CONSTANT = relax_patterns.CONSTANT


@dataclasses.dataclass(frozen=True)
class _ConvolutionLayouts:
    """A convolution's layouts as PyTorch gives it, and channels last, where oneDNN runs it."""
    plain: str
    weight: str
    channels_last: str


# The convolutions oneDNN's kernel (tvmbridge.aten.packed_conv2d_out) takes, by op.
_ONEDNN_CONVOLUTIONS = {
    tvm.ir.Op.get("relax.nn.conv2d"): _ConvolutionLayouts("NCHW", "OIHW", "NHWC"),
    tvm.ir.Op.get("relax.nn.conv3d"): _ConvolutionLayouts("NCDHW", "OIDHW", "NDHWC"),
}


def _is_float(expr: relax.Expr) -> bool:
    ty = expr.ty
    return isinstance(ty, relax.TensorType) and ty.dtype in ("float16", "bfloat16", "float32",
                                                               "float64")


def _isnan(x: relax.Expr) -> relax.Expr:
    """isnan, also of bfloat16 (TVM 0.27's isnan skips that dtype: through float32, exactly)."""
    if x.ty.dtype == "bfloat16":
        x = relax.op.astype(x, "float32")
    return relax.op.isnan(x)


@relax.expr_functor.mutator
class _NanPropagatingMinMax(relax.PyExprMutator):
    """Clamps, maxima and arg-extremes that keep NaN and infinities, as PyTorch's do.

    TVM lowers max(a, b) to ``a > b ? a : b`` (and min alike), which gives b when a is NaN: a
    ReLU or clamp of NaN came out as a number. Rewritten here, once for every path that builds
    (TorchScript regions, ``enable()`` groups, the export path):

    - ``relu(x)`` -> ``maximum(0, x)``, ``clip(x, lo, hi)`` -> ``minimum(hi, maximum(lo, x))``
      and a maximum or minimum with a constant get the constant first, so the comparison's
      false branch is the tensor: NaN > 0 is false, NaN comes out. The ops are ones
      ConvertLayout knows (it has no rule for clip, and would unpack every ReLU6 from the
      packed convolution layout), at no cost;
    - ``maximum(a, b)`` of two tensors keeps a's NaN explicitly (b's comes through already);
    - argmax/argmin give the first NaN's position where a row holds one, and no longer -1 for
      a row of -inf (+inf).

    Max pooling and max/min reductions keep NaN in their own lowering
    (:mod:`tvmbridge.extrema`).
    """

    _clip = tvm.ir.Op.get("relax.clip")
    _relu = tvm.ir.Op.get("relax.nn.relu")
    _maximum = tvm.ir.Op.get("relax.maximum")
    _minimum = tvm.ir.Op.get("relax.minimum")
    _argmin = tvm.ir.Op.get("relax.argmin")
    _arg_extremes = {tvm.ir.Op.get("relax.argmax"), _argmin}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op) or not call.args or not _is_float(call.args[0]):
            return call
        dtype = call.args[0].ty.dtype
        if call.op == self._relu:
            return relax.op.maximum(relax.const(0, dtype), call.args[0])
        if call.op == self._clip:
            data, low, high = call.args
            return relax.op.minimum(relax.const(float(high.value), dtype),
                                    relax.op.maximum(relax.const(float(low.value), dtype), data))
        if call.op in (self._maximum, self._minimum):
            a, b = call.args
            if isinstance(a, _CONSTANT):
                return call
            if isinstance(b, _CONSTANT):
                return relax.Call(call.op, [b, a], call.attrs)
            return relax.op.where(_isnan(a), a, call)
        if call.op not in self._arg_extremes:
            return call
        x = call.args[0]
        # The infinity an argmax can only lose to, -inf; +inf for an argmin. Masks in float32
        # (argmax of a bfloat16 tensor fails TVM 0.27's type check).
        losing = float("inf") if call.op == self._argmin else float("-inf")
        other_than_losing = relax.op.astype(relax.op.not_equal(x, relax.const(losing, dtype)),
                                            "float32")
        if dtype == "bfloat16":  # TVM 0.27 builds no argmax/argmin of bfloat16; float32 is exact
            call = relax.Call(call.op, [relax.op.astype(x, "float32")], call.attrs)
        axis = None if call.attrs.axis is None else int(call.attrs.axis)
        keepdims = bool(call.attrs.keepdims)
        # A row of only the losing infinity gives -1 (no element beat TVM's finite start);
        # PyTorch gives its first element beating it, else 0.
        found = relax.op.where(relax.op.less(call, relax.const(0, "int64")),
                               relax.op.argmax(other_than_losing, axis=axis, keepdims=keepdims),
                               call)
        nan_mask = relax.op.astype(_isnan(x), "float32")
        any_nan = relax.op.max(nan_mask, axis=axis, keepdims=keepdims)
        first_nan = relax.op.argmax(nan_mask, axis=axis, keepdims=keepdims)
        return relax.op.where(relax.op.greater(any_nan, relax.const(0, "float32")), first_nan,
                              found)


def _rewrite_relax_functions(name: str, make_mutator) -> tvm.transform.Pass:
    """A module pass running a fresh ``make_mutator()`` over each Relax function of a copy
    of the module (the caller's stays as it was: tuning and building each rewrite it)."""

    @tvm.transform.module_pass(opt_level=0, name=name)
    def rewrite(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = mod.clone()
        for global_var, func in mod.functions.items():
            if isinstance(func, relax.Function):
                mod[global_var] = make_mutator().visit_expr(func)
        return mod

    return rewrite


# Registered by the runtime library (src/runtime/aten_kernels.cc, onednn_kernels.cc).
# Destination-passing: out = torch.matmul(a, b) in the operands' dtype. Returning the kernel's
# own result, on weights packed once, in the operands' dtype (bfloat16 or float32): x @ w for a
# constant [K, N] weight (oneDNN, MKL); conv2d(x, w) for NHWC x and a constant OIHW weight
# (oneDNN primitives made once per weight and input shape).
_ATEN_MATMUL = "tvmbridge.aten.matmul"
_PACKED_LINEAR = "tvmbridge.aten.packed_linear"  # float32 on MKL, bfloat16 on oneDNN
_ONEDNN_LINEAR = "tvmbridge.aten.onednn_linear"  # both on oneDNN
# Destination-passing: TVM's memory plan reuses the result buffers (MobileNet-V2 4-5% faster
# than taking a fresh buffer from each call, on the 2-core AMX Xeon, interleaved).
# tvmbridge.aten.packed_conv2d, which returns a fresh buffer, stays for libraries saved before.
_PACKED_CONV2D = "tvmbridge.aten.packed_conv2d_out"
# The same adding a bias in oneDNN's kernel, and also clamping the result
# (ConvolutionEpilogue).
_PACKED_CONV2D_BIAS = "tvmbridge.aten.packed_conv2d_bias_out"
_PACKED_CONV2D_BIAS_ADD = "tvmbridge.aten.packed_conv2d_bias_add_out"
_PACKED_CONV2D_CLAMP = "tvmbridge.aten.packed_conv2d_clamp_out"
# A bfloat16 linear layer, its bias and GELU (LinearGelu).
_PACKED_LINEAR_BIAS_GELU = "tvmbridge.aten.packed_linear_bias_gelu"
# Matrix products PyTorch's kernels compute (MKL, oneDNN); others stay TVM's.
_ATEN_MATMUL_DTYPES = ("float32", "bfloat16")
# With precision="bf16", a float32 linear layer whose weight has fewer elements than this stays
# float32: its weight is in cache either way, so bfloat16 saves nothing and its casts cost
# 1-3 us per product. Two linear layers and tanh, 1 and 16 rows, on a 2-core AMX Xeon,
# interleaved, bfloat16 / float32 time: 1.25x / 1.14x at 16x96 weights, 1.05x / 0.91x at
# 64x256, 0.99x / 0.92x at 128x512, 0.57x / 0.54x at 1024x4096. The zoo's GRU, LSTM, RNN and
# width-64 encoder layers have only such weights.
_BF16_MIN_WEIGHT_ELEMENTS = 64 * 256


def _onednn_bf16_supported() -> bool:
    """Whether this CPU runs oneDNN's bfloat16 convolutions and packed products (AVX512-BF16/
    AMX, or AVX-512 with emulation); elsewhere convolutions stay TVM's, in float32, and
    products ATen's."""
    import torch

    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _mkl_supported() -> bool:
    """Whether PyTorch has MKL, whose packed sgemm runs float32 linear layers."""
    import torch

    return torch.backends.mkl.is_available()


@functools.cache
def _cpuinfo() -> dict:
    """This machine's /proc/cpuinfo fields (of its last CPU); empty where there is none."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return dict(map(str.strip, line.split(":", 1)) for line in cpuinfo if ":" in line)
    except OSError:
        return {}


def has_cpu_flag(flag: str) -> bool:
    """Whether /proc/cpuinfo lists `flag` ("avx512f", "amx_tile") for this machine's CPU."""
    return flag in _cpuinfo().get("flags", "").split()


def _avx512_vendor() -> str | None:
    """The CPU's vendor id ("GenuineIntel", "AuthenticAMD") where it has AVX-512, else None."""
    return _cpuinfo().get("vendor_id") if has_cpu_flag("avx512f") else None


def _float32_linear_kernel() -> str | None:
    """The packed kernel float32 linear layers run on, None where there is none: oneDNN on
    AMD CPUs with AVX-512, where MKL's sgemm takes slower code (2-core EPYC Zen 4, BERT-base's
    products at 128 rows, interleaved: 768x768 1.02 -> 0.77 ms, 768x3072 4.9 -> 3.1,
    3072x768 4.5 -> 3.1); MKL's packed sgemm elsewhere (measured on Intel: BERT-base
    193.6 -> 151.8 ms against ATen's product on a 2-core AMX Xeon)."""
    import torch

    if _avx512_vendor() == "AuthenticAMD" and torch.backends.mkldnn.is_available():
        return _ONEDNN_LINEAR
    return _PACKED_LINEAR if _mkl_supported() else None


def _integer_convolutions() -> bool:
    """Whether quantized convolutions run on PyTorch's int8 kernels (quantized.py): where its
    quantized engine is one for x86 (x86, fbgemm, onednn), whose kernels use AMX-INT8 or VNNI
    where the CPU has them."""
    import torch

    return torch.backends.quantized.engine in ("x86", "fbgemm", "onednn")


def _onednn_int8_kernels() -> bool:
    """Whether oneDNN's int8 kernels (qconv2d_pointwise, qlinear_pointwise) take what PyTorch's
    quantized::conv2d cannot express: a residual addition inside the kernel, a convolution
    with a float32 result, and PT2E's quantized linear layers. Where PyTorch has its oneDNN
    quantized engine and the CPU VNNI, on which the integer convolutions run on oneDNN anyway
    (aten_kernels.cc)."""
    import torch

    return ("onednn" in torch.backends.quantized.supported_engines
            and "avx512_vnni" in _cpuinfo().get("flags", "").split())


def uses_onednn_convolutions(precision: str, mod: tvm.IRModule, tuning: bool = False) -> bool:
    """Whether `mod`'s convolutions run on oneDNN (NHWC activations, weights packed once)
    instead of TVM's NCHW16c schedules: in bfloat16 wherever oneDNN has bfloat16 kernels; in
    float32 (unless `tuning`: MetaSchedule was asked to tune them) on CPUs with AVX-512 where
    that was measured faster, interleaved, outputs within 2e-4 of eager's either way:
    - Intel (2-core AMX Xeon): ResNet-18 31.6 -> 28.5 ms, MobileNet-V2 16.1 -> 13.9 ms;
    - AMD (2-core EPYC Zen 4, bench/kernel_choice.py) for models without depthwise convolutions:
      ResNet-18 25.9 -> 19.8 ms, ResNet-50 46.9 -> 44.4 ms. With them TVM's schedules win
      there (MobileNet-V2 7.5 against 8.7 ms on oneDNN, MobileNet-V3 7.2 against 7.3,
      EfficientNet-B0 9.9 against 11.1); mixing both in one model was slower than either in
      the one (noisy) run tried.
    CPUs without AVX-512 keep TVM's schedules (not measured)."""
    if precision == "bf16":
        return _onednn_convolutions_possible(precision)
    if tuning or not _onednn_convolutions_possible(precision):
        return False
    vendor = _avx512_vendor()
    return vendor == "GenuineIntel" or (vendor == "AuthenticAMD"
                                        and not _has_depthwise_convolutions(mod))


def _onednn_convolutions_possible(precision: str) -> bool:
    """Whether oneDNN has convolution kernels for `precision` on this CPU: bfloat16 ones, or
    float32 ones with AVX-512 (where it was measured)."""
    import torch

    if precision == "bf16":
        return _onednn_bf16_supported()
    return torch.backends.mkldnn.is_available() and _avx512_vendor() is not None


def convolution_kernel_choices(precision: str, mod: tvm.IRModule,
                               tuning: bool = False) -> tuple[bool, ...]:
    """The values of ``onednn_convolutions`` (:func:`fuse`) to build `mod` with:
    :func:`uses_onednn_convolutions`'s choice, and where `mod` has convolutions oneDNN could
    run, the other one too, for the build to time both and keep the faster. The faster
    kernels depend on the sizes as much as on the CPU: each oneDNN call costs 25-35 us
    before any arithmetic (ATen makes its primitive descriptor per call), which TVM's fused
    kernels do not pay. On a 2-core EPYC Zen 4, float32, TVM's convolutions against oneDNN's:
    RegNet-Y-400MF at 64 px 1.43x faster, at 224 px 0.94x; ResNet-18 at 224 px 0.84x,
    DenseNet-121 at 224 px 1.10x; bfloat16 MobileNet-V2 at 224 px 0.81x, at 64 px 2.7x."""
    chosen = uses_onednn_convolutions(precision, mod, tuning)
    if (tuning or not _onednn_convolutions_possible(precision)
            or not has_call(mod, _is_onednn_convolution)):
        return (chosen,)
    return (chosen, not chosen)


def has_bf16_candidates(mod: tvm.IRModule) -> bool:
    """Whether ``precision="bf16"`` may change what `mod` computes: it has a matrix product or
    a convolution (:class:`AtenKernels` decides which of them run in bfloat16)."""
    return has_call(mod, lambda call: call.op == _MATMUL or call.op in _ONEDNN_CONVOLUTIONS)


def _has_depthwise_convolutions(mod: tvm.IRModule) -> bool:
    """Whether a Relax function of `mod` has a convolution with one filter per channel."""
    conv2d = tvm.ir.Op.get("relax.nn.conv2d")
    return has_call(mod, lambda call: call.op == conv2d and call.attrs.groups > 1
                    and _is_depthwise(call, block=1))


def _is_onednn_convolution(call: relax.Call) -> bool:
    """A float32 2-D or 3-D convolution oneDNN's kernel takes: constant weight, padding the
    same on both sides of each axis."""
    attrs = call.attrs
    if (call.op not in _ONEDNN_CONVOLUTIONS or call.ty.dtype != "float32"
            or call.args[0].ty.dtype != "float32" or not isinstance(call.args[1], _CONSTANT)):
        return False
    padding = [int(v) for v in attrs.padding]
    return padding[:len(padding) // 2] == padding[len(padding) // 2:]


def _onednn_conv_layout(call: relax.Call) -> dict:
    """ConvertLayout's choice where convolutions run on oneDNN: channels last (NHWC, NDHWC),
    oneDNN's activation layout, for the convolutions AtenKernels hands to it (the weights are
    packed for oneDNN at their first call, so their layout is left as it is); other calls keep
    their layouts."""
    if isinstance(call.op, tvm.ir.Op) and _is_onednn_convolution(call):
        layouts = _ONEDNN_CONVOLUTIONS[call.op]
        if (call.attrs.data_layout, call.attrs.kernel_layout) == (layouts.plain, layouts.weight):
            return {call.op.name: [layouts.channels_last, layouts.weight]}
    return {}


@dataclasses.dataclass(frozen=True)
class ConvolutionEpilogue:
    """What oneDNN's kernel computes after a convolution instead of TVM's pass over its result:
    ``conv + bias`` for a constant bias per output channel (each of MobileNet-V2's 17
    convolutions without an activation had such a pass), then a clamp with constant bounds
    (ReLU, ReLU6) or the addition of a tensor of the result's type (a residual connection's
    other branch, where that addition would be a pass of its own: :func:`_adds_alone`), each
    value used only by the next.

    oneDNN 3.2's clip and ReLU post-ops turn NaN into a bound; the clamping kernel
    (``packed_conv2d_clamp_out``, onednn_kernels.cc) uses them only on inputs that make no NaN
    or infinity, checked per call, and clamps the result itself, keeping NaN, otherwise."""

    conv: relax.Call
    bias: np.ndarray | None  # float32, one per output channel
    clamp: tuple[float, float] | None  # the bounds; a ReLU's are (0, inf)
    computed: tuple[relax.Var, ...]  # the convolution's and the steps' variables, in order
    # The input is the result of another epilogue clamping to finite bounds, nothing between
    # them: the kernel need not read it to rule out NaN (ClampedResult in onednn_kernels.cc).
    input_clamped: bool = False
    addend: relax.Var | None = None  # added after the bias; never with a clamp


def convolution_epilogues(func: relax.Function, takes_bias, takes_clamp) -> dict:
    """The epilogues of the convolutions bound in `func`'s outer blocks: a clamp where
    ``takes_clamp(call, input_clamped)`` (see :class:`ConvolutionEpilogue`), a bias before it,
    and a bias alone or followed by an addend where ``takes_bias(call)``.
    Returns {the last step's variable: its :class:`ConvolutionEpilogue`}."""
    values, next_step = outer_calls(func), _only_readers(func)
    found = {}
    for var, conv in values.items():
        if conv.op not in _ONEDNN_CONVOLUTIONS or not isinstance(conv.ty.shape.values[-1],
                                                                 tirx.IntImm):
            continue
        channels, ndim = int(conv.ty.shape.values[-1]), len(conv.ty.shape)
        bias = low = high = None
        computed = [var]
        step = next_step(var)
        producer = found.get(conv.args[0])
        input_clamped = bool(producer and producer.clamp
                             and all(math.isfinite(b) for b in producer.clamp))
        clamps = takes_clamp(conv, input_clamped)
        if step and step[1].op == _ADD and (takes_bias(conv) or clamps):
            add = step[1]
            bias = _channel_vector(add.args[1] if add.args[0].same_as(var) else add.args[0],
                                   channels, ndim)
            if bias is not None:
                computed.append(step[0])
                step = next_step(step[0])
        if clamps:
            for op in (_MAXIMUM, _MINIMUM):  # the order _NanPropagatingMinMax writes a clip in
                bound = _scalar(step[1].args[0]) if step and step[1].op == op else None
                if bound is not None and step[1].args[1].same_as(computed[-1]):
                    low, high = (bound, high) if op == _MAXIMUM else (low, bound)
                    computed.append(step[0])
                    step = next_step(step[0])
        clamp = None if low is None and high is None else (
            -math.inf if low is None else low, math.inf if high is None else high)
        if clamp is None and not takes_bias(conv):
            continue  # a bias (and an addend after it) taken only with a clamp
        addend = None
        if clamp is None and step and step[1].op == _ADD:
            add = step[1]
            other = add.args[1] if add.args[0].same_as(computed[-1]) else add.args[0]
            if (isinstance(other, relax.Var) and same_tensor_type(other.ty, conv.ty)
                    and _adds_alone(step[0], next_step)):
                addend = other
                computed.append(step[0])
        if len(computed) > 1:
            found[computed[-1]] = ConvolutionEpilogue(conv, bias, clamp, tuple(computed),
                                                      clamp is not None and input_clamped, addend)
    return found


def _adds_alone(sum_var: relax.Var, next_step) -> bool:
    """Whether the addition binding `sum_var` would be a pass of TVM's of its own: its result
    has several readers, is returned, or is read by a convolution (TVM fuses no elementwise
    producer into one), so no fused kernel of TVM's takes the addition in, as the pass for
    ResNet's ReLU after its residual addition does (there oneDNN's kernel adding it would save
    nothing)."""
    reader = next_step(sum_var)
    return reader is None or reader[1].op in _ONEDNN_CONVOLUTIONS


def _only_readers(func: relax.Function):
    """A function of a variable bound in `func`'s outer blocks: (the variable, the call) of the
    call there that alone reads it, once; None where there is no such call."""
    values, uses, users = outer_calls(func), use_counts(func), {}
    for var, call in values.items():
        for arg in call.args:
            if isinstance(arg, relax.Var):
                users.setdefault(arg, []).append(var)

    def next_step(var):
        if uses.get(var) != 1 or len(users.get(var, [])) != 1:
            return None
        return users[var][0], values[users[var][0]]

    return next_step


@dataclasses.dataclass(frozen=True)
class LinearGelu:
    """``gelu(x @ weight + bias)`` (GELU's erf form) for a constant weight and bias, each value
    used only by the next: in bfloat16 on AMX CPUs, oneDNN's kernel adds the bias and applies
    GELU (``packed_linear_bias_gelu``, onednn_kernels.cc, which keeps PyTorch's NaN and
    infinities the way the clamping convolution does) instead of TVM's pass over the result:
    BERT-base's feed-forward layers. oneDNN's GELU costs 43 us on a 128x768 by 768x3072
    product of 236 us, TVM's pass with the bias about 190 us; BERT-base in bfloat16 23.5 ->
    22.0 ms (2-core AMX Xeon, interleaved)."""

    matmul: relax.Call
    bias: np.ndarray  # float32, one per output
    computed: tuple[relax.Var, ...]  # the product's and the addition's variables


def linear_gelus(func: relax.Function, takes) -> dict:
    """The :class:`LinearGelu` chains bound in `func`'s outer blocks whose product
    ``takes(call)``, by the GELU's variable."""
    values, next_step = outer_calls(func), _only_readers(func)
    found = {}
    for var, matmul in values.items():
        if matmul.op != _MATMUL or not takes(matmul):
            continue
        outputs, ndim = int(matmul.args[1].ty.shape[1]), len(matmul.ty.shape)
        add = next_step(var)
        if not add or add[1].op != _ADD:
            continue
        bias = _channel_vector(add[1].args[1] if add[1].args[0].same_as(var) else add[1].args[0],
                               outputs, ndim)
        gelu = next_step(add[0])
        if bias is not None and gelu and gelu[1].op == _GELU:
            found[gelu[0]] = LinearGelu(matmul, bias, (var, add[0]))
    return found


_MATMUL = tvm.ir.Op.get("relax.matmul")
_MAX_POOLS = tuple(tvm.ir.Op.get(f"relax.nn.max_pool{d}d") for d in (1, 2, 3))
_GELU = tvm.ir.Op.get("relax.nn.gelu")


def _scalar(expr: relax.Expr) -> float | None:
    """The value of a float32 constant holding one number, None for anything else."""
    if not isinstance(expr, _CONSTANT) or expr.ty.dtype != "float32":
        return None
    value = expr.value.numpy()
    return float(value.reshape(())) if value.size == 1 else None


_MAXIMUM = tvm.ir.Op.get("relax.maximum")
_MINIMUM = tvm.ir.Op.get("relax.minimum")
_ADD = tvm.ir.Op.get("relax.add")


def _channel_vector(expr: relax.Expr, channels: int, ndim: int) -> np.ndarray | None:
    """A float32 constant holding one value per channel, broadcast along the last axis of an
    `ndim`-dimensional tensor, as that vector; None for anything else."""
    if not isinstance(expr, _CONSTANT) or expr.ty.dtype != "float32":
        return None
    value = expr.value.numpy()
    if value.ndim > ndim or value.size != channels or (value.ndim and value.shape[-1] != channels):
        return None
    return value.reshape(channels)


@relax.expr_functor.mutator
class AtenKernels(relax.PyExprMutator):
    """Matrix products, and with ``precision="bf16"`` convolutions, as calls to PyTorch's
    kernels; the rest of the region TVM's.

    Untuned TVM schedules reach a fraction of MKL's speed on matrix products, and TVM's LLVM
    backend cannot emit AMX or AVX512-BF16 dot products at all. So ``matmul`` (linear layers,
    attention) runs PyTorch's kernels; TVM fuses what surrounds them (bias, activations).
    A product with a constant weight (a linear layer) runs on the weight packed once: in
    float32 on the kernel :func:`_float32_linear_kernel` picks per CPU (MKL's packed sgemm:
    BERT-base 193.6 -> 151.8 ms on a 2-core AMX Xeon, interleaved, for about 20% more memory;
    oneDNN on AMD), in bfloat16 on oneDNN. Such calls return the kernel's own result
    (``call_pure_packed``) instead of copying it into a destination. Other products (attention)
    call ``torch.matmul`` destination-passing.

    With ``precision="bf16"`` products are computed in bfloat16 (oneDNN: AMX tiles or
    AVX512-BF16, float32 accumulation), constant operands (weights) stored in bfloat16 (cast
    once, at build time, by FoldConstant); everything around them (softmax, normalisation)
    stays float32. Convolutions in NHWC (see :func:`_onednn_conv_layout`; in float32 too where
    :func:`uses_onednn_convolutions` says) run oneDNN's convolution on weights it packs once
    (BERT-base 101.6 -> 86.5 ms, MobileNet-V2 12.7 -> 11.2 ms against ATen's product and a
    copied convolution result), writing into the buffer TVM passes (destination-passing, so
    TVM's memory plan reuses buffers: MobileNet-V2 4-5% faster), a bias added in the kernel
    where the convolution's result has no other use, and a ReLU or ReLU6 after it clamped
    there too where that pays, or a residual addition added (:class:`ConvolutionEpilogue`).
    They take and give bfloat16 (:func:`_in_bfloat16`), cast by TVM in the fused kernels around
    the call: the kernel rounds its operands to bfloat16 anyway, and ATen's casts in the call
    cost more (MobileNet-V2 15.1 -> 9.9 ms, BERT-base 403 -> 338 ms in a run on a loaded
    machine, both interleaved, the same outputs); one such call's result goes to the next as it is.
    Linear layers with small weights stay float32 (:data:`_BF16_MIN_WEIGHT_ELEMENTS`); a
    bfloat16 one followed by its bias and GELU takes them into oneDNN's kernel on AMX CPUs
    (:class:`LinearGelu`).
    """

    _astype = tvm.ir.Op.get("relax.astype")

    def __init__(self, precision: str, opt_extents: Mapping[str, int]):
        super().__init__()
        self.bf16 = precision == "bf16"
        self.opt_extents = opt_extents
        # The kernel products with a constant weight run on, packed, per dtype computed.
        self.packed_kernel = {"bfloat16": _PACKED_LINEAR if _onednn_bf16_supported() else None,
                              "float32": _float32_linear_kernel()}
        # Per epilogue's last variable, the convolution and the steps its kernel computes; and
        # the variables of the convolutions and steps before that, computed by it too.
        self.epilogues: dict[relax.Var, ConvolutionEpilogue] = {}
        self.linear_gelus: dict[relax.Var, LinearGelu] = {}
        self.computed_before: set[relax.Var] = set()
        # float32 values computed in the function that a bfloat16 convolution reads, by their
        # bfloat16 rounding: their later readers read that (:meth:`_narrowed`).
        self.narrowed: dict[relax.Var, relax.Var] = {}
        self.parameters: set[relax.Var] = set()

    def visit_function_(self, func: relax.Function) -> relax.Expr:
        self.parameters.update(func.params)
        found = convolution_epilogues(func, self._adds_bias, _clamps_in_kernel)
        self.epilogues.update(found)
        self.computed_before.update(var for epilogue in found.values()
                                    for var in epilogue.computed[:-1])
        if self.bf16 and self.packed_kernel["bfloat16"] and has_cpu_flag("amx_bf16"):
            gelus = linear_gelus(func, self._takes_gelu)
            self.linear_gelus.update(gelus)
            self.computed_before.update(var for gelu in gelus.values() for var in gelu.computed)
        return super().visit_function_(func)

    def visit_binding_block_(self, block: relax.BindingBlock) -> relax.BindingBlock:
        return self._in_own_scope(super().visit_binding_block_, block)

    def visit_dataflow_block_(self, block: relax.DataflowBlock) -> relax.BindingBlock:
        return self._in_own_scope(super().visit_dataflow_block_, block)

    def _in_own_scope(self, visit, block):
        """`visit(block)` with the roundings :meth:`_narrowed` makes kept to that block: they
        are bound in it (a dataflow block's variables are not seen outside it)."""
        outer, self.narrowed = self.narrowed, {}
        try:
            return visit(block)
        finally:
            self.narrowed = outer

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        if binding.var in self.computed_before:
            return  # computed with its epilogue, by the last step's binding
        epilogue = self.epilogues.get(binding.var)
        if epilogue is not None:
            binding = relax.VarBinding(binding.var, self._convolution(epilogue))
        gelu = self.linear_gelus.get(binding.var)
        if gelu is not None:
            binding = relax.VarBinding(binding.var, _in_bfloat16(
                _PACKED_LINEAR_BIAS_GELU, list(gelu.matmul.args), binding.value.ty,
                returns_result=True, uncast=[relax.const(gelu.bias)]))
        super().visit_var_binding_(binding)

    def _takes_gelu(self, call: relax.Call) -> bool:
        """Whether oneDNN's kernel computes `call`'s product with a bias and GELU after it: a
        float32 linear layer computed in bfloat16 (:meth:`visit_call_`), on a fixed row count
        (the kernel makes a primitive per row count)."""
        a, b = call.args
        return (a.ty.dtype == b.ty.dtype == call.ty.dtype == "float32" and _is_linear_weight(b)
                and _elements(b) >= _BF16_MIN_WEIGHT_ELEMENTS and not self._packing_rows(a))

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.Op) and any(arg in self.narrowed for arg in call.args):
            call = self.builder_.normalize(relax.Call(
                call.op, [self._rounded(arg) for arg in call.args], call.attrs, call.ty_args))
        if call.op in _ONEDNN_CONVOLUTIONS:
            return self._convolution(ConvolutionEpilogue(call, None, None, ()))
        if call.op == self._astype and call.attrs.dtype == "bfloat16":
            # A bfloat16 kernel's result cast to float32 for another's input: the cast back is
            # exact, so that kernel takes the result itself.
            widened = bound_call(self, call.args[0], self._astype)
            if widened is not None and widened.args[0].ty.dtype == "bfloat16":
                return widened.args[0]
            return call
        if call.op in _MAX_POOLS:
            return self._max_pool(call)
        if call.op != _MATMUL:
            return call
        a, b = call.args
        dtype = call.ty.dtype
        if not (a.ty.dtype == b.ty.dtype == dtype and dtype in _ATEN_MATMUL_DTYPES):
            return call
        linear = _is_linear_weight(b)
        computed_in = "bfloat16" if self.bf16 or dtype == "bfloat16" else "float32"
        if dtype == "float32" and linear and _elements(b) < _BF16_MIN_WEIGHT_ELEMENTS:
            computed_in = "float32"
        packed_kernel = self.packed_kernel[computed_in]
        if linear and packed_kernel:
            arguments = [a, b, *self._packing_rows(a)]
            if computed_in == dtype:
                return relax.op.call_pure_packed(packed_kernel, *arguments, ty_args=call.ty)
            return _in_bfloat16(packed_kernel, arguments, call.ty, returns_result=True)
        if computed_in == dtype:  # no casts, no copy
            return relax.call_dps_packed(_ATEN_MATMUL, [a, b], call.ty)
        return _in_bfloat16(_ATEN_MATMUL, [a, b], call.ty)

    def _narrowed(self, x: relax.Expr) -> relax.Expr:
        """A bfloat16 convolution's input `x`: a float32 value the function computes (a
        residual block's sum) rounded to bfloat16 once, its readers after this one reading
        that rounding widened (:meth:`visit_call_`), as a bfloat16 network keeps its residual
        stream. The kernel that computes `x` then writes bfloat16 alone: it wrote float32 and
        a cast of it read that again, once per convolution reading it (ResNet-18's stages'
        first blocks: twice). Parameters (the model's inputs) and other kernels' bfloat16
        results widened are left as they are: :func:`_in_bfloat16` casts them."""
        if (not isinstance(x, relax.Var) or x in self.parameters or x.ty.dtype != "float32"
                or bound_call(self, x, self._astype) is not None):
            return x
        if x not in self.narrowed:
            self.narrowed[x] = self.builder_.emit(relax.op.astype(x, "bfloat16"), "narrowed")
        return self.narrowed[x]

    def _rounded(self, arg: relax.Expr) -> relax.Expr:
        """`arg` as a reader after :meth:`_narrowed` reads it: its bfloat16 rounding, widened
        in the reader's kernel."""
        narrowed = self.narrowed.get(arg)
        if narrowed is None:
            return arg
        return self.builder_.emit(relax.op.astype(narrowed, arg.ty.dtype), "widened")

    def _max_pool(self, call: relax.Call) -> relax.Expr:
        """Max pooling of a bfloat16 kernel's widened result, pooled in bfloat16 and widened
        after: the same values (widening is exact and keeps order, NaN and the infinities), and
        the next bfloat16 kernel takes the pooled result as it is. Pooling the widened result
        wrote and read it in float32 and narrowed the pooled one again: ResNet-18's stem in
        bfloat16 at batch 8 spent 18% of its time there (2-core AMX Xeon)."""
        widened = bound_call(self, call.args[0], self._astype)
        if widened is None or widened.args[0].ty.dtype != "bfloat16":
            return call
        pooled = relax.Call(call.op, [widened.args[0]], call.attrs)
        return relax.op.astype(self.builder_.emit(pooled, "max_pool"), widened.attrs.dtype)

    def _packing_rows(self, x: relax.Expr) -> list:
        """For a product whose row count is symbolic, the row count at the opt shape, which
        the kernel packs the weight for (else the first call's would decide: a first call with
        1 row made BERT-base's products at 128 rows 10% slower), 0 where there is none; nothing
        for static rows. Its presence tells the kernel the row count varies
        (aten_kernels.cc, RowPacking)."""
        if not isinstance(x.ty.shape, relax.ShapeExpr):
            rows = None
        else:
            rows = functools.reduce(lambda a, b: a * b, x.ty.shape.values[:-1],
                                    tirx.IntImm("int64", 1))
        if isinstance(rows, tirx.IntImm):
            return []
        at_opt = None if rows is None else schedule.extent_at(rows, self.opt_extents)
        return [relax.prim_value(tirx.IntImm("int64", at_opt or 0))]

    def _adds_bias(self, call: relax.Call) -> bool:
        """Whether oneDNN's kernel for `call` adds its bias where no clamp follows. Not
        bfloat16 grouped ones: with a float32 bias oneDNN 3.2 leaves its brdgmm kernel for an
        older one (MobileNet-V2's 144-channel 3x3 depthwise at 56x56: 92 -> 156 us on the AMX
        Xeon); a bfloat16 bias keeps it (66 -> 73 us with the bias and a clip), so those take
        theirs in bfloat16 where a clamp comes with it (:meth:`_convolution`)."""
        return _is_aten_convolution(call) and not (self.bf16 and int(call.attrs.groups) > 1)

    def _convolution(self, epilogue: ConvolutionEpilogue) -> relax.Expr:
        """`epilogue`'s convolution on oneDNN's kernel, where it takes it, adding the bias and
        the addend or clamping where the epilogue has them."""
        call, bias, clamp = epilogue.conv, epilogue.bias, epilogue.clamp
        if not _is_aten_convolution(call):
            return call
        attrs = call.attrs
        before = list(attrs.padding)[:len(attrs.strides)]  # the same after (_is_onednn_convolution)
        geometry = relax.ShapeExpr([int(v) for v in [*attrs.strides, *before, *attrs.dilation,
                                                     attrs.groups]])
        function, operands, after = _PACKED_CONV2D, [call.args[0], call.args[1]], [geometry]
        if bias is None and (clamp is not None or epilogue.addend is not None):
            bias = np.zeros(int(call.ty.shape.values[-1]), "float32")  # those kernels take one
        if epilogue.addend is not None:
            function, after = _PACKED_CONV2D_BIAS_ADD, [relax.const(bias), geometry]
            operands.append(epilogue.addend)
        elif clamp is not None:
            bias_const = relax.const(bias)
            if self.bf16 and int(attrs.groups) > 1:
                bias_const = relax.op.astype(bias_const, "bfloat16")  # folded by FoldConstant
            function = _PACKED_CONV2D_CLAMP
            after = [bias_const, geometry, relax.const(np.array(clamp, "float32")),
                     relax.prim_value(int(epilogue.input_clamped))]
        elif bias is not None:
            function, after = _PACKED_CONV2D_BIAS, [relax.const(bias), geometry]
        if self.bf16:
            return _in_bfloat16(function, [self._narrowed(x) for x in operands], call.ty,
                                uncast=after)
        return relax.call_dps_packed(function, [*operands, *after], call.ty)


def _clamps_in_kernel(call: relax.Call, input_clamped: bool) -> bool:
    """Whether oneDNN's kernel for `call` clamps its result (:class:`ConvolutionEpilogue`):
    where its input is the result of another such kernel (which ruled out NaN already), or at
    most half its own result (output channels >= 2 x input channels x the strides' product).
    Elsewhere the kernel's read of its input to rule out NaN costs what TVM's pass over the
    result would: clamping after every convolution gave MobileNet-V2 in bfloat16 1.954 ms
    against this rule's 1.938, ResNet-18 2.840 against 2.776 ms at batch 1 and 17.37 against
    17.58 ms at batch 8 (2-core AMX Xeon, interleaved: noise either way)."""
    if not _is_aten_convolution(call):
        return False
    if input_clamped:
        return True
    inputs, outputs = call.args[0].ty.shape.values[-1], call.ty.shape.values[-1]
    if not (isinstance(inputs, tirx.IntImm) and isinstance(outputs, tirx.IntImm)):
        return False
    return int(outputs) >= 2 * int(inputs) * math.prod(int(s) for s in call.attrs.strides)


def _is_aten_convolution(call: relax.Call) -> bool:
    """A convolution AtenKernels hands to oneDNN: one it takes, channels last (as
    :func:`_onednn_conv_layout` chose)."""
    if not _is_onednn_convolution(call):
        return False
    attrs, layouts = call.attrs, _ONEDNN_CONVOLUTIONS[call.op]
    return (attrs.data_layout == attrs.out_layout == layouts.channels_last
            and attrs.kernel_layout == layouts.weight)


def _is_linear_weight(b: relax.Expr) -> bool:
    """A constant [K, N] matrix with K, N > 0: a linear layer's weight, which the packed
    products (MKL, oneDNN) take."""
    if not isinstance(b, _CONSTANT) or len(b.ty.shape) != 2:
        return False
    return all(isinstance(d, tvm.tirx.IntImm) and int(d) > 0 for d in b.ty.shape)


def _elements(x: relax.Expr) -> int:
    """The element count of `x`, of static shape."""
    return math.prod(int(d) for d in x.ty.shape)


def _in_bfloat16(function: str, args: list, ty: relax.TensorType, *,
                 returns_result: bool = False, uncast: list = ()) -> relax.Expr:
    """A call of `function` on bfloat16 tensors, for a float32 result of type `ty`: tensor
    arguments are cast to bfloat16 (constants once, by FoldConstant; others inside the fused
    TVM kernel that produces them; the arguments `uncast` after them as they are), and the
    result back to `ty`'s dtype inside the kernel that consumes it (or not at all where another
    such call takes it: AtenKernels). Destination-passing, or with `returns_result` a pure call
    returning a tensor the function allocates (oneDNN's result, taken without a copy)."""
    cast = [relax.op.astype(x, "bfloat16")
            if isinstance(x.ty, relax.TensorType) and x.ty.dtype != "bfloat16" else x
            for x in args] + list(uncast)
    result_ty = relax.TensorType(ty.shape, "bfloat16")
    if returns_result:
        result = relax.op.call_pure_packed(function, *cast, ty_args=result_ty)
    else:
        result = relax.call_dps_packed(function, cast, result_ty)
    return relax.op.astype(result, ty.dtype)


PRECISIONS = ("fp32", "bf16")


def fuse(mod: tvm.IRModule, target: tvm.target.Target, precision: str = "fp32",
         packed_layouts: bool = True, onednn_convolutions: bool | None = None,
         integer_convolutions: bool | None = None) -> tvm.IRModule:
    """Layout conversion (with `packed_layouts`: NCHW16c, or NHWC for oneDNN's convolutions),
    library dispatch, legalisation to TIR and operator fusion: the module whose PrimFuncs are
    both the tuning tasks and what the tuning records are applied to (so keys match). Weight
    layout transforms fold into the constants here. Without `packed_layouts` (build_library's
    retry when TVM's layout handling fails) convolutions stay NCHW and TVM's, in float32.
    `onednn_convolutions` overrides :func:`uses_onednn_convolutions`'s choice, and
    `integer_convolutions` :func:`_integer_convolutions`'s for quantized ones."""
    if onednn_convolutions is None:
        onednn_convolutions = uses_onednn_convolutions(precision, mod)
    if integer_convolutions is None:
        integer_convolutions = _integer_convolutions()
    integer = []
    if integer_convolutions:
        onednn = _onednn_int8_kernels()
        integer = [_rewrite_relax_functions(
                       "tvmbridge.IntegerKernels",
                       lambda: quantized.IntegerKernels(residual_adds=onednn)),
                   relax.transform.DeadCodeElimination(),
                   *([_rewrite_relax_functions(
                       "tvmbridge.FloatResultIntegerKernels",
                       lambda: quantized.IntegerKernels(float_results=True)),
                      relax.transform.DeadCodeElimination()] if onednn else []),
                   # The weights of the quantized convolutions left in float32 (one whose
                   # output is not quantized, where oneDNN's integer kernel does not take it)
                   # become constants, so that the layout choice below hands them to
                   # oneDNN where it takes float32 convolutions.
                   relax.transform.FoldConstant()]
    layouts = []
    if packed_layouts:
        choose = _onednn_conv_layout if onednn_convolutions else _conv_layout
        layouts = [relax.transform.ConvertLayout({}, choose)]
    passes = [
        *integer,  # before relu becomes a NaN-keeping maximum
        _rewrite_relax_functions("tvmbridge.NanPropagatingMinMax", _NanPropagatingMinMax),
        *layouts,
        relax.transform.FoldConstant(),
        _rewrite_relax_functions("tvmbridge.FusedAttention",
                                 lambda: attention.FusedAttention(precision == "bf16")),
        relax.transform.DeadCodeElimination(),
        # After folding, so that transposed weights are constants (stored in bfloat16 for
        # precision="bf16": the FoldConstant below casts them).
        _rewrite_relax_functions("tvmbridge.AtenKernels",
                                 lambda: AtenKernels(precision, schedule.opt_extents_of(mod))),
        *cpu_generic.library_dispatch_passes(target),
        # cpu_generic.legalize_passes with the packed convolution's legalisation, and
        # vectorised exp/erf for the float32 ops built on them, added.
        relax.transform.LegalizeOps({"relax.nn.conv2d": _legalize_conv2d,
                                     **vector_math.LEGALIZATIONS, **extrema.LEGALIZATIONS,
                                     **reshapes.LEGALIZATIONS}),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    with target:
        return tvm.transform.Sequential(passes)(mod)
