"""The TVM side of compilation: Relax module in, exported shared library bytes out."""

from __future__ import annotations

import json
import os
import tempfile

import tvm


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


def build_library(mod: tvm.IRModule, target: tvm.target.Target) -> bytes:
    """Compiles `mod` through TVM's Relax pipeline and returns the exported shared library."""
    executable = tvm.compile(mod, target=target)
    with tempfile.TemporaryDirectory(prefix="tvmbridge-build-") as work:
        path = os.path.join(work, "module.so")
        executable.export_library(path)
        with open(path, "rb") as library:
            return library.read()


def register_pipeline() -> None:
    """Registers ``tvmbridge.build_library(IRModule, target JSON) -> bytes``, the TVM compile
    pipeline that the C++ compiler calls for each region."""
    import tvm_ffi

    def build_for_cpp(mod, target_json):
        return build_library(mod, resolve_target(str(target_json)))

    tvm_ffi.register_global_func("tvmbridge.build_library", build_for_cpp, override=True)
