"""Default CPU schedules: what every PrimFunc that has no tuning record gets.

TVM's CPU pipeline leaves legalised TIR unscheduled (one thread, scalar loops). This pass gives
each function a schedule that is safe for any shape and fast enough to be a sane default:

* injective blocks (elementwise, broadcast, layout, padding): outer loops fused and run in
  parallel, the innermost loop vectorised;
* reductions (convolution, matmul, pooling, sums): outer output loops in parallel (column
  panels of the vectorised operand outermost, so each stays in cache); the
  innermost output loop vectorised and kept below the reduction loops, with a small unrolled
  tile of the next output loop, so partial sums stay in vector registers (a register-blocked
  direct convolution / GEMM).

MetaSchedule does far better for the shapes it has tuned (see :mod:`tvmbridge.tuning`); a rule
that cannot apply to a function leaves it as it was, which is always correct.

Programs over a range of shapes have symbolic loop extents. Whether a loop is worth threads is
judged at the extents the range's ``opt_shape`` gives (``opt_extents``: symbol name -> extent,
from the Relax function's ``tvmbridge.opt_extents`` attribute), symbols without one at 1.
"""

from __future__ import annotations

import logging
from typing import Mapping

import tvm
import tvm_ffi
from tvm import s_tir, sym, tirx
from tvm.s_tir import dlight
from tvm.tirx.analysis import undefined_vars

_log = logging.getLogger("tvmbridge")
_Expr = tvm.ir.expr.Expr
_TensorLoad = tvm.ir.expr.TensorLoad

# Floats per vector register on AVX-512; narrower CPUs split the vectors (LLVM legalises).
_VECTOR_LANES = 16
# Outputs computed together per reduction pass (register tile): up to 16 accumulators of one
# vector each fit AVX-512's 32 registers; measured on ResNet-18 (untuned, NCHW): tiles of
# 4 -> 8 -> 16 output channels took the model from 52 to 35 to 30 ms.
_ROW_TILE = 16
# The Relax function attribute naming the extents to optimise for (relax_builder.h).
OPT_EXTENTS_ATTRIBUTE = "tvmbridge.opt_extents"
# Where a reduction's partial sums live. TVM 0.27 keeps only small "global" allocations on the
# stack, where LLVM promotes them to registers; "local" ones became TVMBackendAllocWorkspace
# heap memory, each update a store and a load (bfloat16 max pooling, ResNet-18's stem at
# batch 8: 1.45 -> 1.01 ms on the 2-core AMX Xeon).
_ACCUMULATOR_SCOPE = "global"
# Below this many iterations a parallel loop costs more than it saves.
_MIN_PARALLEL_WORK = 4096


def _extent(sch: s_tir.Schedule, loop) -> int | None:
    extent = sch.get(loop).extent
    return int(extent) if isinstance(extent, tirx.IntImm) else None


def _typical_extent(sch: s_tir.Schedule, loop, opt_extents: Mapping[str, int]) -> int:
    """The loop's extent; for a symbolic one (a batch of 1..8), its value at the symbols'
    `opt_extents` (1 where a symbol has none): what decides whether the loop is worth threads
    and how much work an iteration does. Without this, programs over symbolic shapes ran on
    one core."""
    typical = extent_at(sch.get(loop).extent, opt_extents, default=1)
    return 1 if typical is None else max(typical, 1)


def extent_at(extent: tirx.PrimExpr, values: Mapping[str, int],
              default: int | None = None) -> int | None:
    """`extent` with its symbols at `values` (by name; `default` for the others): an int, or
    None where a symbol has no value and no default, or the result is not a constant."""
    if isinstance(extent, tirx.IntImm):
        return int(extent)
    analyzer = sym.Analyzer()
    for var in undefined_vars(extent):
        value = values.get(var.name, default)
        if value is None:
            return None
        analyzer.bind(var, tirx.IntImm(str(var.ty.dtype), value))
    result = analyzer.simplify(extent)
    return int(result) if isinstance(result, tirx.IntImm) else None


