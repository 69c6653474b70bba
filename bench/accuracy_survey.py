"""Compiles torchvision classification models with tvmbridge and compares with PyTorch.

    python bench/accuracy_survey.py [--models a,b,c]

Random weights (batch-norm statistics randomised too), batch 1, float32. Prints the max
absolute and relative difference, TVM regions and compile time per model. Outside CI.
"""

import argparse
import time

import torch
import torchvision

import tvmbridge.torch as tt

DEFAULT = ("resnet18,mobilenet_v2,mobilenet_v3_small,efficientnet_b0,convnext_tiny,"
           "regnet_y_400mf,mnasnet0_5,squeezenet1_1,shufflenet_v2_x0_5,densenet121,googlenet,"
           "vgg11_bn,alexnet,resnext50_32x4d,maxvit_t,swin_t,vit_b_16")


def randomize_(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=DEFAULT)
    args = parser.parse_args()
    print(f"{'model':22} {'max abs diff':>12} {'max rel diff':>12} {'regions':>7} {'compile s':>9}")
    for name in args.models.split(","):
        try:
            torch.manual_seed(0)
            model = randomize_(torchvision.models.get_model(name, weights=None))
            x = torch.randn(1, 3, 224, 224)
            try:
                ts = torch.jit.script(model)
            except Exception:
                ts = torch.jit.trace(model, x, check_trace=False)
            started = time.perf_counter()
            compiled = tt.compile(ts, inputs=[x])
            seconds = time.perf_counter() - started
            with torch.no_grad():
                expected, actual = ts(x), compiled(x)
            if isinstance(expected, tuple):
                expected, actual = expected[0], actual[0]
            diff = (actual - expected).abs().max().item()
            rel = diff / max(expected.abs().max().item(), 1e-12)
            regions = len(tt.explain(ts, [x]).regions)
            print(f"{name:22} {diff:12.3g} {rel:12.3g} {regions:7} {seconds:9.1f}", flush=True)
        except Exception as error:
            print(f"{name:22} error: {str(error).splitlines()[0][:150]}", flush=True)


if __name__ == "__main__":
    main()
