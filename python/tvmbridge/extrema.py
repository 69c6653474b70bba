"""Max pooling and max/min reductions that keep NaN and the infinities, as PyTorch's do.

TOPI starts a max from the lowest finite float and keeps ``a > b ? a : b``: a window holding a
NaN gave a number, and one holding only -inf gave -3.4e38. The reducer here starts from -inf
(+inf for a min) and lets a NaN win every comparison, so the result is PyTorch's in one pass
over the input. :data:`LEGALIZATIONS` puts it into ``LegalizeOps`` for floating-point max
pooling (1-D to 3-D, any layout, packed NCHW16c included) and max/min reductions. Integer max
pooling (quantized models) takes the same one kernel, padding with the dtype's least value:
TOPI's materialises the padded input first. Integer reductions keep TVM's lowering, exact for
them.

It replaced a rewrite that pooled a NaN/infinity mask beside the data and corrected the result
with a log: three kernels where one does (2-core AMX Xeon, ResNet-18's max pool, float32:
see docs/architecture.md for the measured effect).
"""

from __future__ import annotations

from tvm import te, tirx

from .relax_patterns import default_legalization

_FLOATS = ("float16", "bfloat16", "float32", "float64")
# Integers pool in the same one kernel (quantized models' max pooling, quantized.py).
_POOLED = _FLOATS + ("uint8", "int8", "int16", "int32", "int64")


def _least(dtype: str) -> tirx.PrimExpr:
    """What every value beats: -inf, or an integer dtype's least value."""
    return tirx.const(float("-inf"), dtype) if dtype in _FLOATS else tirx.min_value(dtype)


def _reducer(is_max: bool, dtype: str) -> te.CommReducer:
    """max (or min) of `dtype` values that a NaN wins, starting from the infinity every other
    value beats."""

    def combine(accumulated, value):
        beats = value > accumulated if is_max else value < accumulated
        if dtype not in _FLOATS:
            return tirx.Select(beats, value, accumulated)
        # TVM 0.27's isnan skips bfloat16: through float32, exactly.
        is_nan = tirx.isnan(value.astype("float32") if dtype == "bfloat16" else value)
        return tirx.Select(tirx.Or(beats, is_nan), value, accumulated)

    def identity(dtype):
        if dtype not in _FLOATS:
            return tirx.min_value(dtype) if is_max else tirx.max_value(dtype)
        return tirx.const(float("-inf") if is_max else float("inf"), dtype)

    return te.comm_reducer(combine, identity, name="nan_max" if is_max else "nan_min")


def max_pool(data: te.Tensor, out_shape, layout: str, pool_size, strides, dilation,
             padding) -> te.Tensor:
    """Max pooling over the layout's D/H/W axes (``NCHW``, ``NHWC``, ``NCHW16c``...).

    `out_shape` is Relax's (it already applies ceil mode); window positions outside the input
    (padding, and the ragged last window of ceil mode) count as -inf (an integer dtype's least
    value)."""
    spatial = [layout.index(axis) for axis in "DHW" if axis in layout]
    taps = [te.reduce_axis((0, int(size)), name=f"k{i}") for i, size in enumerate(pool_size)]
    before = [int(p) for p in padding[:len(spatial)]]

    def window(*index):
        position = list(index)
        inside = []
        for i, axis in enumerate(spatial):
            at = index[axis] * int(strides[i]) + taps[i] * int(dilation[i]) - before[i]
            position[axis] = at
            inside += [at >= 0, at < data.shape[axis]]
        value = tirx.if_then_else(tirx.all(*inside), data[tuple(position)], _least(data.dtype))
        return _reducer(True, data.dtype)(value, axis=taps)

    return te.compute(out_shape, window, name="max_pool")


def extreme(data: te.Tensor, axis, keepdims: bool, is_max: bool) -> te.Tensor:
    """max or min over `axis` (None: all axes)."""
    ndim = len(data.shape)
    axes = range(ndim) if axis is None else sorted(int(a) % ndim for a in axis)
    reduce_axes = {a: te.reduce_axis((0, data.shape[a]), name=f"r{a}") for a in axes}
    kept = [a for a in range(ndim) if a not in reduce_axes]
    out_shape = [1 if a in reduce_axes else data.shape[a] for a in range(ndim)] if keepdims \
        else [data.shape[a] for a in kept]

    def reduced(*index):
        if keepdims:
            source = [reduce_axes[a] if a in reduce_axes else index[a] for a in range(ndim)]
        else:
            out_of = dict(zip(kept, index))
            source = [reduce_axes[a] if a in reduce_axes else out_of[a] for a in range(ndim)]
        return _reducer(is_max, data.dtype)(data[tuple(source)], axis=list(reduce_axes.values()))

    return te.compute(out_shape, reduced, name="max" if is_max else "min")


def _legalize_max_pool(op_name: str):
    def legalize(bb, call):
        attrs = call.attrs
        if call.ty.dtype not in _POOLED or attrs.layout != attrs.out_layout:
            return default_legalization(bb, call)
        return bb.call_te(max_pool, call.args[0], list(call.ty.shape.values), attrs.layout,
                          attrs.pool_size, attrs.strides, attrs.dilation, attrs.padding,
                          primfunc_name_hint=op_name.rsplit(".", 1)[-1])

    return legalize


def _legalize_extreme(is_max: bool):
    def legalize(bb, call):
        if call.ty.dtype not in _FLOATS:
            return default_legalization(bb, call)
        return bb.call_te(extreme, call.args[0], call.attrs.axis, bool(call.attrs.keepdims),
                          is_max, primfunc_name_hint="max" if is_max else "min")

    return legalize


LEGALIZATIONS = {
    **{f"relax.nn.max_pool{d}d": _legalize_max_pool(f"relax.nn.max_pool{d}d") for d in (1, 2, 3)},
    "relax.max": _legalize_extreme(is_max=True),
    "relax.min": _legalize_extreme(is_max=False),
}

__all__ = ["max_pool", "extreme", "LEGALIZATIONS"]