def _vector_width(extent: int | None) -> int:
    """The widest lane count that divides `extent` (whole extents up to 16 are fine)."""
    if extent is None:
        return 1
    return max(lanes for lanes in range(1, _VECTOR_LANES + 1) if extent % lanes == 0)


def _iter_kinds(sch: s_tir.Schedule, block) -> list[str]:
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return [kinds.get(iv.iter_type, "O") for iv in sch.get(block).iter_vars]


def _loops_match_iters(sch: s_tir.Schedule, block) -> bool:
    """Each loop binds exactly one block iterator, in order (what legalised TIR looks like)."""
    return len(sch.get_loops(block)) == len(sch.get(block).iter_vars)


def _parallelize(sch: s_tir.Schedule, loops: list, work_per_iteration: int,
                 opt_extents: Mapping[str, int]) -> None:
    """Fuses the leading loops and runs them in parallel, when that is worth a thread."""
    if not loops:
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    extent = _typical_extent(sch, fused, opt_extents)
    symbolic = _extent(sch, fused) is None
    if (extent > 1 or symbolic) and extent * work_per_iteration >= _MIN_PARALLEL_WORK:
        sch.parallel(fused)


def _schedule_injective(sch: s_tir.Schedule, block, opt_extents: Mapping[str, int]) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    inner = loops[-1]
    lanes = _vector_width(_extent(sch, inner))
    if lanes > 1:
        outer, inner = sch.split(inner, factors=[None, lanes])
        loops = loops[:-1] + [outer]
        sch.vectorize(inner)
    else:
        loops = loops[:-1] + [inner]
        lanes = 1
    _parallelize(sch, loops, lanes, opt_extents)


def _largest_divisor(extent: int | None, limit: int) -> int:
    if extent is None:
        return 1
    return max(d for d in range(1, limit + 1) if extent % d == 0)


def _vars_in(expr) -> set:
    return set(undefined_vars(expr))


def _register_tile_axis(sch: s_tir.Schedule, block, kinds: list[str]) -> int | None:
    """The loop to unroll into a register tile: partial sums of neighbouring outputs along
    it share the vector operand. That is an output axis read by the operand the vector axis
    does not index (the broadcast one: a weight scalar in NCHW convolution, an input pixel
    in NCHWc, a row of A in matmul) and by no operand the vector axis indexes. The innermost
    such axis; None when there is none (pooling, plain sums)."""
    stmt = sch.get(block)
    iters = [iv.var for iv in stmt.iter_vars]
    vector_var = iters[max(i for i, kind in enumerate(kinds) if kind == "S")]
    with_vector, without_vector = set(), set()
    for region in stmt.reads:
        used = _vars_of(region)
        (with_vector if vector_var in used else without_vector).update(used)
    outputs = [i for i, (var, kind) in enumerate(zip(iters, kinds))
               if kind == "S" and not var.same_as(vector_var)]
    broadcast = [i for i in outputs if iters[i] in without_vector and iters[i] not in with_vector]
    if broadcast:
        return broadcast[-1]
    # Every operand is indexed by the vector axis (depthwise convolution: input and weight
    # both per channel): tile an output axis some operand does not depend on, so that
    # operand's vector (the depthwise weight, along the image row) is loaded once per tile.
    reused = [i for i in outputs if any(iters[i] not in _vars_of(region) for region in stmt.reads)]
    return reused[-1] if reused else None


def _vars_of(region) -> set:
    used = set()
    for dim in region.region:
        used |= _vars_in(dim.min)
    return used


