"""Quantized convolutions and linear layers on PyTorch's int8 kernels.

The frontend gives a quantized convolution in the form every quantization-aware compiler reads
(QDQ): ``quantize(act?(conv2d(dequantize(x), dequantize(w)) + bias), scale, zero_point)``,
with ``x`` uint8, ``w`` an int8 constant and ``act`` a relu or clip (relu6). The TorchScript
frontend writes quantized models so, and the export path turns PT2E's quantize and dequantize
ops into it (export.py). TVM can compute that form as it stands, in float32,
exactly on the output's grid. Where PyTorch's quantized engine runs (:func:`build.
_integer_convolutions`), :class:`IntegerKernels` replaces the pattern with one call of
``tvmbridge.aten.quantized_conv2d`` (``src/runtime/quantized_kernels.cc``): PyTorch's own quantized
convolution, uint8 x int8 products accumulated in int32 (oneDNN on AMX-INT8 tiles or VNNI,
fbgemm elsewhere), requantized inside the kernel, weights packed once. TVM's LLVM backend emits
neither AMX nor VNNI dot products, and its float32 form was 8.5x slower than PyTorch's int8
kernels (issue 24). Max pooling of a quantized tensor pools its integers. Where oneDNN's own
int8 kernels are chosen (:func:`pipeline._onednn_int8_kernels`), a residual addition runs inside
the convolution's kernel, and a second pass gives convolutions and linear layers of quantized
operands whose results are not quantized (PT2E leaves those) oneDNN's int8 kernels with
float32 results.

The convolution kernels take and give NHWC; so do the integer max pooling and the residual
additions between such kernels, which TVM computes. Other ops stay NCHW, reading the NHWC
results through transposes that TVM fuses into their kernels.
"""

import numpy as np
import tvm
from tvm import relax

from .relax_patterns import CONSTANT as _CONSTANT, bound_call

QUANTIZED_CONV2D = "tvmbridge.aten.quantized_conv2d"
QUANTIZED_CONV2D_ADD = "tvmbridge.aten.quantized_conv2d_add"
QUANTIZED_CONV2D_FLOAT = "tvmbridge.aten.quantized_conv2d_float"
QUANTIZED_LINEAR_FLOAT = "tvmbridge.aten.quantized_linear_float"
_NCHW_TO_NHWC = [0, 2, 3, 1]
_NHWC_TO_NCHW = [0, 3, 1, 2]


def _constant_array(expr: relax.Expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, _CONSTANT) else None


def _number(expr) -> float:
    """The number a FloatImm or IntImm (or a PrimValue of one) holds; NaN for anything else."""
    value = getattr(expr, "value", None)
    value = getattr(value, "value", value)  # a PrimValue's
    return float(value) if isinstance(value, (int, float)) else np.nan


def _quantized(value: float, scale: float, zero_point: int) -> int:
    """`value` quantized onto the uint8 grid (scale, zero_point), as Relax's quantize does it."""
    if np.isinf(value):
        return 0 if value < 0 else 255
    return int(np.clip(np.round(np.float32(value) / np.float32(scale)) + zero_point, 0, 255))


def _float_value(value: np.ndarray) -> relax.Expr:
    """A float64 PrimValue, as the kernels take scales."""
    return relax.prim_value(tvm.tirx.FloatImm("float64", float(value)))


def _nhwc_shape(nchw) -> list:
    n, c, h, w = nchw
    return [n, h, w, c]


def _same_shape(a, b) -> bool:
    """Whether two static shapes are the same."""
    return _static(a) and _static(b) and [int(d) for d in a] == [int(d) for d in b]


def _static(shape) -> bool:
    return all(isinstance(extent, tvm.tirx.IntImm) for extent in shape)


