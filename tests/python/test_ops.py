"""Converters one op family at a time: each module compiles whole (require_full_compilation)
and matches PyTorch in dtype, shape and values (float32: rtol=atol=1e-5; integer results
exactly)."""

import warnings
from typing import Optional

import pytest
import torch
import torch.nn as nn
from torchvision.ops import deform_conv2d

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


# Families added for the old frontend's op list (issue 3).
F = torch.nn.functional

def _reductions(x):
    i = (x * 4).to(torch.int64)
    return (x.prod(1), i.prod(), x.amax(1), x.amin([0, 1]), x.max(), x.min(0)[0],
            x.max(1, keepdim=True)[1], torch.maximum(x, x.flip(0)), x.min(x * 0.5),
            x.sum(1, dtype=torch.float64), i.sum(0), (x > 0).sum(), x.mean([0], keepdim=True))

def _moments(x):
    return (x.std(), x.var(1), x.std(1, unbiased=False, keepdim=True),
            torch.var(x, 0, correction=0), torch.var_mean(x, 1)[0], torch.var_mean(x, 1)[1], torch.std_mean(x, [0, 1])[0])

def _norms(x):
    return (x.norm(), x.norm(1, 1), torch.norm(x, float("inf"), [0]), x.norm(3.0, 1, True),
            torch.linalg.vector_norm(x, 2, 1), torch.linalg.vector_norm(x, 0.5),
            torch.frobenius_norm(x, [0, 1]))

def _logsumexp_all_any(x):
    return (torch.logsumexp(x * 30, 1), torch.logsumexp(x, [0, 1], keepdim=True),
            (x > 0).all(), (x > 0).any(1), (x > -3).all(0, keepdim=True), (x != 0).any())

def _cumsum(x):
    return x.cumsum(1), (x * 3).to(torch.int32).cumsum(0), torch.cumsum(x, -1, dtype=torch.float64)

def _losses(x):
    target = torch.tensor([1, 0, 6, 3])
    logp = F.log_softmax(x, 1)
    w = torch.arange(7, dtype=torch.float32) + 1
    return (F.nll_loss(logp, target), F.nll_loss(logp, target, reduction="sum"),
            F.nll_loss(logp, target, weight=w, ignore_index=6), F.cross_entropy(x, target),
            F.cross_entropy(x, target, reduction="none", weight=w), F.l1_loss(x, x.flip(1)),
            F.mse_loss(x, x * 0.3, reduction="sum"))

def _layout(x):
    return (x.repeat(2, 1, 3), x.tile((2,)), x.repeat_interleave(2, 1),
            x.repeat_interleave(torch.tensor([1, 0, 2, 1]), 0), torch.stack([x, x * 2], 1),
            x.unbind(1)[3], x.narrow(1, 2, 3), x.flip([0, 1]), x.roll(2, 1),
            x.roll((1, -2), (0, 1)), x.roll(5), x.unflatten(1, (7, 1)), x.movedim(0, 1),
            torch.broadcast_tensors(x, x[:1])[1], x.tensor_split(3, 1)[2],
            x.tensor_split([1, 5], 1)[1], x.tril(), x.triu(1), x.T, x.swapaxes(0, 1),
            x.view_as(x.t()), torch.broadcast_to(x[:1], (4, 7)), x.unsafe_chunk(2, 1)[1])

def _meshgrid(x):
    a, b = torch.meshgrid(x[0], x[1, :3], indexing="ij")
    c, d = torch.meshgrid(x[0], x[1, :3], indexing="xy")
    return a, b * 2, c, d

def _padding(x):
    y = x.reshape(1, 2, 2, 7)
    return (F.pad(x, (1, 2)), F.pad(x, (1, 2, 3, 0), value=1.5), F.pad(y, (2, 3, 1, 1), "reflect"),
            F.pad(y, (2, 3, 1, 1), "replicate"), F.pad(y, (1, 1, 1, 0), "circular"),
            F.pad(x, (-1, 2)), F.pad(x.reshape(1, 4, 7), (2, 1), "reflect"))

def _scalars(x):
    n = x.numel()
    floating = x.is_floating_point()
    shape = torch._shape_as_tensor(x)
    return x * n + float(floating), shape + 1

