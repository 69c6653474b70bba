"""How much of each torchvision classification model TVM takes (explain only, no compile).

    python bench/partition_coverage.py [--models resnet18,mobilenet_v2] [--out FILE]

Prints, per model: TVM regions, nodes in TVM, nodes left to PyTorch and the op kinds left.
Outside CI: it instantiates every model (random weights), which takes minutes.
"""

import argparse
import collections
import time

import torch
import torchvision

import tvmbridge.torch as tt

# Hundreds of millions of parameters each: minutes to initialise on 2 cores, skipped unless
# named explicitly.
HUGE = {"vit_h_14", "regnet_y_128gf", "vit_l_16", "vit_l_32", "regnet_y_32gf"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    names = (args.models.split(",") if args.models else
             [n for n in torchvision.models.list_models(module=torchvision.models) if n not in HUGE])
    lines = [f"{'model':24} {'regions':>7} {'tvm nodes':>9} {'torch nodes':>11}  left to PyTorch"]
    print(lines[0], flush=True)
    for name in names:
        started = time.perf_counter()
        try:
            torch.manual_seed(0)
            model = torchvision.models.get_model(name, weights=None).eval()
            size = 299 if name == "inception_v3" else 224
            x = torch.randn(1, 3, size, size)
            try:
                ts = torch.jit.script(model)
            except Exception:
                ts = torch.jit.trace(model, x, check_trace=False)
            report = tt.explain(ts, [x])
            left = collections.Counter(n["kind"] for n in report.torch_nodes)
            tvm_nodes = sum(1 for n in report.nodes if n["region"] >= 0)
            line = (f"{name:24} {len(report.regions):7} {tvm_nodes:9} {len(report.torch_nodes):11}"
                    f"  {', '.join(f'{k} x{c}' for k, c in left.most_common(6))}")
        except Exception as error:  # report and go on: this is a survey
            line = f"{name:24} error: {str(error).splitlines()[0][:140]}"
        print(f"{line}  ({time.perf_counter() - started:.0f} s)", flush=True)
        lines.append(line)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
