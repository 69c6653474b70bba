"""The oneDNN kernels generated code calls (src/runtime/onednn_kernels.cc), called directly:
convolutions on primitives made once per weight and input shape, against PyTorch on seeded
generated cases, shrunk when one fails."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

bf16_kernels = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                                  reason="this CPU has no oneDNN bfloat16 kernels")


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """One weight, called with several batch sizes (each its own primitive, one packing)."""
    seed: int
    dtype: torch.dtype
    groups: int
    group_inputs: int
    group_outputs: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    size: int
    batches: tuple[int, ...]
    special_values: bool  # NaN, +inf and -inf in the input

    def shrunk(self):
        """Smaller cases, one size parameter down at a time."""
        for field, smallest in (("groups", 1), ("group_inputs", 1), ("group_outputs", 1),
                                ("kernel", 1), ("stride", 1), ("padding", 0), ("dilation", 1),
                                ("size", 1)):
            if getattr(self, field) > smallest:
                yield dataclasses.replace(self, **{field: getattr(self, field) - 1})
        if len(self.batches) > 1:
            yield dataclasses.replace(self, batches=self.batches[:1])


def generated_cases(count: int, seed: int, dtype: torch.dtype) -> list[ConvCase]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        kernel, dilation = rng.choice((1, 1, 3, 3, 5)), rng.choice((1, 1, 2))
        window = dilation * (kernel - 1) + 1
        cases.append(ConvCase(
            seed=seed * 1000 + index, dtype=dtype,
            groups=rng.choice((1, 1, 1, 2, 4)), group_inputs=rng.choice((1, 3, 8, 16, 24)),
            group_outputs=rng.choice((1, 4, 16, 32)), kernel=kernel,
            stride=rng.choice((1, 1, 2, 3)), padding=rng.randint(0, kernel // 2 + 1),
            dilation=dilation, size=rng.randint(max(1, window - 2), 20),
            batches=tuple(rng.sample((1, 2, 3, 5), k=rng.randint(1, 3))),
            special_values=rng.random() < 0.25))
    return cases


def check(case: ConvCase) -> str | None:
    """What differs from PyTorch in `case`, or None."""
    import tvm_ffi

    from tvmbridge import _native

    conv = _native.runtime_func("tvmbridge.aten.packed_conv2d")
    generator = torch.Generator().manual_seed(case.seed)
    weight = torch.randn(case.groups * case.group_outputs, case.group_inputs, case.kernel,
                         case.kernel, generator=generator).to(case.dtype)
    constant = tvm_ffi.from_dlpack(weight)  # alive as long as the calls, as a module's constant
    geometry = tvm_ffi.Shape([case.stride] * 2 + [case.padding] * 2 + [case.dilation] * 2
                             + [case.groups])
    window = case.dilation * (case.kernel - 1) + 1
    if case.size + 2 * case.padding < window:
        return None  # no output pixel: the kernel's refusal is tested by name below
    for batch in case.batches:
        x = torch.randn(batch, case.groups * case.group_inputs, case.size, case.size,
                        generator=generator).to(case.dtype)
        if case.special_values:
            flat = x.view(-1)
            for value in (float("nan"), float("inf"), float("-inf")):
                flat[torch.randint(flat.numel(), (1,), generator=generator)] = value
        result = torch.from_dlpack(conv(tvm_ffi.from_dlpack(x.permute(0, 2, 3, 1).contiguous()),
                                        constant, geometry)).permute(0, 3, 1, 2)
        expected = torch.nn.functional.conv2d(x.double(), weight.double(), stride=case.stride,
                                              padding=case.padding, dilation=case.dilation,
                                              groups=case.groups)
        if result.shape != expected.shape or result.dtype != case.dtype:
            return f"batch {batch}: {result.dtype} {list(result.shape)}, " \
                   f"expected {case.dtype} {list(expected.shape)}"
        actual = result.double()
        if not torch.equal(actual.isnan(), expected.isnan()):
            return f"batch {batch}: NaN at {int(actual.isnan().sum())} outputs, " \
                   f"PyTorch at {int(expected.isnan().sum())}"
        finite = expected.isfinite()
        if not torch.equal(actual[~finite & ~expected.isnan()],
                           expected[~finite & ~expected.isnan()]):
            return f"batch {batch}: infinities differ"
        # bfloat16: the result's own rounding (2^-8) and float32 accumulation of rounded
        # products; float32: accumulation order.
        scale = expected[finite].abs().max().item() if finite.any() else 1.0
        tolerance = 1e-2 * scale if case.dtype == torch.bfloat16 else 1e-5 * scale
        error = (actual[finite] - expected[finite]).abs().max().item() if finite.any() else 0.0
        if error > tolerance:
            return f"batch {batch}: largest error {error:.3g} over {tolerance:.3g}"
    return None


def smallest_failure(case: ConvCase) -> tuple[ConvCase, str]:
    problem = check(case)
    shrinking = True
    while shrinking:
        shrinking = False
        for smaller in case.shrunk():
            smaller_problem = check(smaller)
            if smaller_problem is not None:
                case, problem, shrinking = smaller, smaller_problem, True
                break
    return case, problem


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16,
                                                               marks=bf16_kernels)])
def test_packed_convolutions_match_pytorch_on_generated_cases(dtype):
    """Grouped, depthwise, strided, dilated and padded convolutions, each weight called with
    several batch sizes (one primitive per shape; later shapes read the weight as packed
    for the first), some inputs holding NaN and infinities: same shape, dtype, NaN mask and
    infinities as PyTorch's float64 convolution, values within the dtype's tolerance."""
    for case in generated_cases(40, seed=7, dtype=dtype):
        if check(case) is not None:
            smallest, problem = smallest_failure(case)
            pytest.fail(f"{problem} in {smallest}")


def test_packed_convolution_refuses_what_it_cannot_run_by_name():
    import tvm_ffi

    from tvmbridge import _native

    conv = _native.runtime_func("tvmbridge.aten.packed_conv2d")
    weight = tvm_ffi.from_dlpack(torch.randn(8, 4, 3, 3))
    geometry = tvm_ffi.Shape([1, 1, 0, 0, 1, 1, 1])
    with pytest.raises(Exception, match=r"NHWC input with 4 channels .* got \[1, 6, 6, 5\]"):
        conv(tvm_ffi.from_dlpack(torch.randn(1, 6, 6, 5)), weight, geometry)
    with pytest.raises(Exception, match=r"input \[1, 2, 2, 4\] is smaller than its 3x3 window"):
        conv(tvm_ffi.from_dlpack(torch.randn(1, 2, 2, 4)), weight, geometry)
    with pytest.raises(Exception, match="bfloat16 or float32 weight, got Double"):
        conv(tvm_ffi.from_dlpack(torch.randn(1, 6, 6, 4)),
             tvm_ffi.from_dlpack(torch.randn(8, 4, 3, 3).double()), geometry)
    with pytest.raises(Exception, match="weight was first used in 1 groups, now in 2"):
        conv(tvm_ffi.from_dlpack(torch.randn(1, 6, 6, 8)), weight,
             tvm_ffi.Shape([1, 1, 0, 0, 1, 1, 2]))
    # The kernel still serves its weight after the refusals, an empty batch too.
    empty = torch.from_dlpack(conv(tvm_ffi.from_dlpack(torch.randn(0, 6, 6, 4)), weight,
                                   geometry))
    assert empty.shape == (0, 4, 4, 8)
    x = torch.randn(1, 4, 6, 6)
    result = torch.from_dlpack(conv(tvm_ffi.from_dlpack(x.permute(0, 2, 3, 1).contiguous()),
                                    weight, geometry))
    expected = torch.nn.functional.conv2d(x, torch.from_dlpack(weight))
    torch.testing.assert_close(result.permute(0, 3, 1, 2), expected, rtol=1e-5, atol=1e-4)