def _schedule_reduction(sch: s_tir.Schedule, block, opt_extents: Mapping[str, int]) -> None:
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)
    spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
    reduce = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
    if not spatial or not reduce or "O" in kinds:
        raise ValueError("not a plain reduction")
    inner = spatial[-1]
    lanes = _vector_width(_extent(sch, inner))
    outer_inner, vector = sch.split(inner, factors=[None, lanes])
    rows = spatial[:-1]
    row_tile, tile_size = None, 1
    tiled = _register_tile_axis(sch, block, kinds)
    if tiled is not None:
        tile_size = _largest_divisor(_extent(sch, loops[tiled]), _ROW_TILE)
        position = rows.index(loops[tiled])
        if tile_size > 1:
            row_outer, row_tile = sch.split(rows[position], factors=[None, tile_size])
            rows = rows[:position] + [row_outer] + rows[position + 1:]
    tile = [row_tile] if row_tile is not None else []
    # Column panels outermost: a panel of the vector operand (the weights of a matmul,
    # K x 16 floats) stays in cache while every row tile passes over it, instead of the
    # whole weight matrix streaming from memory once per row tile. BERT-base's matmuls ran
    # 2x faster this way (feed-forward 96 -> 41 ms per run); CNNs were unchanged.
    if _extent(sch, outer_inner) != 1:
        outer = [outer_inner] + rows
    else:
        outer = rows + [outer_inner]
    sch.reorder(*outer, *reduce, *tile, vector)
    # Partial sums in a buffer of their own (registers); the write-back absorbs the epilogue
    # (bias, residual add, activation), so the output is written once.
    write_back = sch.cache_write(block, 0, _ACCUMULATOR_SCOPE)
    sch.reverse_compute_at(write_back, outer[-1])
    for consumer in sch.get_consumers(write_back):
        try:
            sch.reverse_compute_inline(consumer)
        except RuntimeError:
            pass
    # Loop annotations go on before the init is split off: they need the whole reduction.
    # An iteration of the parallel loop computes the last outer loop's outputs, each over the
    # whole reduction.
    work = lanes * tile_size * _typical_extent(sch, outer[-1], opt_extents)
    for loop in reduce:
        work *= _typical_extent(sch, loop, opt_extents)
    _parallelize(sch, outer[:-1], work, opt_extents)
    if lanes > 1:
        sch.vectorize(vector)
    if row_tile is not None:
        sch.unroll(row_tile)
    init = sch.decompose_reduction(block, reduce[0])
    if lanes > 1:
        sch.vectorize(sch.get_loops(init)[-1])
        sch.vectorize(sch.get_loops(write_back)[-1])


class CPUDefault(dlight.base.ScheduleRule):
    """Schedules every block of a PrimFunc; declines (returns None) when any block does not
    fit, so that the function stays correct if unscheduled. `opt_extents`: see the module's
    docstring."""

    def __init__(self, opt_extents: Mapping[str, int] | None = None):
        super().__init__()
        self.opt_extents = dict(opt_extents or {})

    def apply(self, func: tirx.PrimFunc, target: tvm.target.Target, _tunable: bool):
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        try:
            sch = s_tir.Schedule(func)
            if not _has_root(sch):
                return None
            _inline_injective_producers(sch, sch.get_child_blocks(sch.get_sblock("root")))
            names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
            for name in names:  # blocks the reductions' write-backs absorb are gone by then
                block = _find_block(sch, name)
                if block is None:
                    continue
                if not _loops_match_iters(sch, block):
                    return None
                kinds = _iter_kinds(sch, block)
                if all(kind == "S" for kind in kinds):
                    _schedule_injective(sch, block, self.opt_extents)
                else:
                    _schedule_reduction(sch, block, self.opt_extents)
            return sch
        except (RuntimeError, ValueError) as error:
            _log.debug("tvmbridge: default schedule skipped %s: %s", func.attrs, error)
            return None


def _has_root(sch: s_tir.Schedule) -> bool:
    try:
        sch.get_sblock("root")
        return True
    except RuntimeError:
        return False


def _find_block(sch: s_tir.Schedule, name: str):
    try:
        return sch.get_sblock(name)
    except (RuntimeError, ValueError):
        return None


# A producer's value inlined into a consumer is computed once per read of it there (LLVM's
# common-subexpression elimination saves the run time, but not the compile time). Past this
# many expression nodes, producer size times reads, it is written to memory instead: in the
# zoo's GRU, gate expressions of 500+ nodes were read 73 times by a cell state built of tanh
# and sigmoids (vector_math.tanh reads its input 45 times, counting the reads inside its exp
# and polynomial); it compiled 29.6 s instead of 5.3, the 2-layer LSTM 42.2 s instead of 9.3.
# No producer of MobileNet-V2, EfficientNet-B0, DeiT-tiny, BERT-base or GPT-2 reaches it.
_INLINED_NODES_LIMIT = 16384