def _elementwise_more(x):
    i = (x * 4).to(torch.int64)
    return (torch.lerp(x, x * 2, 0.3), torch.lerp(x, -x, x.sigmoid()), torch.floor_divide(i, 3),
            x // 0.3, torch.fmod(i, 3), torch.fmod(x, 0.4), torch.remainder(i, -3),
            x % 0.4, torch.addcmul(x, x, x, value=0.5), torch.addcdiv(x, x, x.abs() + 1),
            x.masked_fill(x > 0, -1.0), i << 2, i >> 1, torch.div(i, 3, rounding_mode="floor"),
            torch.div(x, 0.3, rounding_mode="trunc"), torch.div(i, -3, rounding_mode="trunc"))

def _fill_zero(x):
    y = x * 2
    y.zero_()
    z = x + 1
    z.fill_(3.5)
    return y + z

def _index_more(x):
    idx = torch.tensor([[0, 6, 2], [1, 1, 5], [2, 3, 0], [6, 5, 4]])
    src = x * 10
    return (x.scatter(1, idx, src), x.scatter(1, idx, 2.5), x.scatter_add(1, idx, src),
            x.scatter_reduce(1, idx, src, "amax"), x.scatter(1, idx[:, :2], src, reduce="add"),
            torch.sort(x, 1)[0], torch.sort(x, 0, descending=True)[1], torch.argsort(x, 1),
            torch.take(x, torch.tensor([0, 27, 13])),
            F.one_hot(torch.tensor([0, 3, 2]), 5),
            torch.bucketize(x, torch.tensor([-1.0, 0.0, 0.5])),
            torch.searchsorted(torch.tensor([-1.0, 0.0, 0.5]), x, right=True),
            torch.slice_scatter(x, x[:, :2] * 0, 1, 3, 5), torch.select_scatter(x, x[0] * 3, 0, 2))

def _index_put(x):
    y = x.clone()
    y[torch.tensor([0, 2])] = torch.ones(2, 7)
    z = x.clone()
    z[x > 0] = 0.5
    w = x.index_put((torch.tensor([1, 3]), torch.tensor([0, 6])), torch.tensor([9.0, 8.0]),
                    accumulate=True)
    return y, z, w

def _slice_writes(x):
    # copy_ through a slice and a select, a number written into a slice of slices, add_
    # into a row: each becomes a scatter of the fresh tensor.
    y = x.clone()
    y[1:3, 0] = x[0, :2] * 5.0
    z = torch.zeros(4, 7)
    z[:, 2:5] = 1.0
    z[0] += x[1]
    return y, z + x


def _list_appends(x):
    # DenseNet's pattern: a list read (cat) between appends, in a loop the shapes unroll.
    features = [x]
    for _ in range(3):
        features.append(torch.cat(features, 1).sum(1, keepdim=True) * 0.5)
    return torch.cat(features, 1)


def _warn_and_none_checks(x, h: Optional[torch.Tensor] = None):
    # GoogLeNet's scripted warning; `h is None` and `x is x` as inlined modules leave them.
    warnings.warn("a scripted model's warning")
    if h is None:
        h = x * 2.0
    if x is x:
        h = h + 1.0
    return h


def _half_bfloat16(x):
    # Type promotion with float16 and bfloat16 operands (numbers, bool and int64 tensors).
    h = x.to(torch.float16)
    b = x.to(torch.bfloat16)
    return (h * 2.5 + h, (h > 0) & (x < 1), b + 1.0, h.to(torch.float32) + x,
            b * torch.tensor(3, dtype=torch.int64), h + (x > 0))


def _norm_layers(x):
    y = x.reshape(1, 4, 7)
    img = x.reshape(1, 4, 1, 7).expand(2, 4, 3, 7) * torch.arange(1, 4).reshape(1, 1, 3, 1)
    w = torch.arange(4, dtype=torch.float32) * 0.5
    return (F.instance_norm(y), F.instance_norm(img, weight=w, bias=-w),
            F.group_norm(img, 2, w, w), F.group_norm(y, 4), F.layer_norm(x, (7,)),
            torch._weight_norm(x, x[:, :1].abs() + 1, 0))

def _pools_linalg(x):
    img = x.reshape(1, 1, 4, 7).expand(1, 2, 4, 7) * 1.0
    return (F.adaptive_max_pool2d(img[..., :6], (2, 3)), F.adaptive_max_pool1d(x.reshape(1, 4, 7), 7),
            F.max_pool2d(img, 2, return_indices=True)[0],
            F.max_pool2d(img, 3, 2, 1, return_indices=True)[1],  # the indices (max_unpool's)
            F.adaptive_max_pool2d(img[..., :6], (3, 4), return_indices=True)[1],
            torch.baddbmm(x.reshape(1, 4, 7), x.reshape(1, 4, 7), (x.t() @ x).reshape(1, 7, 7), beta=0.5, alpha=2.0),
            torch.dot(x[0], x[1]), torch.mv(x, x[0]), torch.outer(x[0], x[1, :3]))

