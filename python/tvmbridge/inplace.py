"""Elementwise kernels that write their result over an input nothing reads afterwards.

After fusion, the pass TVM makes over a convolution's result (a ReLU6 that keeps NaN, a cast,
a bias of its own) reads one buffer and writes another of the same shape. Written over its
input instead, it touches half the memory: the result's lines are in cache already, where a
fresh buffer's are first read from memory to be written (and twice the buffers compete for
the cache). A MobileNet-V2 ReLU6 pass over 112x112x96 float32 values, on the 2-core AMX Xeon:
221 -> 140 us at batch 1, 1520 -> 845 us at batch 8 (bfloat16: 99 -> 101 and 764 -> 625 us).

A call is rewritten where that is safe whatever the kernel's schedule: the input is a
variable used by this call only, not returned, and made by a call that allocates its own
buffer (so no other tensor shares its memory); it has the result's shape and dtype; and every
block of the kernel reads and writes that input, the result and its intermediates only at its
own iteration point (so no element is read after another iteration wrote over it). TVM's
``call_tir_inplace`` and its memory planner do the rest.
"""

from __future__ import annotations

import tvm
from tvm import relax, s_tir
from tvm.s_tir.schedule import ScheduleError

from .relax_patterns import outer_calls, same_tensor_type, use_counts

_CALL_TIR = tvm.ir.Op.get("relax.call_tir")
# Calls whose result is a buffer of its own: the VM allocates it (destination-passing), or, in
# place, the buffer of an input that was one.
_OWN_BUFFER = (_CALL_TIR, tvm.ir.Op.get("relax.call_dps_packed"),
               tvm.ir.Op.get("relax.call_tir_inplace"))


def in_place_elementwise() -> tvm.transform.Pass:
    """The module pass: each Relax function's elementwise calls rewritten as above."""

    @tvm.transform.module_pass(opt_level=0, name="tvmbridge.InPlaceElementwise")
    def rewrite(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        builder = relax.BlockBuilder(mod)
        in_place = {}  # (kernel, input index) -> the kernel writing over that input
        for global_var, func in list(mod.functions.items()):
            if not isinstance(func, relax.Function):
                continue
            rewritten = {}
            for var, call, index in _candidates(mod, func):
                kernel_var = call.args[0]
                key = (kernel_var.name_hint, index)
                if key not in in_place:
                    kernel = mod[kernel_var]
                    # The result's buffer replaced by the input's, the parameter dropped.
                    in_place[key] = builder.add_func(
                        kernel.specialize({kernel.params[-1]: kernel.params[index]}),
                        f"{kernel_var.name_hint}_inplace")
                rewritten[var] = relax.call_tir_inplace(in_place[key], call.args[1], [index],
                                                        call.ty)
            if rewritten:
                builder.update_func(global_var, _Rebinder(rewritten).visit_expr(func))
        return builder.get()

    return rewrite


def _candidates(mod: tvm.IRModule, func: relax.Function):
    """(variable, call, input index) for each call of `func`'s outer blocks that may write
    over that input."""
    uses, values = use_counts(func), outer_calls(func)
    for var, call in values.items():
        if (call.op != _CALL_TIR or len(call.args) != 2  # no symbolic extents passed
                or not isinstance(call.ty, relax.TensorType)):
            continue
        kernel = mod[call.args[0]]
        for index, arg in enumerate(call.args[1].fields):
            producer = values.get(arg) if isinstance(arg, relax.Var) else None
            # Used once: by this call (returning it, too, would be a second use).
            if (producer is None or producer.op not in _OWN_BUFFER or uses.get(arg) != 1
                    or not same_tensor_type(arg.ty, call.ty)):
                continue
            if _touches_only_its_own_point(kernel, kernel.params[index], kernel.params[-1]):
                yield var, call, index
                break


def _touches_only_its_own_point(kernel: tvm.tirx.PrimFunc, source, result) -> bool:
    """Whether every block of `kernel` (spatial iterators only) reads `source` and reads and
    writes `result` and the buffers it allocates only at the element its iterators name, in
    order; other parameters it may read anywhere."""
    others = {param for param in kernel.params if not param.same_as(source)
              and not param.same_as(result)}
    try:
        schedule = s_tir.Schedule(kernel)
        blocks = schedule.get_child_blocks(schedule.get_sblock("root"))
    except ScheduleError:  # no root block: not a kernel of blocks (nothing to check by)
        return False
    for block_ref in blocks:
        block = schedule.get(block_ref)
        if schedule.get_child_blocks(block_ref) or any(
                iv.iter_type != tvm.tirx.IterVar.DataPar for iv in block.iter_vars):
            return False  # blocks inside it (not checked here), or a reduction
        point = [iv.var for iv in block.iter_vars]
        for access in (*block.reads, *block.writes):
            if any(access.source.same_as(other) for other in others):
                if any(write.source.same_as(access.source) for write in block.writes):
                    return False  # a parameter other than the result written
                continue
            if len(access.region) != len(point) or not all(
                    r.min.same_as(v) and isinstance(r.extent, tvm.tirx.IntImm)
                    and int(r.extent) == 1 for r, v in zip(access.region, point)):
                return False
    return True


@relax.expr_functor.mutator
class _Rebinder(relax.PyExprMutator):
    """Binds each variable of `values` to its new value."""

    def __init__(self, values: dict):
        super().__init__()
        self.values = values

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = self.values.get(binding.var)
        if value is not None:
            binding = relax.VarBinding(binding.var, value)
        super().visit_var_binding_(binding)
