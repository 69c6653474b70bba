"""Calling a compiled module wrongly gives a Python exception naming the input and what was
expected; the module keeps working afterwards.

The runtime raises ValueError/TypeError-kind c10 errors; the TorchScript interpreter that runs
the compiled module's forward rethrows them as RuntimeError with its traceback added. The same
table runs from C++ in tests/cpp/test_runtime.cc."""

import pytest
import torch

GOOD_SHAPE = (2, 3, 16, 16)

BAD_CALLS = {
    "two inputs for one": ((torch.randn(GOOD_SHAPE), torch.randn(GOOD_SHAPE)), ["forward"]),
    "no input": ((), ["forward", "x"]),
    "wrong shape": ((torch.randn(1, 3, 16, 16),), ["input 0", "shape [1, 3, 16, 16]",
                                                    "float32[2, 3, 16, 16]"]),
    "wrong rank": ((torch.randn(3, 16, 16),), ["input 0", "shape [3, 16, 16]"]),
    "zero-size": ((torch.randn(0, 3, 16, 16),), ["input 0", "shape [0, 3, 16, 16]"]),
    "float64": ((torch.randn(GOOD_SHAPE, dtype=torch.float64),), ["input 0", "float64"]),
    "int64": ((torch.zeros(GOOD_SHAPE, dtype=torch.int64),), ["input 0", "int64"]),
    "non-contiguous": ((torch.randn(GOOD_SHAPE).transpose(2, 3),), ["input 0", "not contiguous"]),
    "meta device": ((torch.empty(GOOD_SHAPE, device="meta"),), ["input 0", "meta", "CPU"]),
    "a list where a tensor goes": (([torch.randn(GOOD_SHAPE)],), ["Tensor"]),
    "an int where a tensor goes": ((3,), ["Tensor"]),
    "None where a tensor goes": ((None,), ["Tensor"]),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_call_is_refused_and_module_keeps_working(small_model, small_compiled, case):
    args, fragments = BAD_CALLS[case]
    with pytest.raises(RuntimeError) as info:
        small_compiled(*args)
    for fragment in fragments:
        assert fragment in str(info.value)
    x = torch.randn(GOOD_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small_compiled(x), small_model(x), rtol=1e-4, atol=1e-4)


def test_requires_grad_input_still_computes(small_model, small_compiled):
    x = torch.randn(GOOD_SHAPE, requires_grad=True)
    with torch.no_grad():
        expected = small_model(x)
    torch.testing.assert_close(small_compiled(x), expected, rtol=1e-4, atol=1e-4)
