"""Reshapes over symbolic extents whose index arithmetic TVM can fuse.

TOPI's reshape reads element ``flat(out_index)`` unravelled over the input's whole shape. With
symbolic extents that unravelling divides by them (``(b * seq + s) // seq % batch``), which
TVM's analysis cannot simplify, so ``AnnotateTIROpPattern`` calls the kernel opaque and
``FuseOps`` keeps it apart: in a BERT compiled over a range of shapes, each attention
projection became three kernels (bias add, reshape, transpose), each a pass over the
activations, where a static compile has one.

The reshapes of transformer blocks keep their leading dims (``[batch, seq, 768]`` <->
``[batch, seq, 12, 64]``). :data:`LEGALIZATIONS` legalises such a reshape, where every symbolic
extent lies in the kept leading dims, as a map of the static trailing dims only: divisions by
constants, which TVM simplifies and fuses. Other reshapes keep TVM's lowering.
"""

from __future__ import annotations

from tvm import relax, sym, te, tirx

from .relax_patterns import default_legalization


def _kept_leading_dims(source: list, target: list) -> int:
    """How many leading extents `source` and `target` share."""
    analyzer, kept = sym.Analyzer(), 0
    while (kept < min(len(source), len(target))
           and analyzer.can_prove_equal(source[kept], target[kept])):
        kept += 1
    return kept


def _static(extents: list) -> bool:
    return all(isinstance(extent, tirx.IntImm) for extent in extents)


def reshape_after(data: te.Tensor, shape: list, kept: int) -> te.Tensor:
    """`data` reshaped to `shape`, whose first `kept` extents are `data`'s and whose other
    extents (like `data`'s after them) are constants."""
    source_tail = [int(extent) for extent in data.shape[kept:]]
    target_tail = [int(extent) for extent in shape[kept:]]

    def element(*index):
        flat = tirx.const(0, "int64")
        for position, extent in zip(index[kept:], target_tail):
            flat = flat * extent + position
        source = []
        for extent in reversed(source_tail):
            source.append(tirx.floormod(flat, extent))
            flat = tirx.floordiv(flat, extent)
        return data[(*index[:kept], *reversed(source))]

    return te.compute(shape, element, name="T_reshape")


def _legalize_reshape(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    data = call.args[0]
    source = list(data.ty.shape.values) if isinstance(data.ty.shape, relax.ShapeExpr) else None
    target = list(call.ty.shape.values) if isinstance(call.ty.shape, relax.ShapeExpr) else None
    if source is not None and target is not None:
        kept = _kept_leading_dims(source, target)
        if (kept > 0 and not _static(source[:kept]) and _static(source[kept:])
                and _static(target[kept:])):
            return bb.call_te(reshape_after, data, target, kept, primfunc_name_hint="reshape")
    return default_legalization(bb, call)


# Relax op -> legalisation, for tvm.relax.transform.LegalizeOps's customize_legalize_map.
LEGALIZATIONS = {"relax.reshape": _legalize_reshape}

__all__ = ["reshape_after", "LEGALIZATIONS"]
