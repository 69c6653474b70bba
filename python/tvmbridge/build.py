"""The TVM side of compilation: Relax module in, exported shared library bytes out."""

from __future__ import annotations

import json
import os
import tempfile

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic


def host_target() -> tvm.target.Target:
    """LLVM for this machine's CPU, using every core it has."""
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": os.cpu_count() or 1})


def resolve_target(target) -> tvm.target.Target:
    """Accepts None (the host), a Target, a dict, a JSON string, or a kind name like "llvm"."""
    if target is None:
        return host_target()
    if isinstance(target, tvm.target.Target):
        return target
    if isinstance(target, str) and target.strip().startswith("{"):
        target = json.loads(target)
    return tvm.target.Target(target)


def target_description(target: tvm.target.Target) -> str:
    """The target as TVM's JSON, recorded in the artifact; resolve_target reads it back."""
    return str(target)


# Extensions the runtime checks on load (it cannot test others; see src/runtime/cpu_features.cc).
_CHECKED_CPU_FEATURES = {
    "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi", "bmi2",
    "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512vnni", "avx512ifma",
    "avx512vbmi", "avx512vbmi2", "avx512bitalg", "avx512vpopcntdq", "avx512bf16", "gfni",
    "vaes", "vpclmulqdq",
}


def required_cpu_features(target: tvm.target.Target) -> list[str]:
    """The instruction-set extensions code built for `target` may use (x86 LLVM targets)."""
    if target.kind.name != "llvm":
        return []
    try:
        features = tvm.target.codegen.llvm_get_cpu_features(target)
    except Exception:  # a target LLVM cannot describe: nothing we can check
        return []
    return sorted(str(f) for f in features if str(f) in _CHECKED_CPU_FEATURES)


# Convolutions run in NCHW16c: vectors over 16 output channels whatever the image width, and
# the packed weights are read contiguously. Measured on ResNet-18 (untuned, 2 cores): 30 ms
# in NCHW, 21 ms in NCHW16c. Activations between convolutions stay packed; layout
# transforms remain only where NCHW ops (pooling, the 3-channel stem) meet them.
_CHANNEL_BLOCK = 16
_PACKED_CONV = [f"NCHW{_CHANNEL_BLOCK}c", f"OIHW{_CHANNEL_BLOCK}i{_CHANNEL_BLOCK}o"]


def _conv_layout(call: relax.Call) -> dict:
    """ConvertLayout's choice per call: plain (groups=1) float32 NCHW convolutions only;
    TOPI's packed convolution has no groups, and other calls keep their layouts."""
    attrs = call.attrs
    if attrs is None or not hasattr(attrs, "groups") or not hasattr(attrs, "data_layout"):
        return {}
    if attrs.groups != 1 or attrs.data_layout != "NCHW" or call.ty.dtype != "float32":
        return {}
    return {"relax.nn.conv2d": _PACKED_CONV}


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """TVM's legalisation for NCHW; TOPI's conv2d_NCHWc for the packed layouts (which TVM's
    own legalisation leaves unlowered)."""
    from tvm import topi
    from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

    attrs = call.attrs
    if len(attrs.data_layout) == 4:
        return _nn_conv2d(bb, call)
    return bb.call_te(topi.nn.conv2d_NCHWc, call.args[0], call.args[1], attrs.strides,
                      attrs.padding, attrs.dilation, attrs.data_layout, attrs.out_layout,
                      call.ty.dtype, primfunc_name_hint="conv2d_NCHWc")


def fuse(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Layout conversion, library dispatch, legalisation to TIR and operator fusion: the
    module whose PrimFuncs are both the tuning tasks and what the tuning records are applied
    to (so keys match). Weight layout transforms fold into the constants here."""
    passes = [
        relax.transform.ConvertLayout({}, _conv_layout),
        relax.transform.FoldConstant(),
        *cpu_generic.library_dispatch_passes(target),
        # cpu_generic.legalize_passes with the packed convolution's legalisation added.
        relax.transform.LegalizeOps({"relax.nn.conv2d": _legalize_conv2d}),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    with target:
        return tvm.transform.Sequential(passes)(mod)


def _pipeline(target: tvm.target.Target, database):
    """TVM's CPU pipeline with scheduling added: tuned records where `database` has them,
    tvmbridge's default CPU schedules for every other PrimFunc."""
    from .schedule import default_cpu_schedule

    @tvm.transform.module_pass(opt_level=0, name="tvmbridge.pipeline")
    def pipeline(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = fuse(mod, target)
        with target:
            if database is not None:
                with database:
                    mod = relax.transform.MetaScheduleApplyDatabase()(mod)
            mod = default_cpu_schedule()(mod)
            lower = cpu_generic.dataflow_lower_passes(target) + cpu_generic.finalize_passes(target)
            return tvm.transform.Sequential(lower)(mod)

    return pipeline


def build_library(mod: tvm.IRModule, target: tvm.target.Target, tuning=None) -> bytes:
    """Compiles `mod` (tuning it first when `tuning` is a :class:`tvmbridge.Tuning`) and
    returns the exported shared library."""
    database = None
    if tuning is not None:
        from .tuning import tune

        database = tune(mod, target, tuning)
    executable = tvm.compile(mod, target=target, relax_pipeline=_pipeline(target, database))
    with tempfile.TemporaryDirectory(prefix="tvmbridge-build-") as work:
        path = os.path.join(work, "module.so")
        executable.export_library(path)
        with open(path, "rb") as library:
            return library.read()


def library_builder(target: tvm.target.Target, tuning=None):
    """``build(IRModule) -> bytes`` as a tvm-ffi function, for the C++ compiler to call on
    each region."""
    import tvm_ffi

    return tvm_ffi.convert(lambda mod: build_library(mod, target, tuning))
