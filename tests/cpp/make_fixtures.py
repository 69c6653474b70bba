"""Writes the compiled modules the C++ tests load (the compiler pipeline is Python's).

For each case: <name>_compiled.pt (tvmbridge) and <name>_reference.pt (plain TorchScript of the
same weights), so the C++ tests compare the two on the same inputs.
"""

import sys
from pathlib import Path

import torch

import tvmbridge.torch as tt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shared_models import DetectionHead, SmallNet, TwoInputs  # noqa: E402


CASES = {
    "small": (SmallNet, [tt.Input((2, 3, 16, 16))]),
    "two_inputs": (TwoInputs, [tt.Input((4, 8)), tt.Input((4, 8))]),
}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, (model_class, inputs) in CASES.items():
        compiled_path = out / f"{name}_compiled.pt"
        torch.manual_seed(0)  # always rebuilt (seconds): they must match the runtime built now
        model = model_class().eval()
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(out / f"{name}_reference.pt"))
        torch.jit.save(tt.compile(scripted, inputs, never_slower=False), str(compiled_path))
    write_hybrid_library(out)


def write_hybrid_library(out: Path) -> None:
    """detection_hybrid.so: DetectionHead as one TVM program whose data-dependent tail runs
    as TorchScript (from_torchscript(fallback="torchscript")), exported as a plain TVM library;
    detection_reference.pt: the same model in TorchScript."""
    from tvmbridge.build import build_library, host_target

    torch.manual_seed(0)
    scripted = torch.jit.script(DetectionHead().eval())
    torch.jit.save(scripted, str(out / "detection_reference.pt"))
    mod, _ = tt.from_torchscript(scripted, [tt.Input((1, 3, 16, 16))], fallback="torchscript")
    (out / "detection_hybrid.so").write_bytes(build_library(mod, host_target()))


if __name__ == "__main__":
    main(sys.argv[1])
