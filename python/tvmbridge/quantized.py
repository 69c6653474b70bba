"""Quantized convolutions on PyTorch's int8 kernels.

The frontend gives a quantized convolution in the form every quantization-aware compiler reads
(QDQ): ``quantize(relu?(conv2d(dequantize(x), dequantize(w)) + bias), scale, zero_point)``,
with ``x`` uint8 and ``w`` an int8 constant. TVM can compute that form as it stands, in float32,
exactly on the output's grid. Where PyTorch's quantized engine runs (:func:`build.
_integer_convolutions`), :class:`IntegerConvolutions` replaces the pattern with one call of
``tvmbridge.aten.quantized_conv2d`` (``src/runtime/aten_kernels.cc``): PyTorch's own quantized
convolution, uint8 x int8 products accumulated in int32 (oneDNN on AMX-INT8 tiles or VNNI,
fbgemm elsewhere), requantized inside the kernel, weights packed once. TVM's LLVM backend emits
neither AMX nor VNNI dot products, and its float32 form was 8.5x slower than PyTorch's int8
kernels (issue 24). Max pooling of a quantized tensor pools its integers.

The kernel takes and gives NHWC; so do the integer max pooling and the residual additions
between such kernels, which TVM computes. Other ops stay NCHW, reading the NHWC results through
transposes that TVM fuses into their kernels.
"""

import numpy as np
import tvm
from tvm import relax

from .relax_patterns import CONSTANT as _CONSTANT, bound_call

QUANTIZED_CONV2D = "tvmbridge.aten.quantized_conv2d"
_NCHW_TO_NHWC = [0, 2, 3, 1]
_NHWC_TO_NCHW = [0, 3, 1, 2]


def _constant_array(expr: relax.Expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, _CONSTANT) else None


def _static(shape) -> bool:
    return all(isinstance(extent, tvm.tirx.IntImm) for extent in shape)


