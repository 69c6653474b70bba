"""Attention on PyTorch's fused kernel.

The frontend writes ``scaled_dot_product_attention`` out as Relax ops, so that TVM users get
plain Relax: ``softmax(q @ k^T * scale [+ mask]) @ v``. TVM runs that as a product, a scale
(and mask) kernel, a softmax and a second product, with the [batch, heads, queries, keys]
scores in memory between them. :class:`FusedAttention` hands the whole pattern to PyTorch's
``scaled_dot_product_attention`` (``tvmbridge.aten.attention``, ``src/runtime/
aten_kernels.cc``), whose CPU kernel tiles it (flash attention) without writing the scores
out, and whose results are PyTorch's own.
"""

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
    attention, in bfloat16 when `bf16` (the products are computed in it anyway). Leaves the
    replaced bindings dead, for DeadCodeElimination."""

    _matmul = tvm.ir.Op.get("relax.matmul")
    _softmax = tvm.ir.Op.get("relax.nn.softmax")
    _multiply = tvm.ir.Op.get("relax.multiply")
    _add = tvm.ir.Op.get("relax.add")
    _permute = tvm.ir.Op.get("relax.permute_dims")

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

    def _attention(self, call: relax.Call) -> relax.Expr | None:
        weights, value = call.args
        softmax = self._bound(weights, self._softmax)
        if softmax is None or int(softmax.attrs.axis) not in (-1, 3):
            return None
        scores, mask = softmax.args[0], None
        add = self._bound(scores, self._add)
        if add is not None:
            scores, mask = add.args
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
                mask is not None and mask.ty.dtype != dtype):
            return None
        function = ATTENTION if mask is None else ATTENTION_MASKED
        scale_value = relax.prim_value(tvm.tirx.FloatImm("float64", float(scale)))
        if self.bf16 and dtype == "float32":
            cast = [relax.op.astype(t, "bfloat16") for t in tensors]
            result = relax.op.call_pure_packed(
                function, *cast, scale_value,
                ty_args=relax.TensorType(call.ty.shape, "bfloat16"))
            return relax.op.astype(result, dtype)
        return relax.op.call_pure_packed(function, *tensors, scale_value, ty_args=call.ty)
