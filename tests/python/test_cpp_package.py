"""find_package(tvmbridge): `cmake --install` gives C++ users a CMake package, and
examples/cpp, built against it, serves a compiled model from C++ alone with PyTorch's answer."""

import os
import shutil
import subprocess

import torch

import tvmbridge.torch as tt
from conftest import BUILD, ROOT, SmallNet

# Fixed places under the build directory, so that ccache (make sets its base directory to the
# checkout) compiles the example once per machine, not once per run.
PACKAGE_TEST = BUILD / "package-test"


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                            timeout=900, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_installed_package_builds_the_cpp_example_which_serves_a_model(tmp_path):
    prefix = PACKAGE_TEST / "prefix"
    shutil.rmtree(prefix, ignore_errors=True)
    run(["cmake", "--install", BUILD, "--prefix", prefix])
    assert (prefix / "lib" / "cmake" / "tvmbridge" / "tvmbridgeConfig.cmake").exists()
    assert (prefix / "include" / "tvmbridge" / "tvm_module.h").exists()

    example = PACKAGE_TEST / "serve"
    configure = ["cmake", "-S", ROOT / "examples" / "cpp", "-B", example, "-G", "Ninja",
                 f"-DCMAKE_PREFIX_PATH={prefix}"]
    if shutil.which("ccache"):
        configure.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={shutil.which('ccache')}")
    run(configure)
    run(["cmake", "--build", example])

    model = torch.jit.script(SmallNet().eval())
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)  # what serve makes: the same seed and shape
    compiled = tt.compile(model, [x], never_slower=False)
    tt.save(compiled, tmp_path / "model.pt")
    # No Python on its path: the binary finds libtorch and TVM's runtime through its RPATH.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    served = run([example / "serve", tmp_path / "model.pt", "1x3x16x16", tmp_path / "out.pt"],
                 env=env)
    assert "output [1, " in served.stdout
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "out.pt"), model(x), rtol=1e-4,
                                   atol=1e-4)
    refused = subprocess.run([str(example / "serve"), str(tmp_path / "model.pt"), "2x3x16x16",
                              str(tmp_path / "bad.pt")], capture_output=True, text=True,
                             timeout=300, env=env)
    assert refused.returncode == 1 and "[1, 3, 16, 16]" in refused.stderr, refused.stderr
