"""The TVM side of compilation: Relax module in, exported shared library bytes out."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

from . import pipeline
from .errors import first_line
from .pipeline import PRECISIONS

_log = logging.getLogger("tvmbridge")


def host_target() -> tvm.target.Target:
    """LLVM for this machine's CPU, using every core it has. On CPUs with AMX (Sapphire Rapids
    and later) with 512-bit vectors: LLVM's tuning for them prefers 256-bit ones (AVX-512 cost
    older Xeons clock speed), which halves what TVM's elementwise kernels compute per
    instruction (BERT-base in bfloat16, interleaved on a 2-core Emerald Rapids Xeon: 21.6 ->
    19.9 ms, the same outputs; its erf GELU was 17% of the time; ResNet-18 and MobileNet-V2
    unchanged). Other CPUs keep LLVM's choice (not measured there)."""
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    target = {"kind": "llvm", "mcpu": cpu, "num-cores": os.cpu_count() or 1}
    if pipeline.has_cpu_flag("amx_tile"):
        target["mattr"] = ["-prefer-256-bit"]
    return tvm.target.Target(target)


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


def _pipeline(target: tvm.target.Target, database, precision: str, packed_layouts: bool,
              onednn_convolutions: bool):
    """TVM's CPU pipeline with scheduling added: tuned records where `database` has them,
    tvmbridge's default CPU schedules for every other PrimFunc (for programs over a range of
    shapes, judged at the extents of its opt_shape)."""
    from .inplace import in_place_elementwise
    from .schedule import default_cpu_schedule, opt_extents_of
    from .tuning import dispatch_tuned_at_opt

    @tvm.transform.module_pass(opt_level=0, name="tvmbridge.pipeline")
    def fuse_and_schedule(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        opt_extents = opt_extents_of(mod)
        mod = pipeline.fuse(mod, target, precision, packed_layouts, onednn_convolutions)
        with target:
            if database is not None:
                with database:
                    mod = relax.transform.MetaScheduleApplyDatabase()(mod)
                mod = dispatch_tuned_at_opt(mod, database, target, opt_extents)
            mod = default_cpu_schedule(opt_extents)(mod)
            # After scheduling, which inlines the kernels' intermediate blocks (a kernel writing
            # over its input cannot have its producer blocks inlined).
            mod = in_place_elementwise()(mod)
            mod = relax.transform.DeadCodeElimination()(mod)  # kernels every call makes in place
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
                  precision: str = "fp32", never_slower: bool = True) -> bytes:
    """Compiles `mod` (tuning it first when `tuning` is a :class:`tvmbridge.Tuning`) and
    returns the exported shared library. `precision` is the matrix products' (see
    :class:`tvmbridge.pipeline.AtenKernels`). Where the faster build cannot be told in advance,
    `mod` is built each way and the one faster on this machine is kept: the convolution
    kernels (:func:`tvmbridge.pipeline.convolution_kernel_choices`), and with `never_slower`
    bfloat16 against float32 where bfloat16 may not win (:func:`_float32_may_be_faster`)."""
    database = None
    if tuning is not None:
        from .tuning import tune

        database = tune(mod, target, tuning, precision)
    tuned = database is not None
    candidates = [BuildVariant(precision, onednn) for onednn in
                  pipeline.convolution_kernel_choices(precision, mod, tuning=tuned)]
    if never_slower and _float32_may_be_faster(precision, target, mod):
        candidates.append(BuildVariant("fp32",
                                       pipeline.uses_onednn_convolutions("fp32", mod, tuned)))
    libraries = {candidate: _export(_compile(mod, target, database, candidate.precision,
                                             candidate.onednn_convolutions))
                 for candidate in candidates}
    return libraries[_fastest(libraries, mod)]


@dataclasses.dataclass(frozen=True)
class BuildVariant:
    """One way to build a module: the precision of its products and convolutions, and whether
    its convolutions are oneDNN's (:func:`tvmbridge.pipeline.fuse`)."""

    precision: str
    onednn_convolutions: bool

    def __str__(self) -> str:
        kernels = "oneDNN" if self.onednn_convolutions else "TVM"
        return f"{self.precision}, convolutions on {kernels}"


def _float32_may_be_faster(precision: str, target: tvm.target.Target,
                           mod: tvm.IRModule) -> bool:
    """Whether a bfloat16 build of `mod` is timed against a float32 one: on CPUs without AMX,
    where bfloat16 products need not be faster. On Intel's, VDPBF16PS issues on one port and
    float32 FMAs on two, so bfloat16 saves memory traffic only, and costs casts: on a 2-core
    Xeon (model 207, AMX hidden by its hypervisor), interleaved, bfloat16 was 1.28x / 1.52x
    slower than float32 on ResNet-18 at batch 1 / 8, 1.22x / 1.27x on MobileNet-V2, 1.16x on
    BERT-base. Only where the code is for this machine (it is timed here) and `mod` has
    products or convolutions that bfloat16 changes."""
    return (precision == "bf16" and not pipeline.has_cpu_flag("amx_bf16")
            and _is_host(target) and pipeline.has_bf16_candidates(mod))


