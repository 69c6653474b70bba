"""What the build's rewrites (build.py, quantized.py, attention.py) use to read Relax patterns."""

import tvm
from tvm import relax

CONSTANT = type(relax.const(0.0))  # Relax constants' class (tvm.ir.expr.GenericConst)


def bound_call(mutator: relax.PyExprMutator, expr: relax.Expr,
               op: tvm.ir.Op) -> relax.Call | None:
    """The call of `op` that `expr` is, or that the variable `expr` is bound to in the function
    `mutator` is rewriting; None otherwise."""
    if isinstance(expr, relax.Var):
        expr = mutator.lookup_binding(expr)
    return expr if isinstance(expr, relax.Call) and expr.op == op else None
