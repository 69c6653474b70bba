"""What writing results back into a model input costs (issue 21): a convolution block whose
forward clamps and scales its input in place, compiled with tvmbridge (the writes computed in
TVM, the result copied into the caller's tensor at the end), against the same block written out
of place (no copy back) and eager PyTorch. One run, contenders interleaved; medians and
interquartile ranges. Every call gets a fresh copy of the same input.

    python bench/write_back.py [--repeat 40] [--size 224]
"""

from __future__ import annotations

import argparse
import warnings

import torch

import tvmbridge.torch as tt
from tvmbridge import benchmark


class Block(torch.nn.Module):
    def __init__(self, in_place: bool):
        super().__init__()
        self.in_place = in_place
        self.conv = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x):
        if self.in_place:
            x.clamp_(-2.0, 2.0)
            x.mul_(0.5)
        else:
            x = x.clamp(-2.0, 2.0) * 0.5
        return self.conv2(torch.relu(self.conv(x))).mean((2, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    x = torch.randn(1, 3, args.size, args.size)
    in_place, out_of_place = Block(True).eval(), Block(False).eval()
    out_of_place.load_state_dict(in_place.state_dict())
    with torch.no_grad():
        compiled = {}
        for name, model in (("in place", in_place), ("out of place", out_of_place)):
            traced = torch.jit.trace(model, x.clone(), check_trace=False)
            compiled[name] = tt.compile(traced, [x.clone()], never_slower=False)
        print(f"in place: {tt.report(compiled['in place']).summary()}")
        buffers = {name: x.clone() for name in ("eager", "in place", "out of place")}
        runners = {"eager": in_place, **compiled}
        timings = benchmark.measure_interleaved(
            {name: (lambda m=module, b=buffers[name]: m(b.copy_(x)))
             for name, module in runners.items()}, warmup=5, repeat=args.repeat)
    print(f"{benchmark.cpu_model()}; input 1x3x{args.size}x{args.size}, {args.repeat} rounds")
    for name, timing in timings.items():
        print(f"  {name:13s} median {timing.median_ms:7.3f} ms  IQR {timing.iqr} ms")


if __name__ == "__main__":
    main()