def _expression_size(sch: s_tir.Schedule, block) -> int:
    """The number of expression nodes in what `block` computes."""
    nodes = []
    tvm_ffi.structural_walk(sch.get(block).body,
                            lambda node: nodes.append(node) if isinstance(node, _Expr) else None)
    return len(nodes)


def _reads_of(sch: s_tir.Schedule, consumer, buffer) -> int:
    """How many times `consumer`'s body loads from `buffer` (a block's written buffer)."""
    loads = []
    tvm_ffi.structural_walk(sch.get(consumer).body, [(_TensorLoad, loads.append)])
    return sum(1 for load in loads if load.source.same_as(buffer))


def _inline_injective_producers(sch: s_tir.Schedule, blocks: list) -> None:
    """Inlines elementwise producers into injective consumers (fewer passes over memory), but
    not a large producer into a consumer that reads it many times
    (:data:`_INLINED_NODES_LIMIT`). Producers of reductions stay (padding read in a
    convolution's inner loop would cost a branch per multiply)."""
    for block in blocks:
        if not all(kind == "S" for kind in _iter_kinds(sch, block)):
            continue
        consumers = sch.get_consumers(block)
        if not consumers:
            continue
        if not all(all(k == "S" for k in _iter_kinds(sch, c)) for c in consumers):
            continue
        written = [region.source for region in sch.get(block).writes]
        if len(written) == 1:
            size = _expression_size(sch, block)
            if any(size * _reads_of(sch, consumer, written[0]) > _INLINED_NODES_LIMIT
                   for consumer in consumers):
                continue
        try:
            sch.compute_inline(block)
        except RuntimeError:
            pass


class _GEMV(dlight.cpu.GEMV):
    """dlight's GEMV rule, declining (instead of failing an assertion in its analysis) on
    reductions it cannot normalise, such as a max followed by a sum of exponentials."""

    def apply(self, func, target, tunable):
        try:
            return super().apply(func, target, tunable)
        except AssertionError:
            return None


def _rules(opt_extents: Mapping[str, int] | None = None) -> list:
    """The first rule that takes a function schedules it: TVM's dlight GEMV rule
    (matrix-vector products read rows contiguously, which CPUDefault does not), then
    :class:`CPUDefault`, then dlight's row-reduction rule for what CPUDefault declines.
    (dlight's reduction rule also claims convolutions fused with padding and epilogues, and
    runs them ~40x slower than CPUDefault: it must not come first.)"""
    return [_GEMV(), CPUDefault(opt_extents), dlight.cpu.Reduction()]


def default_schedule(func: tirx.PrimFunc, target: tvm.target.Target,
                     opt_extents: Mapping[str, int] | None = None):
    """The default schedule of one function (an ``s_tir.Schedule`` with its trace), or None
    when no rule applies."""
    for rule in _rules(opt_extents):
        scheduled = rule.apply(func, target, False)
        if scheduled is not None:
            return scheduled[0] if isinstance(scheduled, list) else scheduled
    return None


def default_cpu_schedule(opt_extents: Mapping[str, int] | None = None) -> tvm.transform.Pass:
    """Schedules every PrimFunc not scheduled yet (by tuning records) with
    :func:`default_schedule`'s rules."""
    return dlight.ApplyDefaultSchedule(*_rules(opt_extents))


def opt_extents_of(mod: tvm.IRModule) -> dict[str, int]:
    """The extents to optimise for that `mod`'s Relax functions carry (tvmbridge's frontend
    sets them from the inputs' ``opt_shape``)."""
    extents = {}
    for function in mod.functions.values():
        attrs = getattr(function, "attrs", None)
        if attrs is not None and OPT_EXTENTS_ATTRIBUTE in attrs:
            extents.update({str(name): int(extent)
                            for name, extent in attrs[OPT_EXTENTS_ATTRIBUTE].items()})
    return extents