def _is_host(target: tvm.target.Target) -> bool:
    """Whether `target` is LLVM for this machine's CPU (its code runs here)."""
    return (target.kind.name == "llvm" and str(target.attrs.get("mcpu", ""))
            == tvm.target.codegen.llvm_get_system_cpu())


def _compile(mod: tvm.IRModule, target: tvm.target.Target, database, precision: str,
             onednn_convolutions: bool):
    try:
        return tvm.compile(mod, target=target, relax_pipeline=_pipeline(
            target, database, precision, True, onednn_convolutions))
    except (tvm.error.InternalError, ValueError) as error:
        # TVM 0.27's layout handling fails on some ops after a packed convolution: a
        # transposed convolution ("Layouts must have the same size"), a mean over channels
        # ("Could not parse mapping as sum of iterators"), a group norm ("the size of
        # channel_axis must be divisible by" its groups). NCHW is slower, not wrong.
        _log.info("tvmbridge: building with NCHW convolutions (packed layouts failed in TVM: %s)",
                  str(error).splitlines()[-1])
        return tvm.compile(mod, target=target, relax_pipeline=_pipeline(
            target, database, precision, False, onednn_convolutions))


def _export(executable) -> bytes:
    with tempfile.TemporaryDirectory(prefix="tvmbridge-build-") as work:
        path = os.path.join(work, "module.so")
        executable.export_library(path)
        with open(path, "rb") as library:
            return library.read()


def _fastest(libraries: dict, mod: tvm.IRModule) -> BuildVariant:
    """Which of `libraries` (by :class:`BuildVariant`) runs `mod`'s main fastest here: each
    loaded as the runtime loads an artifact's library (its parallel loops on PyTorch's
    threads, which oneDNN's kernels use too), timed against the fastest so far on made-up
    inputs at the opt shape (:func:`_example_arguments`) by the loop never_slower times with
    (alternating calls, settling pauses, medians). Where main takes other inputs than
    tensors, or they are refused, the first build (the static rules') is kept."""
    from . import _native

    candidates = list(libraries)
    fastest = candidates[0]
    arguments = _example_arguments(mod) if len(candidates) > 1 else None
    if arguments is None:
        return fastest
    load = _native.runtime_func("tvmbridge.runtime.load_library")
    time_alternately = _native.global_func("tvmbridge.torch.time_alternately")
    try:
        mains = {candidate: relax.VirtualMachine(load(library), tvm.cpu())["main"]
                 for candidate, library in libraries.items()}
        timings = []
        for challenger in candidates[1:]:
            challenger_ms, fastest_ms = time_alternately(
                lambda: mains[fastest](*arguments), lambda: mains[challenger](*arguments))
            timings.append(f"{challenger} {challenger_ms:.3f} ms against {fastest} "
                           f"{fastest_ms:.3f} ms")
            if challenger_ms < fastest_ms:
                fastest = challenger
    except Exception as error:  # made-up inputs a value check refuses: keep the static rules
        _log.info("tvmbridge: builds not timed (%s); keeping %s", first_line(error),
                  candidates[0])
        return candidates[0]
    _log.info("tvmbridge: building %s (per call of the region: %s)", fastest, "; ".join(timings))
    return fastest


def _example_arguments(mod: tvm.IRModule) -> list | None:
    """Made-up tensors for main's parameters, symbolic extents at the opt shape: standard-normal
    floats, and ones for integers and booleans (a valid index of any axis longer than 1, and
    no divisor of zero); None where a parameter is not a tensor of known shape, or is of a
    dtype NumPy lacks (bfloat16)."""
    import numpy as np

    from .schedule import extent_at, opt_extents_of

    opt_extents = opt_extents_of(mod)
    generator = np.random.default_rng(0)
    arguments = []
    for param in mod["main"].params:
        ty = param.ty
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
            return None
        shape = [extent_at(extent, opt_extents) for extent in ty.shape.values]
        if None in shape:
            return None
        try:
            dtype = np.dtype(str(ty.dtype))
        except TypeError:  # bfloat16: NumPy has none
            return None
        values = (generator.standard_normal(shape).astype(dtype)
                  if np.issubdtype(dtype, np.floating) else np.ones(shape, dtype))
        arguments.append(tvm.runtime.tensor(values))
    return arguments


def settings(target: tvm.target.Target, tuning=None, precision: str = "fp32",
             never_slower: bool = True) -> dict:
    """What the C++ compiler builds each region with (compile, enable, the export path's
    regions): ``build_library``, an IRModule -> library function (build_library above, as a
    tvm-ffi function), and what each artifact records: the target's description, TVM's version
    and the CPU features its code may use."""
    import tvm_ffi

    return {
        "build_library": tvm_ffi.convert(lambda mod: build_library(mod, target, tuning,
                                                                   precision, never_slower)),
        "target": target_description(target),
        "tvm_version": tvm.__version__,
        "cpu_features": required_cpu_features(target),
    }