@relax.expr_functor.mutator
class IntegerKernels(relax.PyExprMutator):
    """Quantized 2-D convolutions (QDQ form, uint8 activations, int8 weights quantized per
    tensor or per output channel with zero points 0, static shapes; a relu or clip, as relu6
    is, between the convolution and its quantize) as calls of PyTorch's int8 convolution, and
    the max pooling and residual additions of their results on integers, in NHWC. Leaves the
    replaced float32 bindings dead, for DeadCodeElimination."""

    _quantize = tvm.ir.Op.get("relax.quantize")
    _dequantize = tvm.ir.Op.get("relax.dequantize")
    _conv2d = tvm.ir.Op.get("relax.nn.conv2d")
    _add = tvm.ir.Op.get("relax.add")
    _relu = tvm.ir.Op.get("relax.nn.relu")
    _clip = tvm.ir.Op.get("relax.clip")
    _astype = tvm.ir.Op.get("relax.astype")
    _reshape = tvm.ir.Op.get("relax.reshape")
    _permute = tvm.ir.Op.get("relax.permute_dims")
    _max_pool2d = tvm.ir.Op.get("relax.nn.max_pool2d")
    _matmul = tvm.ir.Op.get("relax.matmul")

    def __init__(self, residual_adds: bool = False, float_results: bool = False):
        super().__init__()
        # Whether a residual addition after a convolution runs in its kernel
        # (quantized_conv2d_add: oneDNN's).
        self.residual_adds = residual_adds
        # The second pass, over what the first left: convolutions of quantized operands whose
        # result is not quantized, onto oneDNN's integer kernel with a float32 result.
        self.float_results = float_results
        self._transposed = []  # (x, its NHWC transpose) for each x transposed

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op == self._quantize and not self.float_results:
            for rewrite in (self._integer_convolution, self._integer_max_pool, self._nhwc_add):
                integer = rewrite(call)
                if integer is not None:
                    return integer
        if self.float_results and call.op in (self._conv2d, self._matmul):
            rewrite = (self._float_result_convolution if call.op == self._conv2d
                       else self._float_result_linear)
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
        y, low, high = self._bounds(quantize.args[0])
        y, residual = self._residual(y)
        bias = None
        add = self._bound(y, self._add)
        if add is not None:
            y, bias = add.args
            reshape = self._bound(bias, self._reshape)
            bias = _constant_array(reshape.args[0] if reshape is not None else bias)
        conv = self._bound(y, self._conv2d)
        if conv is None or output_scale is None or output_scale.size != 1 or (
                output_zero_point is None or add is not None and bias is None) or (
                np.isnan([low, high]).any()):
            return None
        operands = self._integer_operands(conv)
        if operands is None or (residual is not None
                                and not _same_shape(residual.ty.shape, conv.ty.shape)):
            return None
        x, weight, weight_scales, geometry, input_grid = operands
        channels = int(weight.ty.shape[0])
        if bias is None:
            bias = np.zeros(channels, "float32")
        if bias.size != channels:
            return None
        # quantize is monotone, so quantize(clip(y, low, high)) clamps quantize(y) to
        # [quantize(low), quantize(high)]; the kernel's relu clamps from below at the zero
        # point, quantize(0).
        zero_point = int(output_zero_point)
        least, most = (_quantized(bound, float(output_scale), zero_point) for bound in (low, high))
        relu = least == zero_point
        weights = [weight, weight_scales, relax.const(bias.reshape(channels).astype("float32")),
                   geometry]
        output_grid = [_float_value(output_scale), relax.prim_value(zero_point),
                       relax.prim_value(tvm.tirx.IntImm("bool", relu))]
        result_ty = relax.TensorType(_nhwc_shape(conv.ty.shape), "uint8")
        if residual is None:
            kernel_call = relax.op.call_pure_packed(
                QUANTIZED_CONV2D, x, *weights, *input_grid, *output_grid, ty_args=result_ty)
        else:
            residual_scale, residual_zero_point = map(_constant_array, residual.args[1:])
            kernel_call = relax.op.call_pure_packed(
                QUANTIZED_CONV2D_ADD, x, self._nhwc(residual.args[0]), *weights, *input_grid,
                _float_value(residual_scale), relax.prim_value(int(residual_zero_point)),
                *output_grid, ty_args=result_ty)
        result = self.builder_.emit(kernel_call, "quantized_conv2d")
        if least > (zero_point if relu else 0) or most < 255:
            result = self.builder_.emit(relax.op.clip(result, least, most))
        return relax.op.permute_dims(result, _NHWC_TO_NCHW)

    def _float_result_convolution(self, conv: relax.Call) -> relax.Expr | None:
        """conv2d(dequantize(x), dequantize(w)) whose result is not quantized (no pattern
        above took it) as oneDNN's integer convolution with a float32 result."""
        operands = self._integer_operands(conv)
        if operands is None:
            return None
        x, weight, weight_scales, geometry, input_grid = operands
        result = self.builder_.emit(relax.op.call_pure_packed(
            QUANTIZED_CONV2D_FLOAT, x, weight, weight_scales, geometry, *input_grid,
            ty_args=relax.TensorType(_nhwc_shape(conv.ty.shape), "float32")),
            "quantized_conv2d_float")
        return relax.op.permute_dims(result, _NHWC_TO_NCHW)

    def _float_result_linear(self, matmul: relax.Call) -> relax.Expr | None:
        """``matmul(reshape?(dequantize(x)), permute_dims(dequantize(w)))`` (a linear layer as
        TVM's translator writes it: x uint8 [rows, K] on a constant grid, w an int8 constant
        [N, K] quantized per output with zero points 0) as oneDNN's integer linear with a
        float32 result; the bias and what follows stay TVM's."""
        rows, transposed = matmul.args
        reshape = self._bound(rows, self._reshape)
        x = self._bound(reshape.args[0] if reshape is not None else rows, self._dequantize)
        transpose = self._bound(transposed, self._permute)
        w = self._bound(transpose.args[0], self._dequantize) if transpose is not None else None
        if (x is None or w is None or x.args[0].ty.dtype != "uint8" or matmul.ty.dtype != "float32"
                or len(rows.ty.shape) != 2 or transpose.attrs.axes is None
                or [int(a) for a in transpose.attrs.axes] != [1, 0]):
            return None
        operands = self._quantized_operands(x, w)
        if operands is None or len(operands[1].ty.shape) != 2:
            return None
        input_grid, weight, scales = operands
        integers = x.args[0]
        if reshape is not None:
            integers = self.builder_.emit(relax.op.reshape(integers, rows.ty.shape))
        return relax.op.call_pure_packed(
            QUANTIZED_LINEAR_FLOAT, integers, weight, scales, *input_grid,
            ty_args=matmul.ty)

    def _integer_operands(self, conv: relax.Call) -> tuple | None:
        """For conv2d(dequantize(x), dequantize(w)) (static NCHW shapes, padding the same on
        both sides, x uint8 on a constant grid, w an int8 constant quantized per tensor or per
        output channel with zero points 0): x in NHWC, w, its scales (one per output), the
        geometry and x's grid as the kernels take them. None for any other convolution."""
        attrs = conv.attrs
        top, left, bottom, right = (int(v) for v in attrs.padding)
        if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW") \
                or (top, left) != (bottom, right) or conv.ty.dtype != "float32" or not _static(
                conv.ty.shape):
            return None
        x = self._bound(conv.args[0], self._dequantize)
        w = self._bound(conv.args[1], self._dequantize)
        if x is None or w is None or x.args[0].ty.dtype != "uint8":
            return None
        operands = self._quantized_operands(x, w)
        if operands is None:
            return None
        input_grid, weight, scales = operands
        geometry = relax.ShapeExpr([*(int(v) for v in attrs.strides), top, left,
                                    *(int(v) for v in attrs.dilation), int(attrs.groups)])
        return self._nhwc(x.args[0]), weight, scales, geometry, input_grid

    def _quantized_operands(self, x: relax.Call, w: relax.Call) -> tuple | None:
        """For the dequantizes of a uint8 input x and a weight w: x's grid (scale, zero point)
        as the kernels take it, w's int8 constant, and its scales, one per output (axis 0);
        None unless x's grid is constant and w is an int8 constant quantized per tensor or per
        output with zero points 0."""
        input_scale, input_zero_point = map(_constant_array, x.args[1:])
        weight = w.args[0]
        weight_scales, weight_zero_points = map(self._constant_array, w.args[1:])
        if (input_scale is None or input_scale.size != 1 or input_zero_point is None
                or not isinstance(weight, _CONSTANT) or weight.ty.dtype != "int8"
                or weight_scales is None or weight_zero_points is None
                or weight_zero_points.any() or (weight_scales.size > 1 and w.attrs.axis != 0)):
            return None
        outputs = int(weight.ty.shape[0])
        scales = relax.const(np.broadcast_to(weight_scales, (outputs,)).astype("float32"))
        input_grid = [_float_value(input_scale), relax.prim_value(int(input_zero_point))]
        return input_grid, weight, scales

    def _residual(self, y: relax.Expr) -> tuple[relax.Expr, relax.Call | None]:
        """For ``y = z + dequantize(r)`` with r uint8 on a constant grid and z a convolution or
        a convolution plus bias, where residual additions run in the kernel: z and the
        dequantize of r (a residual connection, as PT2E's X86InductorQuantizer leaves it).
        Otherwise y and None."""
        add = self._bound(y, self._add) if self.residual_adds else None
        if add is None:
            return y, None
        for index in (0, 1):
            z, residual = add.args[index], self._bound(add.args[1 - index], self._dequantize)
            if residual is None or residual.args[0].ty.dtype != "uint8" or (
                    self._bound(z, self._add) is None and self._bound(z, self._conv2d) is None):
                continue
            grid = [_constant_array(value) for value in residual.args[1:]]
            if all(value is not None and value.size == 1 for value in grid):
                return z, residual
        return y, None

    def _constant_array(self, expr: relax.Expr) -> np.ndarray | None:
        """The value of a constant, or of a cast of one (the export path casts a weight's
        scales and zero points, bound to constants only after its translator ran)."""
        cast = self._bound(expr, self._astype)
        if cast is None:
            return _constant_array(expr)
        value = _constant_array(cast.args[0])
        return None if value is None else value.astype(cast.attrs.dtype)

    def _bounds(self, y: relax.Expr) -> tuple[relax.Expr, float, float]:
        """The input of the relu or clip `y` is, and the bounds it puts on values (-inf and
        inf where there are none; NaN where they are not constants)."""
        relu = self._bound(y, self._relu)
        if relu is not None:
            return relu.args[0], 0.0, np.inf
        clip = self._bound(y, self._clip)
        if clip is None:
            return y, -np.inf, np.inf
        return clip.args[0], *(_number(bound) for bound in clip.args[1:])

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
        return relax.op.permute_dims(result, _NHWC_TO_NCHW)

    def _nhwc_result(self, x: relax.Expr) -> relax.Expr | None:
        """The NHWC tensor x (NCHW) was transposed from, if it was (an integer kernel's result,
        also one an earlier pass rewrote)."""
        transpose = self._bound(x, self._permute)
        if transpose is not None and transpose.attrs.axes is not None and [
                int(a) for a in transpose.attrs.axes] == _NHWC_TO_NCHW:
            return transpose.args[0]
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