@relax.expr_functor.mutator
class IntegerConvolutions(relax.PyExprMutator):
    """Quantized 2-D convolutions (QDQ form, uint8 activations, int8 weights quantized per
    tensor or per output channel with zero points 0, static shapes) as calls of PyTorch's int8
    convolution, and the max pooling and residual additions of their results on integers, in
    NHWC. Leaves the replaced float32 bindings dead, for DeadCodeElimination."""

    _quantize = tvm.ir.Op.get("relax.quantize")
    _dequantize = tvm.ir.Op.get("relax.dequantize")
    _conv2d = tvm.ir.Op.get("relax.nn.conv2d")
    _add = tvm.ir.Op.get("relax.add")
    _relu = tvm.ir.Op.get("relax.nn.relu")
    _reshape = tvm.ir.Op.get("relax.reshape")
    _permute = tvm.ir.Op.get("relax.permute_dims")
    _max_pool2d = tvm.ir.Op.get("relax.nn.max_pool2d")

    def __init__(self):
        super().__init__()
        self._nhwc_results = []  # the kernel calls' results, bound to variables
        self._transposed = []  # (x, its NHWC transpose) for each x transposed

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op == self._quantize:
            for rewrite in (self._integer_convolution, self._integer_max_pool, self._nhwc_add):
                integer = rewrite(call)
                if integer is not None:
                    return integer
        return call

    def _bound(self, expr: relax.Expr, op: tvm.ir.Op) -> relax.Call | None:
        return bound_call(self, expr, op)

    def _integer_convolution(self, quantize: relax.Call) -> relax.Expr | None:
        if quantize.attrs.out_dtype != "uint8":
            return None
        output_scale, output_zero_point = map(_constant_array, quantize.args[1:])
        y = quantize.args[0]
        relu = self._bound(y, self._relu)
        if relu is not None:
            y = relu.args[0]
        bias = None
        add = self._bound(y, self._add)
        if add is not None:
            y, bias = add.args
            reshape = self._bound(bias, self._reshape)
            bias = _constant_array(reshape.args[0] if reshape is not None else bias)
        conv = self._bound(y, self._conv2d)
        if conv is None or output_scale is None or output_scale.size != 1 or (
                add is not None and bias is None) or not _static(conv.ty.shape):
            return None
        attrs = conv.attrs
        top, left, bottom, right = (int(v) for v in attrs.padding)
        if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW") \
                or (top, left) != (bottom, right) or conv.ty.dtype != "float32":
            return None
        x = self._bound(conv.args[0], self._dequantize)
        w = self._bound(conv.args[1], self._dequantize)
        if x is None or w is None or x.args[0].ty.dtype != "uint8":
            return None
        input_scale, input_zero_point = map(_constant_array, x.args[1:])
        weight = w.args[0]
        weight_scales, weight_zero_points = map(_constant_array, w.args[1:])
        if (input_scale is None or input_scale.size != 1 or input_zero_point is None
                or not isinstance(weight, _CONSTANT) or weight.ty.dtype != "int8"
                or weight_scales is None or weight_zero_points is None
                or weight_zero_points.any() or (weight_scales.size > 1 and w.attrs.axis != 0)):
            return None
        channels = int(weight.ty.shape[0])
        if bias is None:
            bias = np.zeros(channels, "float32")
        if bias.size != channels:
            return None
        n, _, height, width = conv.ty.shape
        geometry = relax.ShapeExpr([*(int(v) for v in attrs.strides), top, left,
                                    *(int(v) for v in attrs.dilation), int(attrs.groups)])
        kernel_call = relax.op.call_pure_packed(
            QUANTIZED_CONV2D, self._nhwc(x.args[0]), weight,
            relax.const(np.broadcast_to(weight_scales, (channels,)).astype("float32")),
            relax.const(bias.reshape(channels).astype("float32")), geometry,
            relax.prim_value(tvm.tirx.FloatImm("float64", float(input_scale))),
            relax.prim_value(int(input_zero_point)),
            relax.prim_value(tvm.tirx.FloatImm("float64", float(output_scale))),
            relax.prim_value(int(output_zero_point)),
            relax.prim_value(tvm.tirx.IntImm("bool", relu is not None)),
            ty_args=relax.TensorType([n, height, width, channels], "uint8"))
        result = self.builder_.emit(kernel_call, "quantized_conv2d")
        self._nhwc_results.append(result)
        return relax.op.permute_dims(result, _NHWC_TO_NCHW)

    def _integer_max_pool(self, quantize: relax.Call) -> relax.Expr | None:
        """quantize(max_pool2d(dequantize(q))) onto q's own grid is max_pool2d(q): dequantizing
        keeps the order of values (the scale is positive), and padding with the dtype's least
        value changes no window, which always holds a value of q. Pooled in NHWC, so that the
        integer kernels on either side take it without transposes."""
        pool = self._bound(quantize.args[0], self._max_pool2d)
        if pool is None or pool.attrs.layout != "NCHW" or pool.attrs.out_layout != "NCHW":
            return None
        x = self._bound(pool.args[0], self._dequantize)
        if x is None or x.args[0].ty.dtype != quantize.attrs.out_dtype:
            return None
        grids = [list(map(_constant_array, call.args[1:])) for call in (x, quantize)]
        if any(value is None or value.size != 1 for grid in grids for value in grid) or any(
                float(a) != float(b) for a, b in zip(*grids)):
            return None
        attrs = pool.attrs
        pooled = self.builder_.emit(relax.op.nn.max_pool2d(
            self._nhwc(x.args[0]), attrs.pool_size, attrs.strides, attrs.padding, attrs.dilation,
            attrs.ceil_mode, attrs.count_include_pad, layout="NHWC"), "quantized_max_pool2d")
        self._nhwc_results.append(pooled)
        return relax.op.permute_dims(pooled, _NHWC_TO_NCHW)

    def _nhwc_add(self, quantize: relax.Call) -> relax.Expr | None:
        """quantize(relu?(dequantize(a) + dequantize(b))) (a residual connection) computed in NHWC
        where a and b are results of the integer kernels, so that neither it nor the kernels
        reading it transpose anything."""
        y = quantize.args[0]
        relu = self._bound(y, self._relu)
        add = self._bound(relu.args[0] if relu is not None else y, self._add)
        if add is None:
            return None
        operands = [self._bound(operand, self._dequantize) for operand in add.args]
        if any(operand is None for operand in operands):
            return None
        sources = [self._nhwc_result(operand.args[0]) for operand in operands]
        if any(source is None for source in sources):
            return None
        total = relax.op.add(*(relax.op.dequantize(source, *operand.args[1:], axis=-1)
                               for source, operand in zip(sources, operands)))
        if relu is not None:
            total = relax.op.nn.relu(total)
        result = self.builder_.emit(relax.op.quantize(total, *quantize.args[1:], axis=-1,
                                                      out_dtype=quantize.attrs.out_dtype))
        self._nhwc_results.append(result)
        return relax.op.permute_dims(result, _NHWC_TO_NCHW)

    def _nhwc_result(self, x: relax.Expr) -> relax.Expr | None:
        """The NHWC result of an integer kernel that x (NCHW) was transposed from, if it was."""
        transpose = self._bound(x, self._permute)
        if transpose is not None and [int(a) for a in transpose.attrs.axes] == _NHWC_TO_NCHW:
            source = transpose.args[0]
            if any(source.same_as(result) for result in self._nhwc_results):
                return source
        return None

    def _nhwc(self, x: relax.Expr) -> relax.Expr:
        """x (NCHW) in NHWC: the kernel result it was transposed from, or its transpose (one
        for all the convolutions reading x)."""
        source = self._nhwc_result(x)
        if source is not None:
            return source
        for source, transposed in self._transposed:
            if source.same_as(x):
                return transposed
        transposed = self.builder_.emit(relax.op.permute_dims(x, _NCHW_TO_NHWC))
        self._transposed.append((x, transposed))
        return transposed
