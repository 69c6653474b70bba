"""Finds and loads tvmbridge's C++ libraries.

Looked for, in order: ``$TVMBRIDGE_LIB_DIR``, the installed package's ``lib/`` folder, and the
source checkout's ``build/`` folder (``make build``).
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

RUNTIME_LIBRARY = "libtvmbridge_torch_runtime.so"
COMPILER_LIBRARY = "libtvmbridge_torch_compiler.so"


def _candidate_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("TVMBRIDGE_LIB_DIR"):
        dirs.append(Path(os.environ["TVMBRIDGE_LIB_DIR"]))
    package = Path(__file__).resolve().parent
    dirs.append(package / "lib")
    dirs.append(package.parent.parent / "build")
    return dirs


def find_library(name: str) -> Path:
    for directory in _candidate_dirs():
        if (directory / name).is_file():
            return directory / name
    searched = ", ".join(str(d) for d in _candidate_dirs())
    raise ImportError(
        f"tvmbridge: cannot find {name} (looked in {searched}). Build it with 'make build' "
        "or set TVMBRIDGE_LIB_DIR to the folder that holds it."
    )


@functools.cache
def load_runtime() -> Path:
    """Registers torch.classes.tvmbridge.TVMModule and torch.ops.tvmbridge.run."""
    import torch

    path = find_library(RUNTIME_LIBRARY)
    torch.ops.load_library(str(path))
    return path


@functools.cache
def load_compiler() -> Path:
    """Registers the tvmbridge.* global functions of the C++ frontend with tvm-ffi."""
    import tvm  # noqa: F401  (the frontend builds Relax through TVM's compiler library)
    import tvm_ffi

    from .errors import UnsupportedOperatorError

    load_runtime()
    # C++ raises this kind by name (TVM_FFI_THROW(UnsupportedOperatorError)).
    tvm_ffi.register_error("UnsupportedOperatorError", UnsupportedOperatorError)
    path = find_library(COMPILER_LIBRARY)
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return path


def compiler_loaded() -> bool:
    """Whether :func:`load_compiler` ran (without loading TVM's compiler to find out)."""
    return load_compiler.cache_info().currsize > 0


def runtime_func(name: str):
    """A function of the runtime library from tvm-ffi's registry (TVM's compiler not loaded)."""
    import tvm_ffi

    load_runtime()
    return tvm_ffi.get_global_func(name)


def global_func(name: str):
    """A tvmbridge C++ function from tvm-ffi's registry."""
    import tvm_ffi

    load_compiler()
    return tvm_ffi.get_global_func(name)