def _images(x):
    img = x.reshape(1, 1, 4, 7).expand(1, 3, 4, 7) * torch.tensor([1.0, 2.0, -1.0]).reshape(1, 3, 1, 1)
    grid = torch.tanh(x[:2].reshape(1, 2, 7, 1).expand(1, 2, 7, 2) * torch.tensor([1.0, -0.7]))
    return (F.interpolate(img, scale_factor=2.0, mode="nearest"), F.interpolate(img, size=(5, 9)),
            F.interpolate(img, size=(6, 10), mode="bilinear"),
            F.interpolate(img, size=(6, 10), mode="bilinear", align_corners=True),
            F.interpolate(img, scale_factor=2.0, mode="bicubic"),
            F.interpolate(x.reshape(1, 4, 7), size=11, mode="linear"),
            F.interpolate(x.reshape(1, 4, 7), scale_factor=3.0, mode="nearest"),
            F.interpolate(img.reshape(1, 3, 1, 4, 7), size=(2, 5, 9), mode="trilinear"),
            F.grid_sample(img, grid, align_corners=False),
            F.grid_sample(img, grid, mode="nearest", padding_mode="border", align_corners=True),
            F.pixel_shuffle(img.reshape(1, 12, 1, 7)[:, :, :, :6].reshape(1, 12, 2, 3), 2),
            F.pixel_unshuffle(img[:, :, :, :6], 2))


def _op_variants(x):
    # Argument forms of the deleted frontend's suite (issue 21): adaptive max pooling with
    # uneven windows, instance norm in float64, scatter_reduce's mean and include_self=False,
    # clamp with tensor bounds, cross_entropy with class probabilities, 5-d grid_sample.
    img = x.reshape(1, 1, 4, 7).expand(1, 2, 4, 7) * torch.tensor([1.0, -2.0]).reshape(1, 2, 1, 1)
    vol = img.reshape(1, 2, 2, 2, 7)
    idx = torch.tensor([[0, 6, 6], [1, 1, 5], [2, 3, 3], [6, 5, 6]])
    src = x[:, :3] * 10
    grid = torch.tanh(x[:3, :6].reshape(1, 1, 2, 3, 3)) * 1.2
    return (F.adaptive_max_pool2d(img, (3, 5)), F.adaptive_max_pool3d(vol, (1, 2, 3)),
            F.adaptive_max_pool1d(x.reshape(1, 4, 7), 4),
            F.instance_norm(img.double() + x[0, :1].double() * torch.arange(7.0, dtype=torch.float64)),
            x.scatter_reduce(1, idx, src, "mean"),
            x.scatter_reduce(1, idx, src, "mean", include_self=False),
            x.scatter_reduce(1, idx, src, "amax", include_self=False),
            x.scatter_reduce(1, idx, src, "prod", include_self=False),
            (x * 4).long().scatter_reduce(1, idx, (src * 3).long(), "amin", include_self=False),
            torch.clamp(x, x[0], x[1].abs()), torch.clamp(x, min=x[:, :1]),
            torch.clamp((x * 3).long(), max=x[2]),
            # class probabilities as targets, with weights and label smoothing
            F.cross_entropy(x, torch.softmax(x.flip(0), 1)),
            F.cross_entropy(x, torch.softmax(x * 2, 1), weight=x[0].abs() + 0.5,
                            reduction="sum", label_smoothing=0.2),
            F.cross_entropy(x.reshape(1, 4, 7), torch.softmax(x.reshape(1, 4, 7) * 3, 1),
                            reduction="none"),
            # 5-d grid sampling (volumes), coordinates beyond [-1, 1] included
            F.grid_sample(vol, grid, align_corners=False),
            F.grid_sample(vol, grid, mode="nearest", padding_mode="border", align_corners=True),
            F.grid_sample(vol, grid, padding_mode="reflection", align_corners=True))


