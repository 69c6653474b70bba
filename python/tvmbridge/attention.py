"""Attention on PyTorch's fused kernel.

The frontend writes ``scaled_dot_product_attention`` out as Relax ops, so that TVM users get
plain Relax: ``softmax(q @ k^T * scale [+ mask]) @ v``. TVM runs that as a product, a scale
(and mask) kernel, a softmax and a second product, with the [batch, heads, queries, keys]
scores in memory between them. :class:`FusedAttention` hands the whole pattern to PyTorch's
``scaled_dot_product_attention`` (``tvmbridge.aten.attention``, ``src/runtime/
aten_kernels.cc``), whose CPU kernel tiles it (flash attention) without writing the scores
out, and whose results are PyTorch's own.
"""

import math

import tvm
from tvm import relax

from .relax_patterns import CONSTANT as _CONSTANT, bound_call

ATTENTION = "tvmbridge.aten.attention"
ATTENTION_MASKED = "tvmbridge.aten.attention_masked"
_DTYPES = ("float32", "bfloat16")


@relax.expr_functor.mutator
class FusedAttention(relax.PyExprMutator):
    """``matmul(softmax(matmul(q, permute_dims(k)) * scale [+ mask], -1), v)`` (q, k, v of rank 4
    and one dtype; an additive mask of that dtype; a constant scale) as one call of PyTorch's
    attention, in bfloat16 when `bf16` (the products are computed in it anyway). So is the
    frontend's spelling of PyTorch's attention: the softmax guarded by
    ``where(min(astype(scores == -inf)) == 1, 0, ...)`` (a query that sees no key gets zeros, as
    PyTorch's kernel gives them), where a boolean mask may pick the scores,
    ``where(mask, scores, -inf)``.
    Leaves the replaced bindings dead, for DeadCodeElimination."""

    _matmul = tvm.ir.Op.get("relax.matmul")
    _softmax = tvm.ir.Op.get("relax.nn.softmax")
    _multiply = tvm.ir.Op.get("relax.multiply")
    _add = tvm.ir.Op.get("relax.add")
    _permute = tvm.ir.Op.get("relax.permute_dims")
    _where = tvm.ir.Op.get("relax.where")
    _equal = tvm.ir.Op.get("relax.equal")
    _min = tvm.ir.Op.get("relax.min")
    _astype = tvm.ir.Op.get("relax.astype")

    def __init__(self, bf16: bool):
        super().__init__()
        self.bf16 = bf16

    def _bound(self, expr: relax.Expr, op: tvm.ir.Op) -> relax.Call | None:
        return bound_call(self, expr, op)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op != self._matmul:
            return call
        fused = self._attention(call)
        return call if fused is None else fused

    def _softmax_of(self, weights: relax.Expr) -> tuple[relax.Call | None, bool]:
        """The softmax `weights` is, directly or behind the guard that gives a query seeing no
        key zeros; and whether it was guarded."""
        guard = self._bound(weights, self._where)
        if guard is None:
            return self._bound(weights, self._softmax), False
        sees_no_key, zero, softmax = guard.args
        softmax = self._bound(softmax, self._softmax)
        all_blocked = self._bound(sees_no_key, self._equal)
        if softmax is None or all_blocked is None or not _is_scalar(zero, 0.0) or \
                not _is_scalar(all_blocked.args[1], 1.0):
            return None, False
        least = self._bound(all_blocked.args[0], self._min)
        blocked = self._bound(least.args[0], self._astype) if least is not None else None
        is_blocked = self._bound(blocked.args[0], self._equal) if blocked is not None else None
        if is_blocked is None or not is_blocked.args[0].same_as(softmax.args[0]) or \
                not _is_scalar(is_blocked.args[1], -math.inf):
            return None, False
        return softmax, True

    def _attention(self, call: relax.Call) -> relax.Expr | None:
        weights, value = call.args
        softmax, guarded = self._softmax_of(weights)
        if softmax is None or int(softmax.attrs.axis) not in (-1, 3):
            return None
        scores, mask = softmax.args[0], None
        add = self._bound(scores, self._add)
        picked = self._bound(scores, self._where) if guarded else None
        if add is not None:
            scores, mask = add.args
        elif picked is not None and picked.args[0].ty.dtype == "bool" and \
                _is_scalar(picked.args[2], -math.inf):
            mask, scores = picked.args[:2]
        scaled = self._bound(scores, self._multiply)
        if scaled is None or not isinstance(scaled.args[1], _CONSTANT):
            return None
        scale = scaled.args[1].value.numpy()
        product = self._bound(scaled.args[0], self._matmul)
        if scale.size != 1 or product is None:
            return None
        query, key_t = product.args
        transpose = self._bound(key_t, self._permute)
        if transpose is None or transpose.attrs.axes is None or \
                [int(a) for a in transpose.attrs.axes] != [0, 1, 3, 2]:
            return None
        key = transpose.args[0]
        tensors = [query, key, value] + ([mask] if mask is not None else [])
        dtype = call.ty.dtype
        if dtype not in _DTYPES or any(
                len(t.ty.shape) != 4 or t.ty.dtype != dtype for t in tensors[:3]) or (
                mask is not None and mask.ty.dtype not in (dtype, "bool")):
            return None
        function = ATTENTION if mask is None else ATTENTION_MASKED
        scale_value = relax.prim_value(tvm.tirx.FloatImm("float64", float(scale)))
        if self.bf16 and dtype == "float32":
            cast = [t if t.ty.dtype == "bool" else relax.op.astype(t, "bfloat16")
                    for t in tensors]
            result = relax.op.call_pure_packed(
                function, *cast, scale_value,
                ty_args=relax.TensorType(call.ty.shape, "bfloat16"))
            return relax.op.astype(result, dtype)
        return relax.op.call_pure_packed(function, *tensors, scale_value, ty_args=call.ty)


def _is_scalar(expr: relax.Expr, value: float) -> bool:
    """Whether `expr` is a constant holding the one number `value`."""
    if not isinstance(expr, _CONSTANT):
        return False
    number = expr.value.numpy()
    return number.size == 1 and float(number.reshape(())) == value
