"""The TVM side of compilation: Relax module in, exported shared library bytes out."""

from __future__ import annotations

import json
import os
import tempfile

import tvm
from tvm import relax


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
