"""Writes the compiled modules the C++ tests load (the compiler pipeline is Python's).

For each case: <name>_compiled.pt (tvmbridge) and <name>_reference.pt (plain TorchScript of the
same weights), so the C++ tests compare the two on the same inputs.
"""

import sys
from pathlib import Path

import torch

import tvmbridge.torch as tt


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class TwoInputs(torch.nn.Module):
    def forward(self, x, y):
        return torch.relu(x + y), x * y - 1.0


CASES = {
    "small": (SmallNet, [tt.Input((2, 3, 16, 16))]),
    "two_inputs": (TwoInputs, [tt.Input((4, 8)), tt.Input((4, 8))]),
}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (model_class, inputs) in CASES.items():
        compiled_path = out / f"{name}_compiled.pt"
        if compiled_path.exists():
            continue  # fixtures depend only on this file and the pinned versions
        torch.manual_seed(0)
        model = model_class().eval()
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(out / f"{name}_reference.pt"))
        torch.jit.save(tt.compile(scripted, inputs), str(compiled_path))


if __name__ == "__main__":
    main(sys.argv[1])
