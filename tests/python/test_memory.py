"""100,000 calls do not grow the resident set: nothing per call is left behind, on the
compiled-module path (PyTorch calling TVM) and on the TorchScript-region path (TVM calling
PyTorch). Each runs in a fresh interpreter so that other tests' allocations are not counted.

A leak of 40 bytes per call would add 4 MB over 100,000 calls; allocator caches settle during
the warm-up calls, so what is left above that is noise of a few hundred KB."""

import textwrap

from conftest import ROOT, run_python

CALLS = 100_000
ALLOWED_GROWTH_KB = 4096

MEASURE = textwrap.dedent("""
    def rss_kb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    for _ in range(5000):
        call()
    before = rss_kb()
    for _ in range({calls}):
        call()
    print("rss_kb", before, rss_kb())
""").format(calls=CALLS)


def growth_kb(setup: str) -> int:
    path = f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
    result = run_python(path + textwrap.dedent(setup) + MEASURE)
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = map(int, result.stdout.split("rss_kb")[1].split())
    print(f"RSS over {CALLS} calls: {before} KB -> {after} KB")
    return after - before


def test_compiled_module_calls_do_not_grow_memory():
    growth = growth_kb("""
        import torch
        import tvmbridge.torch as tt
        from shared_models import SmallNet
        compiled = tt.compile(torch.jit.script(SmallNet().eval()), [tt.Input((2, 3, 16, 16))],
                              never_slower=False)
        x = torch.randn(2, 3, 16, 16)
        def call():
            compiled(x)
    """)
    assert growth < ALLOWED_GROWTH_KB


def test_torchscript_region_calls_do_not_grow_memory():
    growth = growth_kb("""
        import torch, tvm
        from tvm import relax
        import tvmbridge.torch as tt
        from shared_models import DetectionHead
        model = DetectionHead().eval()
        x = torch.randn(1, 3, 16, 16)
        mod, _ = tt.from_torchscript(torch.jit.script(model), [x], fallback="torchscript")
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        main, tvm_x = vm["main"], tvm.runtime.tensor(x.numpy())
        def call():
            main(tvm_x)
    """)
    assert growth < ALLOWED_GROWTH_KB
