"""The TVM side of compilation: Relax module in, exported shared library bytes out."""

from __future__ import annotations

import json
import logging
import os
import tempfile

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

from . import pipeline
from .pipeline import PRECISIONS


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


def _pipeline(target: tvm.target.Target, database, precision: str, packed_layouts: bool):
    """TVM's CPU pipeline with scheduling added: tuned records where `database` has them,
    tvmbridge's default CPU schedules for every other PrimFunc (for programs over a range of
    shapes, judged at the extents of its opt_shape)."""
    from .schedule import default_cpu_schedule, opt_extents_of

    @tvm.transform.module_pass(opt_level=0, name="tvmbridge.pipeline")
    def fuse_and_schedule(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        opt_extents = opt_extents_of(mod)
        onednn = pipeline.uses_onednn_convolutions(precision, mod, tuning=database is not None)
        mod = pipeline.fuse(mod, target, precision, packed_layouts, onednn)
        with target:
            if database is not None:
                with database:
                    mod = relax.transform.MetaScheduleApplyDatabase()(mod)
            mod = default_cpu_schedule(opt_extents)(mod)
            lower = cpu_generic.dataflow_lower_passes(target) + cpu_generic.finalize_passes(target)
            return tvm.transform.Sequential(lower)(mod)

    return fuse_and_schedule


def check_precision(precision) -> str:
    """``"fp32"`` or ``"bf16"`` (``torch.float32`` and ``torch.bfloat16`` name them too)."""
    import torch

    names = {torch.float32: "fp32", torch.bfloat16: "bf16", "float32": "fp32",
             "bfloat16": "bf16"}
    resolved = names.get(precision, precision)
    if resolved not in PRECISIONS:
        raise ValueError(f"tvmbridge: precision must be one of {', '.join(PRECISIONS)} (or "
                         f"torch.float32, torch.bfloat16), got {precision!r}")
    return resolved


def build_library(mod: tvm.IRModule, target: tvm.target.Target, tuning=None,
                  precision: str = "fp32") -> bytes:
    """Compiles `mod` (tuning it first when `tuning` is a :class:`tvmbridge.Tuning`) and
    returns the exported shared library. `precision` is the matrix products' (see
    :class:`tvmbridge.pipeline.AtenKernels`)."""
    database = None
    if tuning is not None:
        from .tuning import tune

        database = tune(mod, target, tuning, precision)
    try:
        executable = tvm.compile(mod, target=target,
                                 relax_pipeline=_pipeline(target, database, precision, True))
    except (tvm.error.InternalError, ValueError) as error:
        # TVM 0.27's layout handling fails on some ops after a packed convolution: a
        # transposed convolution ("Layouts must have the same size"), a mean over channels
        # ("Could not parse mapping as sum of iterators"), a group norm ("the size of
        # channel_axis must be divisible by" its groups). NCHW is slower, not wrong.
        logging.getLogger("tvmbridge").info(
            "tvmbridge: building with NCHW convolutions (packed layouts failed in TVM: %s)",
            str(error).splitlines()[-1])
        executable = tvm.compile(mod, target=target,
                                 relax_pipeline=_pipeline(target, database, precision, False))
    with tempfile.TemporaryDirectory(prefix="tvmbridge-build-") as work:
        path = os.path.join(work, "module.so")
        executable.export_library(path)
        with open(path, "rb") as library:
            return library.read()


def settings(target: tvm.target.Target, tuning=None, precision: str = "fp32") -> dict:
    """What the C++ compiler builds each region with (compile, enable, the export path's
    regions): ``build_library``, an IRModule -> library function (build_library above, as a
    tvm-ffi function), and what each artifact records: the target's description, TVM's version
    and the CPU features its code may use."""
    import tvm_ffi

    return {
        "build_library": tvm_ffi.convert(lambda mod: build_library(mod, target, tuning,
                                                                   precision)),
        "target": target_description(target),
        "tvm_version": tvm.__version__,
        "cpu_features": required_cpu_features(target),
    }
