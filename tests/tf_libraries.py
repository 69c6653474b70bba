"""TVM libraries for the TVMDSOOp tests and benchmark, built with TE, TIR and Relax."""

from __future__ import annotations

from pathlib import Path

import tvm
from tvm import relax, te
from tvm.script import tirx as T


def _export(functions: dict, path: Path) -> Path:
    module = tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in functions.items()})
    tvm.compile(module, target="llvm").export_library(str(path))
    return path


def _vectors(count: int, n):
    return [te.placeholder((n,), name=f"x{k}", dtype="float32") for k in range(count)]


def build_te_library(path: Path) -> Path:
    """addone(x), vector_add(a, b), add12(x0..x11), sum_and_difference(a, b) -> (s, d): all
    over float32 vectors of any length n (destination passing: outputs are arguments)."""
    n = te.var("n")
    (x,) = _vectors(1, n)
    addone = te.compute((n,), lambda i: x[i] + 1.0, name="y")
    a, b = _vectors(2, n)
    total = te.compute((n,), lambda i: a[i] + b[i], name="total")
    twelve = _vectors(12, n)
    sum12 = te.compute((n,), lambda i: sum(v[i] for v in twelve), name="sum12")
    c, d = _vectors(2, n)
    both_sum = te.compute((n,), lambda i: c[i] + d[i], name="s")
    both_difference = te.compute((n,), lambda i: c[i] - d[i], name="d")
    return _export({
        "addone": te.create_prim_func([x, addone]),
        "vector_add": te.create_prim_func([a, b, total]),
        "add12": te.create_prim_func([*twelve, sum12]),
        "sum_and_difference": te.create_prim_func([c, d, both_sum, both_difference]),
    }, path)


@T.prim_func
def _bump_in_place(a: T.Buffer((4,), "float32"), b: T.Buffer((4,), "float32")):
    # Writes its input: TensorFlow sees the change only if TVM got TensorFlow's own buffer.
    for i in range(4):
        a[i] = a[i] + T.float32(1)
        b[i] = a[i]


def build_in_place_library(path: Path) -> Path:
    return _export({"bump_in_place": _bump_in_place}, path)


def build_relax_library(path: Path) -> Path:
    """A Relax VM library: main(x) -> x * 2 and pair(x) -> (x + 1, x * x), any length n."""
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((tvm.tirx.Var("n", "int64"),), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            doubled = builder.emit_output(relax.op.multiply(x, relax.const(2.0, "float32")))
        builder.emit_func_output(doubled)
    y = relax.Var("y", relax.TensorType((tvm.tirx.Var("m", "int64"),), "float32"))
    with builder.function("pair", [y]):
        with builder.dataflow():
            plus_one = builder.emit(relax.op.add(y, relax.const(1.0, "float32")))
            squared = builder.emit(relax.op.multiply(y, y))
            pair = builder.emit_output(relax.Tuple([plus_one, squared]))
        builder.emit_func_output(pair)
    tvm.compile(builder.get(), target="llvm").export_library(str(path))
    return path
