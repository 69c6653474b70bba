"""Converters one op family at a time: each module compiles whole (require_full_compilation)
and matches PyTorch (float32: rtol=atol=1e-5; integer results exactly)."""

import pytest
import torch
import torch.nn as nn

import tvmbridge.torch as tt


class Op(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _chunk(x):
    a, b, c = x.chunk(3, 1)
    return torch.cat([c, a * 2.0, b], 1)


def _split(x):
    parts = x.split([2, 5], dim=1)
    return parts[1].sum(1) + parts[0].mean(1)


def _split_size(x):
    a, b, c, d = torch.split(x, 2, dim=1)
    return a - b + c * d


def _slices(x):
    return x[:, 1:5:2] + x[:, -2:] * x[0, :2]


def _select_unsqueeze(x):
    return x.select(1, -1).unsqueeze(1) * x + x[:, 3].unsqueeze(-1)


def _squeeze_expand(x):
    y = x.mean(1, keepdim=True)        # [4, 1]
    return y.expand(-1, 7) + y.squeeze(1).unsqueeze(0).expand_as(x.t()).t()


def _where_pow(x):
    return torch.where(x > 0, x.pow(2.0), x * 0.5)


def _argmax(x):
    return x.argmax(1) + x.argmin(0).sum()


def _topk(x):
    values, indices = x.topk(3, dim=1)
    return values * 2.0, indices


def _einsum(x):
    return torch.einsum("ij,kj->ik", x, x * 0.5)


def _logic(x):
    inside = (x >= -0.5) & (x < 0.9) | (x == 0.25)
    return torch.where(~inside ^ (x > 1.5), x, -x)


def _to_type_as(x):
    truncated = (x * 3).to(torch.int64).to(torch.float32)
    return truncated + x.to(x.dtype) + (x > 0).type_as(x), (x * 3).to(torch.int32)


def _creation(x):
    row = torch.arange(7, dtype=torch.float32) * x + torch.arange(1, 8)
    return (row + x.new_ones([4, 1]) + torch.zeros_like(x) + torch.full_like(x, 2.5)
            + x.new_full([7], -1.0) + torch.ones(4, 7, dtype=torch.float32))


def _gather(x):
    return x.gather(1, torch.tensor([[0, 6], [1, 1], [2, 3], [6, 5]]))


def _index(x):
    y = x.unsqueeze(2).expand(4, 7, 3) * torch.arange(1, 4)
    rows = torch.tensor([3, 0, -1])
    return (x[rows], x[torch.tensor([0, 2]), torch.tensor([1, -1])],
            y[:, torch.tensor([1, 2]), torch.tensor([[0], [2]])],   # adjacent, after a slice
            y[torch.tensor([1, 2]), :, torch.tensor([0, 2])])       # apart: index dims lead


def _attention(x):
    q = x.reshape(1, 1, 4, 7)
    k, v = q * 0.5 - 0.1, q + 1.0
    sdpa = torch.nn.functional.scaled_dot_product_attention
    keep = torch.tensor([[True, False, True, True]]).expand(4, 4)
    bias = x[:, :4] * 0.1
    return (sdpa(q, k, v), sdpa(q, k, v, attn_mask=keep), sdpa(q, k, v, attn_mask=bias),
            sdpa(q, k, v, is_causal=True), sdpa(q, k, v, scale=0.3))


def _promotion(x):
    i = (x * 4).to(torch.int64)
    return i * 0.5, i / 3, i + torch.tensor(2.5), i > x, i * 2, x.to(torch.float64) + x


def _unary_math(x):
    positive = x.abs() + 0.1
    inf_where_not_positive = x / (x > 0).to(torch.float32)       # +-inf: finite, inf checks
    return (torch.tan(x * 0.5), torch.sinh(x), torch.cosh(x * 0.5), torch.asin(torch.tanh(x)),
            torch.acos(torch.tanh(x) * 0.9), torch.atan(x), torch.log2(positive),
            torch.log10(positive), torch.log1p(positive), torch.trunc(x * 3), torch.square(x),
            torch.reciprocal(positive), torch.isfinite(inf_where_not_positive),
            torch.isinf(inf_where_not_positive), torch.isnan(x), x.clamp_min(-0.2),
            x.clamp_max(0.3), torch.rsub(x, 2.0), torch.rsub(x, 1.0, alpha=3),
            torch.true_divide(x, 3))


def _unary_integer(x):
    # PyTorch: floating functions of integers give float32; the others keep int64.
    i = (x * 4).to(torch.int64)
    return (torch.sin(i), torch.sqrt(i.abs()), torch.exp(i), torch.sigmoid(i),
            torch.log2(i.abs() + 1), torch.reciprocal(i.abs() + 1), torch.floor(i), i.abs(),
            -i, torch.sign(i), torch.square(i), torch.isnan(i), torch.round(i))


def _activations(x):
    F = torch.nn.functional
    y = x * 3
    channels = y.reshape(2, 2, 7)
    return (F.elu(y), F.elu(y, alpha=0.5), F.selu(y), F.celu(y, alpha=2.0), F.softplus(y),
            F.softplus(y, beta=2.0, threshold=3.0), F.logsigmoid(y), F.threshold(y, 0.3, -1.0),
            F.prelu(channels, torch.tensor([0.25, -0.5])), F.prelu(y, torch.tensor([0.1])),
            F.glu(y[:, :6]), F.glu(channels, dim=1))


def _logical(x):
    return (torch.logical_and(x > 0, x < 1), torch.logical_or(x, x > 1),
            torch.logical_xor(x > 0, (x * 4).to(torch.int64)))


CASES = {
    "chunk": _chunk, "split": _split, "split_size": _split_size, "slice": _slices,
    "select_unsqueeze": _select_unsqueeze, "squeeze_expand": _squeeze_expand,
    "where_pow": _where_pow, "argmax_argmin": _argmax, "topk": _topk, "einsum": _einsum,
    "logic": _logic, "to_type_as": _to_type_as, "creation": _creation, "gather": _gather,
    "index": _index, "attention": _attention, "promotion": _promotion,
    "unary_math": _unary_math, "unary_integer": _unary_integer, "logical": _logical,
    "activations": _activations,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_family_matches_pytorch(name):
    torch.manual_seed(0)
    model = Op(CASES[name])
    x = torch.randn(4, 7) if name != "split_size" else torch.randn(4, 8)
    compiled = tt.compile(torch.jit.script(model), inputs=[x], require_full_compilation=True,
                          never_slower=False)
    expected, actual = model(x), compiled(x)
    if isinstance(expected, torch.Tensor):
        expected, actual = (expected,), (actual,)
    for e, a in zip(expected, actual):
        assert a.dtype == e.dtype and a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(10, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, ids):
        picked = self.table(ids).index_select(0, torch.tensor([2, 0]))
        return self.out(picked)


def test_embedding_and_index_select_with_integer_input():
    torch.manual_seed(0)
    model = Embed().eval()
    ids = torch.tensor([3, 1, 9])
    compiled = tt.compile(torch.jit.script(model), inputs=[tt.Input((3,), torch.int64)],
                          require_full_compilation=True, never_slower=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-5, atol=1e-5)


class TracedShapeArithmetic(nn.Module):
    """What tracing makes of `x.size(1) + 0` used as a bound: NumToTensor, a tensor add and
    Int, which must fold to a constant rather than stop the conversion."""

    def forward(self, x):
        length = torch.tensor(x.size(1)) + 0
        positions = torch.arange(16)[:length]
        return x * positions


def test_traced_shape_arithmetic_folds():
    import tvm

    x = torch.randn(2, 5)
    traced = torch.jit.trace(TracedShapeArithmetic(), x)
    assert "prim::NumToTensor" in str(traced.graph)
    mod, _ = tt.from_torchscript(traced, [x])
    assert isinstance(mod, tvm.IRModule)
    compiled = tt.compile(traced, [x], require_full_compilation=True, never_slower=False)
    torch.testing.assert_close(compiled(x), x * torch.arange(5))
