"""Builds the C++ libraries with CMake and ships them inside the package (tvmbridge/lib)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ["libtvmbridge_torch_runtime.so", "libtvmbridge_torch_compiler.so", "tvmbridge-run"]


class BuildWithCMake(build_py):
    def run(self):
        super().run()
        build_dir = ROOT / "build" / "pip"
        subprocess.check_call([
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
            "-DCMAKE_BUILD_TYPE=Release", f"-DPython3_EXECUTABLE={sys.executable}",
            "-DTVMBRIDGE_BUILD_TESTS=OFF",
        ])
        subprocess.check_call(["cmake", "--build", str(build_dir), "-j", os.environ.get("JOBS", "2")])
        lib_dir = Path(self.build_lib) / "tvmbridge" / "lib"
        lib_dir.mkdir(parents=True, exist_ok=True)
        for name in ARTIFACTS:
            shutil.copy2(build_dir / name, lib_dir / name)


setup(cmdclass={"build_py": BuildWithCMake})
