"""exp, erf, tanh, small integer powers and the ops built on them, for float32, as arithmetic
that LLVM vectorises.

TVM's LLVM backend lowers ``exp``, ``erf``, ``tanh`` and ``power`` to calls of the C
library's ``expf``/``erff``/``tanhf``/``powf``, one element at a time: GELU and softmax took a
quarter of BERT-base's time (28 and 16 ms of 194 on a 2-core Xeon), and GPT-2's tanh GELU
(``0.5 x (1 + tanh(c (x + 0.044715 x^3)))``) 1.09 ms per layer against PyTorch's 0.14 at 32
tokens, where PyTorch uses vectorised kernels. TVM's own ``fast_exp`` is off by
up to 4e-6 (relative) and turns NaN into numbers in ``fast_erf``. The functions here are
within a few units in the last place of PyTorch's results, keep NaN and the infinities, and
vectorise; :data:`LEGALIZATIONS` puts them into ``LegalizeOps`` for the float32 ops that use
them. Other dtypes keep TVM's lowering.
"""

from __future__ import annotations

import math

from tvm import te, tirx

from .relax_patterns import CONSTANT, default_legalization

_F32 = "float32"


def _f(value: float) -> tirx.PrimExpr:
    return tirx.const(value, _F32)


def _horner(x: tirx.PrimExpr, coefficients: list[float]) -> tirx.PrimExpr:
    """c0 + c1 x + c2 x^2 + ..."""
    result = _f(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * x + _f(c)
    return result


def _power_of_two(k: tirx.PrimExpr) -> tirx.PrimExpr:
    """2**k for an int32 k in [-126, 127], built from its exponent bits."""
    return tirx.reinterpret(_F32, tirx.shift_left(k + 127, tirx.const(23, "int32")))


# Taylor coefficients of e^r up to r^7: |r| <= ln2/2 makes the next term < 1 ulp.
_EXP_TAYLOR = [1.0 / math.factorial(n) for n in range(8)]
# ln 2 split so that n * _LN2_HIGH is exact in float32 for |n| < 2**15 (Cody and Waite).
_LN2_HIGH = 0.693359375
_LN2_LOW = math.log(2.0) - _LN2_HIGH


def exp(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """e^x: x = n ln2 + r, e^r by its Taylor polynomial, 2^n from exponent bits (in two
    factors, so results that underflow into subnormals come out as the C library's)."""
    # Beyond these, float32's e^x is inf (x > 88.73) or 0 (x < -103.98).
    clamped = tirx.max(tirx.min(x, _f(88.8)), _f(-104.0))
    n = tirx.floor(clamped * _f(1.0 / math.log(2.0)) + _f(0.5))
    r = clamped - n * _f(_LN2_HIGH) - n * _f(_LN2_LOW)
    k = n.astype("int32")
    half = tirx.shift_right(k, tirx.const(1, "int32"))
    # Repeated subexpressions (r in each term) are left to LLVM's CSE: Let-bound variables
    # would be defined twice wherever TVM inlines the expression twice.
    result = _horner(r, _EXP_TAYLOR) * _power_of_two(half) * _power_of_two(k - half)
    return tirx.Select(tirx.isnan(x), x, result)  # min/max above lose NaN


# erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)): for |x| < 1 eleven terms leave an
# error below 2e-8.
_ERF_TAYLOR = [2.0 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1))
               for n in range(11)]
# Abramowitz and Stegun 7.1.26, for |x| >= 1: erf(x) = 1 - t P(t) e^(-x^2), t = 1/(1 + p x),
# absolute error below 1.5e-7.
_ERF_TAIL_P = 0.3275911
_ERF_TAIL = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429]


def erf(x: tirx.PrimExpr) -> tirx.PrimExpr:
    magnitude = tirx.abs(x)
    near_zero = x * _horner(x * x, _ERF_TAYLOR)
    t = _f(1.0) / (_f(1.0) + _f(_ERF_TAIL_P) * magnitude)
    tail = _f(1.0) - t * _horner(t, _ERF_TAIL) * exp(-(magnitude * magnitude))
    signed_tail = tirx.Select(x < _f(0.0), -tail, tail)
    result = tirx.Select(magnitude < _f(1.0), near_zero, signed_tail)
    return tirx.Select(tirx.isnan(x), x, result)


# tanh's Taylor coefficients (x, x^3, ..., x^17): for |x| < 0.5 the next term is below 1e-9.
_TANH_TAYLOR = [1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925,
                21844.0 / 6081075, -929569.0 / 638512875, 6404582.0 / 10854718875]


