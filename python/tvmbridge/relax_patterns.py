"""What the build's rewrites (pipeline.py, quantized.py, attention.py, inplace.py) and the
export path use to read Relax patterns, and what custom legalisations (vector_math.py,
extrema.py, reshapes.py) fall back on."""

from typing import Callable

import tvm
import tvm_ffi
from tvm import relax

CONSTANT = type(relax.const(0.0))  # Relax constants' class (tvm.ir.expr.GenericConst)


def bound_value(mutator: relax.PyExprMutator, expr: relax.Expr) -> relax.Expr | None:
    """What `expr` stands for in the function `mutator` is rewriting: the value a variable is
    bound to, and through an element taken from a tuple built in place (as TVM's translator
    gives max_pool2d_with_indices: ``(pool, zeros)[0]``), that element's; None for a variable
    bound to nothing (a parameter)."""
    if isinstance(expr, relax.Var):
        expr = mutator.lookup_binding(expr)
    if isinstance(expr, relax.TupleGetItem):
        elements = bound_value(mutator, expr.tuple_value)
        if isinstance(elements, relax.Tuple):
            return bound_value(mutator, elements.fields[expr.index])
    return expr


def bound_call(mutator: relax.PyExprMutator, expr: relax.Expr,
               op: tvm.ir.Op) -> relax.Call | None:
    """The call of `op` that `expr` is, or that the variable `expr` is bound to (see
    :func:`bound_value`); None otherwise."""
    expr = bound_value(mutator, expr)
    return expr if isinstance(expr, relax.Call) and expr.op == op else None


def use_counts(func: relax.Function) -> dict:
    """How often each variable is read in `func` (its definition not counted), by variable."""
    uses = {}

    def count(expr):
        if isinstance(expr, relax.Var):
            uses[expr] = uses.get(expr, 0) + 1

    relax.analysis.post_order_visit(func, count)
    return uses


def same_tensor_type(a, b) -> bool:
    """Whether `a` and `b` are tensor types of one dtype and one shape."""
    return (isinstance(a, relax.TensorType) and isinstance(b, relax.TensorType)
            and a.dtype == b.dtype and tvm_ffi.structural_equal(a.shape, b.shape))


def outer_calls(func: relax.Function) -> dict:
    """The calls bound in `func`'s outer blocks (not inside branches), by variable."""
    return {binding.var: binding.value for block in func.body.blocks
            for binding in block.bindings
            if isinstance(binding, relax.VarBinding) and isinstance(binding.value, relax.Call)}


def has_call(mod: tvm.IRModule, matches: Callable[[relax.Call], bool]) -> bool:
    """Whether a Relax function of `mod` has a call for which `matches` is true."""
    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and not found and matches(expr):
            found.append(expr)

    for function in mod.functions.values():
        if isinstance(function, relax.Function):
            relax.analysis.post_order_visit(function, visit)
    return bool(found)


def default_legalization(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """TVM's own legalisation of `call`, for a custom one to fall back on where it does not
    apply."""
    return call.op.get_attr("FLegalize")(bb, call)
