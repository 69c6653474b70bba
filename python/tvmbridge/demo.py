"""make demo: compile torchvision ResNet-18 with TVM, save it, run it from C++ with
tvmbridge-run, check it against PyTorch and compare latencies.

    python -m tvmbridge.demo [--model resnet18] [--repeat 20] [--out build/demo]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18", help="a torchvision classification model")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per contender (>= 20)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default="build/demo", help="where the compiled .pt is written")
    args = parser.parse_args(argv)

    threads = os.cpu_count() or 1

    import torch
    import torchvision

    import tvmbridge.torch as tt
    from tvmbridge import _native
    from tvmbridge.benchmark import measure

    torch.set_num_threads(threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = (1, 3, 224, 224)

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    scripted = torch.jit.script(model)
    print(f"compiling {args.model} (TorchScript, random weights) with TVM ...", flush=True)
    started = time.perf_counter()
    # never_slower=False: the demo shows TVM's own speed, even where PyTorch is faster.
    compiled = tt.compile(scripted, inputs=[tt.Input(shape)], never_slower=False)
    print(f"  compiled in {time.perf_counter() - started:.1f} s")
    saved = out_dir / f"{args.model}_tvm.pt"
    torch.jit.save(compiled, str(saved))
    print(f"  saved {saved} ({saved.stat().st_size / 2**20:.1f} MiB, self-contained)")

    loaded = torch.jit.load(str(saved))
    torch.manual_seed(0)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = model(x)
        actual = loaded(x)
    diff = (actual - expected).abs().max().item()
    print(f"  max |tvmbridge - PyTorch| = {diff:.3g} (tolerance 1e-4)")

    runner = _native.find_library(_native.RUNTIME_LIBRARY).parent / "tvmbridge-run"
    cpp_out = out_dir / "tvmbridge_run_output.pkl"
    result = subprocess.run(
        [str(runner), str(saved), "--input", "x".join(map(str, shape)) + ":float32", "--seed", "0",
         "--repeat", "1", "--warmup", "0", "--save-output", str(cpp_out)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return 1
    (cpp_actual,) = torch.load(cpp_out)
    cpp_diff = (cpp_actual - actual).abs().max().item()
    print(f"  tvmbridge-run (C++, no Python) max |C++ - Python| = {cpp_diff:.3g}")

    print(f"\nlatency, batch 1, {threads} threads, median of {args.repeat} runs after "
          f"{args.warmup} warm-up:")
    contenders = [("PyTorch eager", model), ("TorchScript", scripted), ("tvmbridge (TVM)", loaded)]
    timings = []
    with torch.no_grad():
        for name, module in contenders:
            timings.append((name, measure(lambda m=module: m(x), args.warmup, args.repeat)))
    eager_ms = timings[0][1].median_ms
    print(f"  {'':18}{'median ms':>11}{'p10-p90 ms':>18}{'speed vs eager':>16}")
    for name, timing in timings:
        print(f"  {name:18}{timing.median_ms:11.2f}{timing.spread:>18}"
              f"{eager_ms / timing.median_ms:15.2f}x")
    if timings[-1][1].median_ms > eager_ms:
        print("  tvmbridge is slower here: this build is untuned (default CPU schedules).\n"
              "  Auto-tuning makes it fast (tt.Tuning, `tvmbridge tune`, `make bench`); by\n"
              "  default compile keeps PyTorch for regions where TVM measures slower.")
    ok = diff <= 1e-4 and cpp_diff <= 1e-5
    print("\nresult:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
