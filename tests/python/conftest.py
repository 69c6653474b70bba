import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tvmbridge.torch as tt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shared_models import SmallNet  # noqa: E402,F401  (tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TVMBRIDGE_BUILD_DIR", ROOT / "build"))


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and batch-norm statistics, so outputs are far from zero and a wrong
    conversion cannot hide behind freshly initialised (near-identity) layers."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return model.eval()


def run_in_threads(serve, count: int) -> None:
    """Runs serve(0) .. serve(count - 1) on threads of their own, at once, and waits for all."""
    import threading

    threads = [threading.Thread(target=serve, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter with this checkout on the path."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="session")
def small_model():
    torch.manual_seed(0)
    return randomize_(SmallNet())


@pytest.fixture(scope="session")
def small_compiled(small_model):
    return tt.compile(torch.jit.script(small_model), [tt.Input((2, 3, 16, 16))], never_slower=False)