def tanh(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """tanh x: its Taylor polynomial near 0, where 1 - 2 / (e^2|x| + 1) would cancel; that
    beyond, with the sign of x (e^2|x| overflows to inf for large |x|, giving +-1)."""
    # Each use of x repeats the expression it stands for wherever TVM inlines it (Let would
    # bind a variable twice there), so x is used sparingly: the sign multiplies the tail once,
    # and NaN needs no test (it reaches the tail, whose exp keeps it).
    magnitude = tirx.abs(x)
    near_zero = x * _horner(x * x, _TANH_TAYLOR)
    tail = _f(1.0) - _f(2.0) / (exp(_f(2.0) * magnitude) + _f(1.0))
    sign = tirx.Select(x < _f(0.0), _f(-1.0), _f(1.0))
    return tirx.Select(magnitude < _f(0.5), near_zero, tail * sign)


def sigmoid(x: tirx.PrimExpr) -> tirx.PrimExpr:
    return _f(1.0) / (_f(1.0) + exp(-x))


def gelu(x: tirx.PrimExpr) -> tirx.PrimExpr:
    result = _f(0.5) * x * (_f(1.0) + erf(x * _f(1.0 / math.sqrt(2.0))))
    # PyTorch's float32 GELU gives NaN for +inf (and -inf, as here: -inf * 0).
    return tirx.Select(x == _f(math.inf), _f(math.nan), result)


def _elementwise(scalar_function, name: str):
    def compute(data: te.Tensor) -> te.Tensor:
        return te.compute(data.shape, lambda *i: scalar_function(data(*i)), name=name)

    return compute


def _softmax(data: te.Tensor, axis: int, log: bool) -> te.Tensor:
    """softmax (or log_softmax) along `axis`: e^(x - max) / sum e^(x - max)."""
    axis = axis % len(data.shape)
    rows = [extent for d, extent in enumerate(data.shape) if d != axis]

    def element(row, k):  # data at row `row` (indices without `axis`), position k on it
        return data(*row[:axis], k, *row[axis:])

    k = te.reduce_axis((0, data.shape[axis]), name="k")
    largest = te.compute(rows, lambda *row: te.max(element(row, k), axis=k), name="row_max")

    shifted = te.compute(data.shape, lambda *i: data(*i) - largest(*i[:axis], *i[axis + 1:]),
                         name="shifted")
    exps = te.compute(data.shape, lambda *i: exp(shifted(*i)), name="softmax_exp")
    j = te.reduce_axis((0, data.shape[axis]), name="j")
    total = te.compute(rows, lambda *row: te.sum(exps(*row[:axis], j, *row[axis:]), axis=j),
                       name="row_sum")

    def normalised(*i):
        row = (*i[:axis], *i[axis + 1:])
        if log:
            return shifted(*i) - tirx.log(total(*row))
        return exps(*i) / total(*row)

    return te.compute(data.shape, normalised, name="log_softmax" if log else "softmax")


def _legalize_elementwise(scalar_function, name: str):
    compute = _elementwise(scalar_function, name)

    def legalize(bb, call):
        if call.ty.dtype != _F32:
            return default_legalization(bb, call)
        return bb.call_te(compute, call.args[0], primfunc_name_hint=name)

    return legalize


def _legalize_softmax(log: bool):
    name = "log_softmax" if log else "softmax"

    def legalize(bb, call):
        axis = int(call.attrs.axis)
        extent = call.ty.shape[axis]
        # Rows of one element: TVM's lowering (our default schedule mis-inlines ours there).
        if call.ty.dtype != _F32 or (isinstance(extent, tirx.IntImm) and int(extent) == 1):
            return default_legalization(bb, call)
        return bb.call_te(_softmax, call.args[0], axis, log,
                          primfunc_name_hint=name)

    return legalize


def _legalize_power(bb, call):
    """x ** 2 and x ** 3 for a constant exponent as products (within an ulp of PyTorch's; C's
    powf is a scalar call per element); other powers TVM's lowering."""
    base, exponent = call.args
    value = exponent.value.numpy() if isinstance(exponent, CONSTANT) else None
    if (call.ty.dtype == _F32 and base.ty.dtype == _F32 and value is not None and value.ndim == 0
            and float(value) in (2.0, 3.0)):
        times = int(value)

        def power(data: te.Tensor) -> te.Tensor:
            def element(*i):
                value = data(*i)
                return value * value if times == 2 else value * value * value

            return te.compute(data.shape, element, name="power")

        return bb.call_te(power, base, primfunc_name_hint="power")
    return default_legalization(bb, call)


def _silu(x: tirx.PrimExpr) -> tirx.PrimExpr:
    return x * sigmoid(x)


# Relax op -> legalisation, for tvm.relax.transform.LegalizeOps's customize_legalize_map.
LEGALIZATIONS = {
    "relax.exp": _legalize_elementwise(exp, "exp"),
    "relax.erf": _legalize_elementwise(erf, "erf"),
    "relax.sigmoid": _legalize_elementwise(sigmoid, "sigmoid"),
    "relax.nn.silu": _legalize_elementwise(_silu, "silu"),
    "relax.nn.gelu": _legalize_elementwise(gelu, "gelu"),
    "relax.tanh": _legalize_elementwise(tanh, "tanh"),
    "relax.power": _legalize_power,
    "relax.nn.softmax": _legalize_softmax(log=False),
    "relax.nn.log_softmax": _legalize_softmax(log=True),
}

__all__ = ["exp", "erf", "tanh", "sigmoid", "gelu", "LEGALIZATIONS"]
