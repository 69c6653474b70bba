"""Calling a compiled module wrongly gives a Python exception naming the input.

The runtime raises ValueError/TypeError-kind c10 errors; the TorchScript interpreter that runs
the compiled module's forward rethrows them as RuntimeError with its traceback added."""

import pytest
import torch


@pytest.mark.parametrize(
    "args, error, fragments",
    [
        ((torch.randn(1, 3, 16, 16),), RuntimeError, ["input 0", "shape [1, 3, 16, 16]"]),
        ((torch.randn(2, 3, 16, 16, dtype=torch.float64),), RuntimeError, ["input 0", "float64"]),
        ((torch.randn(2, 3, 16, 16).transpose(2, 3),), RuntimeError, ["not contiguous"]),
        ((torch.empty(2, 3, 16, 16, device="meta"),), RuntimeError, ["meta", "CPU"]),
    ],
    ids=["shape", "dtype", "non-contiguous", "device"],
)
def test_bad_calls_raise(small_compiled, args, error, fragments):
    with pytest.raises(error) as info:
        small_compiled(*args)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_wrong_argument_count_is_caught_by_torchscript(small_compiled):
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(RuntimeError, match="forward"):
        small_compiled(x, x)


def test_list_where_a_tensor_goes(small_compiled):
    with pytest.raises(RuntimeError, match="Tensor"):
        small_compiled([torch.randn(2, 3, 16, 16)])


def test_requires_grad_input_still_computes(small_model, small_compiled):
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    with torch.no_grad():
        expected = small_model(x)
    torch.testing.assert_close(small_compiled(x), expected, rtol=1e-4, atol=1e-4)
