"""precision="bf16" on every path, PyTorch's matrix-product kernels, and one thread pool.

Accuracy is stated as in README: cosine similarity with PyTorch's float32 output at least
0.999, and the largest error at most 3% of the output's largest magnitude (bfloat16 keeps 8
bits of mantissa; products accumulate in float32). Tests that bfloat16 was really used assert
that the error is above float32's.
"""

import pytest
import torch

import tvmbridge.torch as tt


class Block(torch.nn.Module):
    """A transformer block's matrix products: projections, attention, GELU feed-forward."""

    def __init__(self, width: int = 64, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, 4 * width)
        self.down = torch.nn.Linear(4 * width, width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
        mixed = (scores @ v).transpose(1, 2).reshape(batch, length, width)
        x = self.norm(x + self.out(mixed))
        return x + self.down(torch.nn.functional.gelu(self.up(x)))


def _model_and_input():
    torch.manual_seed(0)
    return Block().eval(), torch.randn(2, 16, 64)


def _accuracy(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    cosine = torch.nn.functional.cosine_similarity(actual.flatten(), expected.flatten(), dim=0)
    relative = (actual - expected).abs().max() / expected.abs().max()
    return cosine.item(), relative.item()


def _assert_bf16_accuracy(actual, expected):
    assert actual.dtype == expected.dtype == torch.float32  # outputs keep their dtype
    cosine, relative = _accuracy(actual, expected)
    assert cosine >= 0.999, f"cosine similarity {cosine}"
    assert relative <= 0.03, f"largest error {relative:.3g} of the output's magnitude"
    assert relative > 1e-5, "as exact as float32: the products did not run in bfloat16"


def test_fp32_default_matches_pytorch():
    model, x = _model_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", torch.bfloat16])
def test_bf16_torchscript_within_stated_accuracy(precision):
    model, x = _model_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False,
                          precision=precision)
    _assert_bf16_accuracy(compiled(x), model(x))
    # NaN stays NaN, in the rows it reaches, as in PyTorch.
    poisoned = x.clone()
    poisoned[0, 3, 5] = float("nan")
    torch.testing.assert_close(torch.isnan(compiled(poisoned)), torch.isnan(model(poisoned)))


def test_bf16_export_and_torch_compile_paths():
    model, x = _model_and_input()
    exported = tt.compile(model, [x], ir="export", precision="bf16")
    _assert_bf16_accuracy(exported(x), model(x))
    dynamo = torch.compile(model, backend="tvmbridge", options={"precision": "bf16"})
    _assert_bf16_accuracy(dynamo(x), model(x))
    misspelt = torch.compile(model, backend="tvmbridge", options={"precison": "bf16"})
    with pytest.raises(Exception, match="unknown option.s. precison; it takes target"):
        misspelt(x)


def test_bf16_enable():
    model, x = _model_and_input()
    frozen = torch.jit.freeze(torch.jit.trace(model, x))
    with torch.no_grad(), tt.enabled(cache_dir=None, precision="bf16", never_slower=False):
        for _ in range(3):  # TorchScript's profiling run, then the groups' first call
            result = frozen(x)
    _assert_bf16_accuracy(result, model(x))


def test_unknown_precision_is_refused_with_the_choices():
    model, x = _model_and_input()
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16.*'fp16'"):
        tt.compile(torch.jit.trace(model, x), [x], precision="fp16")


def test_parallel_loops_follow_torch_threads():
    """Compiled code runs its parallel loops on PyTorch's threads (src/runtime/
    torch_threads.cc): the same answer with one thread and with all of them."""
    model, x = _model_and_input()
    compiled = tt.compile(torch.jit.trace(model, x), [x], never_slower=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = compiled(x)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(compiled(x), single, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(single, model(x), rtol=1e-5, atol=1e-5)