CASES = {
    "chunk": _chunk, "split": _split, "split_size": _split_size, "slice": _slices,
    "select_unsqueeze": _select_unsqueeze, "squeeze_expand": _squeeze_expand,
    "where_pow": _where_pow, "argmax_argmin": _argmax, "topk": _topk, "einsum": _einsum,
    "logic": _logic, "to_type_as": _to_type_as, "creation": _creation, "gather": _gather,
    "index": _index, "attention": _attention, "promotion": _promotion,
    "unary_math": _unary_math, "unary_integer": _unary_integer, "logical": _logical,
    "activations": _activations,
    "reductions": _reductions,
    "moments": _moments,
    "norms": _norms,
    "logsumexp_all_any": _logsumexp_all_any,
    "cumsum": _cumsum,
    "losses": _losses,
    "layout": _layout,
    "meshgrid": _meshgrid,
    "padding": _padding,
    "scalars": _scalars,
    "elementwise_more": _elementwise_more,
    "fill_zero": _fill_zero,
    "index_more": _index_more,
    "index_put": _index_put,
    "slice_writes": _slice_writes,
    "list_appends": _list_appends,
    "half_bfloat16": _half_bfloat16,
    "warn_and_none_checks": _warn_and_none_checks,
    "norm_layers": _norm_layers,
    "pools_linalg": _pools_linalg,
    "images": _images,
    "op_variants": _op_variants,
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
        # Half precision to its own precision: on CPUs with AVX512-FP16, LLVM fuses h * 2.5 + h
        # into one rounding where PyTorch rounds twice (1 ulp apart on an AMX Xeon).
        tolerance = {torch.float16: 1e-3, torch.bfloat16: 1e-2}.get(e.dtype, 1e-5)
        torch.testing.assert_close(a, e, rtol=tolerance, atol=tolerance)


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


class UnpackedShape(nn.Module):
    """`a, b, c = h.shape` of a tensor computed in the graph (nn.MultiheadAttention's
    `tgt_len, bsz, embed_dim = query.shape` after its transpose)."""

    def forward(self, x):
        h = x.transpose(0, 1)
        length, batch, width = h.shape
        return h.reshape(length, batch * width) * float(width)


def test_unpacking_the_shape_of_a_computed_tensor_converts():
    """from_torchscript knows only the inputs' shapes before converting, so the converter
    unpacks the constant list aten::size gives it (it refused: "cannot unpack this value")."""
    from differential import run_on_vm

    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(run_on_vm(UnpackedShape(), x)[0], UnpackedShape()(x))


class DeformConv(nn.Module):
    """torchvision's deformable convolution with offsets (and a mask) computed from the input,
    as detection models use it."""

    def __init__(self, stride=1, padding=1, dilation=1, groups=1, offset_groups=1, mask=True,
                 bias=True):
        super().__init__()
        k, channels = 3, 4
        self.weight = nn.Parameter(torch.randn(6, channels // groups, k, k) * 0.3)
        self.bias = nn.Parameter(torch.randn(6)) if bias else None
        conv = dict(kernel_size=k, stride=stride, padding=padding, dilation=dilation)
        self.offset = nn.Conv2d(channels, 2 * offset_groups * k * k, **conv)
        self.mask = nn.Conv2d(channels, offset_groups * k * k, **conv) if mask else None
        self.geometry = ((stride, stride), (padding, padding), (dilation, dilation))

    def forward(self, x):
        mask = torch.sigmoid(self.mask(x)) if self.mask is not None else None
        stride, padding, dilation = self.geometry
        return deform_conv2d(x, self.offset(x) * 2.0, self.weight, self.bias, stride=stride,
                             padding=padding, dilation=dilation, mask=mask)


DEFORM_CASES = {
    "masked": {},
    "plain": dict(mask=False, bias=False),
    "strided": dict(stride=2, padding=0),
    "grouped": dict(groups=2, offset_groups=2),
    "dilated": dict(dilation=2, padding=2),
}


@pytest.mark.parametrize("way", ["trace", "script"])
@pytest.mark.parametrize("case", sorted(DEFORM_CASES))
def test_deform_conv2d_matches_torchvision(case, way):
    """Offsets of about +-2 pixels send samples across pixel borders and off the image."""
    torch.manual_seed(0)
    model = DeformConv(**DEFORM_CASES[case]).eval()
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.trace(model, x) if way == "trace" else torch.jit.script(model)
        compiled = tt.compile(module, [x], require_full_compilation=True, never_slower=False)
        x = torch.randn(2, 4, 9, 11)
        expected = model(x)
        torch.testing.assert_close(compiled(x), expected, rtol=1e-5,
                                   atol=1e-5 * expected.abs().max().item())


def _half_instance_norm(x):
    return F.instance_norm(x.reshape(2, 2, 7) * 50.0 + 3.0)


def test_half_precision_instance_norm_computes_in_float32():
    """PyTorch normalises float16 and bfloat16 in float32 and rounds once; TVM's own
    instance_norm would compute float16 in float16 (and refuses bfloat16 and float64)."""
    torch.manual_seed(0)
    model = Op(_half_instance_norm)
    for dtype, tolerance in ((torch.float16, 1e-3), (torch.bfloat16, 8e-3)):
        x = torch.randn(4, 7).to(dtype)
        compiled = tt.compile(torch.jit.script(model), inputs=[x], require_full_compilation=True,
                              never_slower=False)
        expected, actual = model(x), compiled(x)
        assert actual.dtype == dtype
        torch.testing.assert_close(actual.float(), expected.float(), rtol=tolerance, atol=tolerance)


def test_tensor_clamp_bounds_keep_nan():
    """clamp with tensor bounds is minimum(maximum(x, min), max): NaN anywhere gives NaN."""
    model = torch.jit.script(Op3())
    x = torch.tensor([float("nan"), 1.0, 2.0, -3.0, 0.5])
    low = torch.tensor([0.0, float("nan"), 0.0, 0.0, 2.0])
    high = torch.tensor([1.0, 1.0, -1.0, 1.0, 1.0])  # low > high: high, as PyTorch
    compiled = tt.compile(model, inputs=[x, low, high], require_full_compilation=True,
                          never_slower=False)
    torch.testing.assert_close(compiled(x, low, high), model(x, low, high), equal_nan=True)
    assert compiled(x, low, high).isnan().tolist() == [True, True, False, False, False]


class Op3(nn.Module):
    def forward(self, x, low, high):
        return torch.clamp(x, low, high)


def _wide_pool_indices(x):
    return F.max_pool1d(x.reshape(1, 1, 70), 65, 5, return_indices=True)[1] + 1


def test_max_pool_indices_over_a_wide_window_stay_in_pytorch():
    """Pooling indices are gathered tap by tap, at most 64 a window per axis: a wider window
    is refused by name, its node runs in PyTorch, and the rest compiles."""
    model = torch.jit.script(Op(_wide_pool_indices))
    x = torch.randn(70)
    explanation = tt.explain(model, [x], min_block_size=1)
    (pool,) = [n for n in explanation.nodes if n["kind"] == "aten::max_pool1d_with_indices"]
    assert pool["fallback"] and "a window of 65 positions" in pool["reason"]
    assert "at most 64" in pool["reason"]
    compiled = tt.compile(model, [x], min_block_size=1, never_slower=False)
    assert len(tt.report(compiled).regions) == 2  # the reshape before it, the + 1 after
    assert torch.equal(compiled(x), model(x))


def _without_elements(x):
    return torch.relu(x) * 2.0 + x.sign()


def test_tensors_without_elements_cross_into_tvm():
    """PyTorch gives a [2, 0] tensor strides (1, 1); TVM calls only (0, 1) compact, and
    refused the other ("expected to be compact array") until the bridge gave it those."""
    model = torch.jit.script(Op(_without_elements))
    x = torch.randn(2, 0)
    compiled = tt.compile(model, [x], require_full_compilation=True, never_slower=False)
    assert compiled(x).shape == (2, 0) and compiled(x).dtype == torch.float32


class OutForms(nn.Module):
    def forward(self, x, y):
        most, least, chosen, total = (torch.empty_like(x) for _ in range(4))
        torch.max(x, y, out=most)
        torch.min(x, y, out=least)
        torch.where(x > y, x, y, out=chosen)
        torch.add(x, y, out=total)
        return most * 2.0, least - 1.0, chosen * 3.0, total * 0.5


def test_out_forms_stay_in_pytorch():
    """An out= overload writes into its `out` argument, which converters made for the
    functional forms do not: the readers of `out` read what it held before (max.out ran as
    max's reduction, add.out as add, both with wrong results). They stay in PyTorch."""
    model = torch.jit.script(OutForms())
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    x[0, 0], y[1, 1] = float("nan"), float("nan")
    explanation = tt.explain(model, [x, y], min_block_size=1)
    placed = {n["kind"]: n["fallback"] for n in explanation.nodes
              if n["kind"] in ("aten::max", "aten::min", "aten::where", "aten::add")}
    assert placed == {"aten::max": True, "aten::min": True, "aten::where": True,
                      "aten::add": True}
    compiled = tt.compile(model, [x, y], min_block_size=1, never_slower=False)
    for actual, expected in zip(compiled(x, y), model(x, y)):
        torch.testing.assert_close(actual, expected, equal_nan=True)
