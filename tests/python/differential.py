"""Generated differential tests: converter families against PyTorch on seeded random cases.

Each case is one op with generated arguments: shapes with size-1 and size-0 extents, indices
in range, at the bounds and beyond (negative too), integer divisors that are zero or overflow,
floats seeded with NaN, +-inf and -0.0. The model is compiled (every node in TVM, but for
the known refusals in KNOWN_REFUSALS, which run in PyTorch) on valid example values of the
case's shapes, then called with the case's values; the oracle is
PyTorch eager on the same values:

- PyTorch answers: the compiled module gives the same dtype, shape, values (rtol = atol =
  1e-5; 1e-3 for float16, 1e-2 for bfloat16) and NaN mask;
- PyTorch raises: the compiled module raises too (its message says "out of range",
  "ZeroDivisionError" or "overflow"); the lowest integer divided by -1 kills PyTorch 2.14.1
  (SIGFPE), so there the oracle is "raises" without asking it.

The data_dependent family (nonzero, where(condition), masked_select, boolean-mask indexing,
unique) runs from_torchscript's module whole on TVM's VM instead, as compile keeps those ops
in PyTorch; its values sit on a small grid, with NaN, infinities and -0.0, so unique meets
repeats and masks are sometimes all true or all false.

The networks and transformers families generate whole models instead of one op, to test what
the build does across ops (kernel choice, what oneDNN's kernels take from TVM's passes, bf16):
small CNNs of convolutions (grouped, depthwise, with bias, batch norm and any activation),
ResNet and MobileNet residual blocks and pooling, built in float32 and bf16 with oneDNN's
convolutions and with TVM's, through TorchScript and through torch.export; encoders of
nn.TransformerEncoderLayer, hand-written attention (fused or softmax, causal or not, layer norm
before or after) and feed-forward blocks, on token ids (some outside the embedding's table) or
on hidden states, also converted whole by from_torchscript for TVM's VM. They are called with
NaN and infinities in most cases, and compared relative to the output's largest finite
magnitude (1e-4 in float32; 3e-2 for bf16 CNNs, 5e-2 for bf16 encoders).

A failing case is shrunk: its size parameters go down one at a time, with the same seed, while
it still fails, and the smallest failing case is reported. ``run_cases`` is what
``tests/python/test_differential.py`` runs a slice of and ``make fuzz-ops`` runs long.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from typing import Callable

import torch
import torchvision

import tvmbridge.torch as tt
from tvmbridge import pipeline



# --- the ops, as scripted modules ------------------------------------------------------------

class Embedding(torch.nn.Module):
    def forward(self, x, i):
        return torch.embedding(x, i)


class IndexSelect0(torch.nn.Module):
    def forward(self, x, i):
        return torch.index_select(x, 0, i)


class IndexSelect1(torch.nn.Module):
    def forward(self, x, i):
        return torch.index_select(x, 1, i)


class Gather1(torch.nn.Module):
    def forward(self, x, i):
        return torch.gather(x, 1, i)


class Take(torch.nn.Module):
    def forward(self, x, i):
        return torch.take(x, i)


class Index0(torch.nn.Module):
    def forward(self, x, i):
        return x[i]


class Index1(torch.nn.Module):
    def forward(self, x, i):
        return x[:, i]


class IndexPut(torch.nn.Module):
    def forward(self, x, i):
        return x.index_put((i,), torch.full([1], 2.5))


class Scatter1(torch.nn.Module):
    def forward(self, x, i):
        return torch.zeros_like(x).scatter(1, i, 1.0)


class ScatterAdd1(torch.nn.Module):
    def forward(self, x, i):
        return torch.zeros_like(x).scatter_add(1, i, torch.ones_like(i, dtype=x.dtype))


class OneHot(torch.nn.Module):
    def forward(self, x, i):
        return torch.nn.functional.one_hot(i, x.shape[1]).to(x.dtype)


# op -> (module, dim of x the index selects along (None: the flattened x), how the index is
# shaped (1-d, or [rows of x, k] for gather/scatter), whether negative indices wrap)
INDEXING = {
    "embedding": (Embedding, 0, "flat", False),
    "index_select_0": (IndexSelect0, 0, "flat", False),
    "index_select_1": (IndexSelect1, 1, "flat", False),
    "gather_1": (Gather1, 1, "rows", False),
    "take": (Take, None, "any", True),
    "index_0": (Index0, 0, "any", True),
    "index_1": (Index1, 1, "flat", True),
    "index_put": (IndexPut, 0, "flat", True),
    "scatter_1": (Scatter1, 1, "rows", False),
    "scatter_add_1": (ScatterAdd1, 1, "rows", False),
    "one_hot": (OneHot, 1, "any", False),
}


# Ops whose PyTorch kernels also take int32 indices.
INT32_INDICES = {"embedding", "index_select_0", "index_select_1", "index_0", "index_1"}


class OpModule(torch.nn.Module):
    """A module whose forward computes the op it is named after (`op`), along `dim`."""

    def __init__(self, op: str, dim: int = 0):
        super().__init__()
        self.op = op
        self.dim = dim


class Unary(OpModule):
    def forward(self, x, y):
        if self.op == "relu":
            return torch.relu(x)
        if self.op == "clamp":
            return torch.clamp(x, -0.5, 0.75)
        if self.op == "clamp_min":
            return torch.clamp_min(x, 0.25)
        if self.op == "relu6":
            return torch.nn.functional.relu6(x)
        if self.op == "hardtanh":
            return torch.nn.functional.hardtanh(x, -0.3, 0.3)
        if self.op == "leaky_relu":
            return torch.nn.functional.leaky_relu(x, 0.1)
        if self.op == "maximum":
            return torch.maximum(x, y)
        if self.op == "minimum":
            return torch.minimum(x, y)
        if self.op == "max_pool2d":
            return torch.nn.functional.max_pool2d(x, 2, 1)
        if self.op == "amax":
            return x.amax(self.dim)
        if self.op == "amin":
            return x.amin(self.dim)
        if self.op == "argmax":
            return x.argmax(self.dim)
        if self.op == "argmin":
            return x.argmin(self.dim)
        if self.op == "max_dim":
            return x.max(self.dim)[0]
        return torch.softmax(x, self.dim)


FLOATING = ["relu", "clamp", "clamp_min", "relu6", "hardtanh", "leaky_relu", "maximum", "minimum",
            "max_pool2d", "amax", "amin", "argmax", "argmin", "max_dim", "softmax"]


class Divide(OpModule):
    def forward(self, a, b):
        if self.op == "floor_divide":
            return a // b
        if self.op == "remainder":
            return torch.remainder(a, b)
        if self.op == "fmod":
            return torch.fmod(a, b)
        if self.op == "div_trunc":
            return torch.div(a, b, rounding_mode="trunc")
        return torch.div(a, b, rounding_mode="floor")


DIVISION = ["floor_divide", "remainder", "fmod", "div_trunc", "div_floor"]


class Transcendental(OpModule):
    """The float ops tvmbridge computes with its own vectorised exp, erf, tanh and small
    integer powers (vector_math.py)."""

    def forward(self, x):
        if self.op == "exp":
            return torch.exp(x)
        if self.op == "tanh":
            return torch.tanh(x)
        if self.op == "gelu_tanh":  # GPT-2's GELU
            return torch.nn.functional.gelu(x, approximate="tanh")
        if self.op in ("square", "cube"):
            return torch.pow(x, 2.0 if self.op == "square" else 3.0)
        if self.op == "erf":
            return torch.erf(x)
        if self.op == "sigmoid":
            return torch.sigmoid(x)
        if self.op == "silu":
            return torch.nn.functional.silu(x)
        if self.op == "gelu":
            return torch.nn.functional.gelu(x)
        if self.op == "log_softmax":
            return torch.log_softmax(x, self.dim)
        return torch.softmax(x, self.dim)


TRANSCENDENTAL = ["exp", "erf", "tanh", "sigmoid", "silu", "gelu", "gelu_tanh", "square", "cube",
                  "softmax", "log_softmax"]


class Sorting(OpModule):
    """sort, argsort and topk: PyTorch orders NaN above +inf and sorts stably on the CPU."""

    def __init__(self, op: str, dim: int, k: int, flag: bool):
        super().__init__(op, dim)
        self.k = k
        self.flag = flag  # descending, or topk's largest

    def forward(self, x):
        if self.op == "sort_values":
            return torch.sort(x, self.dim, self.flag)[0]
        if self.op == "sort_indices":
            return torch.sort(x, self.dim, self.flag)[1]
        if self.op == "argsort":
            return torch.argsort(x, self.dim, self.flag)
        values, indices = torch.topk(x, self.k, self.dim, self.flag)
        if self.op == "topk_values":
            return values
        # PyTorch leaves the order of tied elements to its kernel: check the indices by what
        # they select.
        return torch.gather(x, self.dim, indices)


SORTING = ["sort_values", "sort_indices", "argsort", "topk_values", "topk_selected"]


class Reduction(torch.nn.Module):
    """Reductions over one or two dims (negative ones included), with and without keepdim."""

    def __init__(self, op: str, dims: list, keepdim: bool):
        super().__init__()
        self.op = op
        self.dims = dims
        self.keepdim = keepdim

    def forward(self, x):
        dims, keep = self.dims, self.keepdim
        if self.op == "sum":
            return torch.sum(x, dims, keep)
        if self.op == "mean":
            return torch.mean(x, dims, keep)
        if self.op == "prod":
            return torch.prod(x, dims[0], keep)
        if self.op == "amax":
            return torch.amax(x, dims, keep)
        if self.op == "amin":
            return torch.amin(x, dims, keep)
        if self.op == "min_dim":
            return torch.min(x, dims[0], keep)[0]
        if self.op == "argmin":
            return torch.argmin(x, dims[0], keep)
        if self.op == "var":
            return torch.var(x, dims, keepdim=keep)
        if self.op == "std":
            return torch.std(x, dims, unbiased=False, keepdim=keep)
        if self.op == "logsumexp":
            return torch.logsumexp(x, dims, keep)
        if self.op == "norm":
            return torch.linalg.vector_norm(x, 2.0, dims, keep)
        if self.op == "any":
            return torch.any(x, dims[0], keep)
        if self.op == "all":
            return torch.all(x, dims[0], keep)
        return torch.cumsum(x, dims[0])


REDUCTION = ["sum", "mean", "prod", "amax", "amin", "min_dim", "argmin", "var", "std",
             "logsumexp", "norm", "any", "all", "cumsum"]
# The reductions PyTorch computes only for floating tensors.
FLOATING_REDUCTIONS = {"mean", "var", "std", "logsumexp", "norm"}


class Binary(OpModule):
    """Elementwise ops of two tensors of different dtypes and broadcast shapes: PyTorch's
    type promotion and broadcasting."""

    def forward(self, a, b):
        if self.op == "add":
            return a + b
        if self.op == "sub":
            return a - b
        if self.op == "mul":
            return a * b
        if self.op == "div":
            return a / b
        if self.op == "pow":
            return torch.pow(a, b)
        if self.op == "pow_3":
            return torch.pow(a, 3)
        if self.op == "eq":
            return a == b
        if self.op == "ne":
            return a != b
        if self.op == "lt":
            return a < b
        if self.op == "ge":
            return a >= b
        if self.op == "where":
            return torch.where(a > 0, a, b)
        if self.op == "where_scalar_self":
            return torch.where(a > b, 2.5, b)
        if self.op == "where_scalar_other":
            return torch.where(a > b, a, -1)
        if self.op == "max_other":
            return torch.max(a, b)
        if self.op == "min_other":
            return torch.min(a, b)
        return torch.maximum(a, b)


BINARY = ["add", "sub", "mul", "div", "pow", "pow_3", "eq", "ne", "lt", "ge", "where",
          "where_scalar_self", "where_scalar_other", "max_other", "min_other", "maximum"]


class Elementwise(torch.nn.Module):
    """One-input elementwise ops (ELEMENTWISE's, by name), on every dtype PyTorch takes them
    in. Traced for each case's dtype: PyTorch's own op, as users' traced models carry it."""

    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, x):
        return ELEMENTWISE[self.op](x)


# One row per op: adding an elementwise converter adds its row here (docs/adding-a-converter.md).
ELEMENTWISE = {
    "abs": torch.abs,
    "neg": torch.neg,
    "sign": torch.sign,
    "floor": torch.floor,
    "round": torch.round,
    "trunc": torch.trunc,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "log": torch.log,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "tanh": torch.tanh,
    "reciprocal": torch.reciprocal,
    "square": torch.square,
    "hardswish": torch.nn.functional.hardswish,
    "elu": torch.nn.functional.elu,
    "softplus": torch.nn.functional.softplus,
    "isinf": torch.isinf,
    "logical_not": torch.logical_not,
    "isfinite": torch.isfinite,
}
# Ops PyTorch computes only for floating tensors (on the CPU).
FLOATING_ELEMENTWISE = {"hardswish", "elu", "softplus"}


class Shape(OpModule):
    """Views, copies and joins along a dim given as positive or negative."""

    def forward(self, x, y):
        op, dim = self.op, self.dim
        if op == "cat":
            return torch.cat([x, y], dim)
        if op == "stack":
            return torch.stack([x, y], dim)
        if op == "split":
            return torch.split(x, 2, dim)[-1]
        if op == "chunk":
            return torch.chunk(x, 2, dim)[0]
        if op == "narrow":
            return torch.narrow(x, dim, 0, 1)
        if op == "flip":
            return torch.flip(x, [dim])
        if op == "roll":
            return torch.roll(x, 1, dim)
        if op == "transpose":
            return torch.transpose(x, dim, 0) * 2
        if op == "unsqueeze":
            return torch.unsqueeze(x, dim) + 1
        if op == "flatten":
            return torch.flatten(x, dim) + 1
        if op == "movedim":
            return torch.movedim(x, dim, -1) + 1
        if op == "repeat_interleave":
            return torch.repeat_interleave(x, 2, dim)
        if op == "cumsum":
            return torch.cumsum(x, dim)
        return torch.tril(x.reshape(x.shape[0], -1))


SHAPE = ["cat", "stack", "split", "chunk", "narrow", "flip", "roll", "transpose", "unsqueeze",
         "flatten", "movedim", "repeat_interleave", "cumsum", "tril"]


class Matmul(torch.nn.Module):
    """torch.matmul, which generated code hands to PyTorch's kernels (pipeline.AtenKernels)."""

    def forward(self, a, b):
        return torch.matmul(a, b)


# Operand shapes by rank pair, from the sizes (m, k, n, batch): every broadcasting case of
# torch.matmul that reaches the matmul converter.
MATMUL_SHAPES = {
    "vector_matrix": lambda m, k, n, b: ([k], [k, n]),
    "matrix_vector": lambda m, k, n, b: ([m, k], [k]),
    "matrix_matrix": lambda m, k, n, b: ([m, k], [k, n]),
    "batched_matrix": lambda m, k, n, b: ([b, m, k], [k, n]),
    "batched_batched": lambda m, k, n, b: ([b, m, k], [b, k, n]),
    "broadcast_batch": lambda m, k, n, b: ([b, 1, m, k], [2, k, n]),
}


class Pooling(torch.nn.Module):
    """Max pooling with a drawn window, stride, padding, dilation and ceil mode; after a
    16-channel convolution for "conv_max_pool2d", so it pools the packed layout."""

    def __init__(self, op: str, channels: int, kernel: int, stride: int, padding: int,
                 dilation: int, ceil_mode: bool):
        super().__init__()
        self.op = op
        self.conv = torch.nn.Conv2d(channels, 16, 1)
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        window = (self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        if self.op.endswith("_indices"):
            return self.values_and_indices(x)
        if self.op == "max_pool1d":
            return torch.nn.functional.max_pool1d(x, *window)
        if self.op == "max_pool3d":
            return torch.nn.functional.max_pool3d(x, *window)
        if self.op == "conv_max_pool2d":
            x = self.conv(x)
        return torch.nn.functional.max_pool2d(x, *window)

    def values_and_indices(self, x):
        """Stacked as float64 (which holds both exactly), one tensor for the comparison."""
        window = (self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        if self.op == "max_pool1d_indices":
            values, indices = torch.nn.functional.max_pool1d(x, *window, return_indices=True)
        elif self.op == "max_pool3d_indices":
            values, indices = torch.nn.functional.max_pool3d(x, *window, return_indices=True)
        elif self.op == "adaptive_max_pool2d_indices":  # cells that overlap, or do not tile
            values, indices = torch.nn.functional.adaptive_max_pool2d(
                x, [self.kernel + 1, self.stride + 2], return_indices=True)
        else:
            values, indices = torch.nn.functional.max_pool2d(x, *window, return_indices=True)
        return torch.stack([values.to(torch.float64), indices.to(torch.float64)])


# The _indices forms give the values and where each maximum was read (for max_unpool).
POOLING = ["max_pool1d", "max_pool2d", "max_pool3d", "conv_max_pool2d", "max_pool1d_indices",
           "max_pool2d_indices", "max_pool3d_indices", "adaptive_max_pool2d_indices"]


class LinearLayer(torch.nn.Module):
    """A linear layer, weight and optional bias in the input's dtype: after freezing, its
    weight is a constant, which the packed kernels (MKL, oneDNN) take."""

    def __init__(self, weight: torch.Tensor, bias, dtype: torch.dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.to(dtype), requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias.to(dtype),
                                                                 requires_grad=False)

    def forward(self, x):
        return torch.nn.functional.linear(x, self.weight, self.bias)


# Input shapes of the linear family, from (rows, in features, batch).
LINEAR_SHAPES = {
    "linear_vector": lambda m, k, b: [k],
    "linear_matrix": lambda m, k, b: [m, k],
    "linear_batched": lambda m, k, b: [b, m, k],
}


class QuantizedConv(torch.nn.Module):
    """A quantized 2-D convolution with drawn geometry (eager-mode static quantization, x86
    qconfig), in the patterns TVM hands to PyTorch's int8 kernels: alone, with a fused ReLU,
    followed by an integer max pooling, or followed by a 1x1 convolution and a residual
    add_relu of the two."""

    def __init__(self, op: str, conv: torch.nn.Conv2d):
        super().__init__()
        self.op = op
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), \
            torch.ao.quantization.DeQuantStub()
        self.conv = conv
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(2, stride=1, padding=1)
        self.pointwise = torch.nn.Conv2d(conv.out_channels, conv.out_channels, 1)
        self.residual = torch.ao.nn.quantized.FloatFunctional()

    def forward(self, x):
        y = self.conv(self.quant(x))
        if self.op == "conv2d_relu":
            y = self.relu(y)
        elif self.op == "conv2d_max_pool2d":
            y = self.pool(y)
        elif self.op == "conv2d_add_relu":
            y = self.residual.add_relu(y, self.pointwise(y))
        return self.dequant(y)


QUANTIZED = ["conv2d", "conv2d_relu", "conv2d_max_pool2d", "conv2d_add_relu"]


class Pt2eStack(torch.nn.Module):
    """One pattern X86InductorQuantizer quantizes, per op: a convolution alone (its output left
    float32), with ReLU or ReLU6, with a residual addition and ReLU, followed by max pooling, a
    depthwise one with ReLU6, a linear layer alone or with ReLU. Quantized by PT2E per case
    (torchao's prepare_pt2e / convert_pt2e), compiled with ir="export"."""

    def __init__(self, op: str, channels: int):
        super().__init__()
        self.op = op
        groups = channels if op == "depthwise_relu6" else 1
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=groups)
        self.fc = torch.nn.Linear(channels, channels + 1)

    def forward(self, x):
        op = self.op
        if op == "linear":
            return self.fc(x)
        if op == "linear_relu":
            return torch.relu(self.fc(x))
        y = self.conv(x)
        if op == "conv2d_relu":
            return torch.relu(y)
        if op in ("conv2d_relu6", "depthwise_relu6"):
            return torch.nn.functional.relu6(y)
        if op == "conv2d_add_relu":
            return torch.relu(y + x)
        if op == "conv2d_max_pool2d":
            return torch.nn.functional.max_pool2d(torch.relu(y), 2, ceil_mode=True)
        return y


PT2E = ["conv2d", "conv2d_relu", "conv2d_relu6", "depthwise_relu6", "conv2d_add_relu",
        "conv2d_max_pool2d", "linear", "linear_relu"]


def quantize_pt2e(model: torch.nn.Module, x: torch.Tensor, calibration: list) -> torch.nn.Module:
    """`model` quantized as the PT2E tutorial does: exported, annotated by X86InductorQuantizer's
    default config (static, per-channel weights), calibrated on `calibration`, converted."""
    import warnings

    import torchao.quantization.pt2e.quantize_pt2e as pt2e
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer().set_global(
        x86.get_default_x86_inductor_quantization_config())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = pt2e.prepare_pt2e(torch.export.export(model.eval(), (x,)).module(), quantizer)
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
        return pt2e.convert_pt2e(prepared)


def last_quantize_scale(converted: torch.nn.Module) -> float:
    """The scale of PT2E's last quantize: one step of the output's grid, or of the last
    quantized op's input where the output stays float32."""
    scales = [float(node.args[1]) for node in converted.graph.nodes
              if node.target == torch.ops.quantized_decomposed.quantize_per_tensor.default]
    return scales[-1]


class InputWrites(torch.nn.Module):
    """In-place writes into the caller's tensors (`steps`: (op, target) pairs, applied in
    order; target 0 is x, 1 is y), then a result from them. Traced: PyTorch's own in-place
    forms, as users' traced models carry them."""

    def __init__(self, steps, result):
        super().__init__()
        self.steps, self.result = steps, result

    def forward(self, x, y):
        tensors = [x, y]
        for op, target in self.steps:
            INPUT_WRITES[op](tensors[target], tensors[1 - target])
        return {"x": lambda: x, "x_plus_y": lambda: x + y,
                "mixed": lambda: torch.tanh(y) * 2.0 + x.sum()}[self.result]()


# Each writes into `t`, reading `other` (of the same shape) where it needs a second tensor.
INPUT_WRITES = {
    "add_": lambda t, other: t.add_(other, alpha=0.5),
    "mul_": lambda t, other: t.mul_(other),
    "div_": lambda t, other: t.div_(2.0),
    "clamp_": lambda t, other: t.clamp_(-0.5, 0.75),
    "relu_": lambda t, other: t.relu_(),
    "sigmoid_": lambda t, other: t.sigmoid_(),
    "neg_": lambda t, other: t.neg_(),
    "fill_": lambda t, other: t.fill_(1.5),
    "zero_": lambda t, other: t.zero_(),
    "masked_fill_": lambda t, other: t.masked_fill_(other > 0, -1.0),
    "copy_rows": lambda t, other: t[: max(1, t.shape[0] // 2)].copy_(
        other[: max(1, t.shape[0] // 2)] * 3.0),
    "copy_column": lambda t, other: t[:, 0].copy_(other[:, -1]),
    "setitem": lambda t, other: t.__setitem__((0, slice(None)), 7.0),
    "setitem_nan": lambda t, other: t.__setitem__((slice(None), -1), float("nan")),
    "fill_inf": lambda t, other: t.fill_(float("-inf")),
}


class ViewWrites(torch.nn.Module):
    """An in-place write through a view of a tensor the model computed, then a result read
    from that tensor: the write must reach it (and every other view of it), as in PyTorch.
    Views are whatever the op's schema says may share memory, lists of views included.
    Traced: PyTorch's own view and in-place ops, as users' traced models carry them."""

    def __init__(self, view, writes, result):
        super().__init__()
        self.view, self.writes, self.result = view, writes, result

    def forward(self, x):
        base = torch.tanh(x) * 2.0  # fresh: the write stays inside the model
        view = VIEWS[self.view](base)
        for write in self.writes:
            VIEW_WRITES[write](view)
        return {"base": lambda: base + 1.0, "view": lambda: view * 2.0,
                "both": lambda: base.sum() + view.sum()}[self.result]()


# Each takes a [rows, cols] tensor and returns a view of it (or, where its schema says it may,
# the tensor itself).
VIEWS = {
    "diagonal": lambda b: b.diagonal(),
    "movedim": lambda b: b.movedim(0, 1),
    "mT": lambda b: b.mT,
    "transpose": lambda b: b.transpose(0, 1),
    "permute": lambda b: b.permute(1, 0),
    "unfold": lambda b: b.unfold(1, 1, 1),
    "split_first": lambda b: b.split(1, dim=0)[0],
    "split_last": lambda b: b.split(2, dim=1)[-1],
    "chunk": lambda b: b.chunk(2, dim=1)[0],
    "unbind": lambda b: b.unbind(0)[-1],
    "select": lambda b: b[b.shape[0] // 2],
    "slice": lambda b: b[:, b.shape[1] // 2:],
    "narrow": lambda b: b.narrow(1, 0, max(1, b.shape[1] // 2)),
    "view": lambda b: b.view(-1),
    "reshape": lambda b: b.reshape(b.shape[1], b.shape[0]),
    "flatten": lambda b: b.flatten(),
    "unsqueeze": lambda b: b.unsqueeze(0),
    "view_of_view": lambda b: b.t().diagonal(),
    "as_strided": lambda b: b.as_strided((min(b.shape),), (b.shape[1] + 1,)),
    "detach": lambda b: b.detach(),
    "contiguous": lambda b: b.contiguous(),
    "to_own_dtype": lambda b: b.to(torch.float32),
}
VIEW_WRITES = {
    "mul_": lambda v: v.mul_(3.0),
    "add_": lambda v: v.add_(1.0),
    "clamp_": lambda v: v.clamp_(-0.5, 0.5),
    "zero_": lambda v: v.zero_(),
    "fill_nan": lambda v: v.fill_(float("nan")),
    "copy_": lambda v: v.copy_(torch.full_like(v, 5.0)),
}
# Why a write through a view may run in PyTorch: its effect on the viewed tensor must show.
VIEW_WRITE_FALLBACKS = ("in-place op on an aliased tensor", "view written to by an in-place op")


# Ops compiled once for a range of shapes (tt.Input(min_shape, opt_shape, max_shape)) and called
# at sizes in it: the table's rows are a symbol, so index checks, arange, slices with computed
# bounds and attention run over symbolic extents.
RANGED_ROWS = (10, 12, 16)  # min, opt, max; at least 10, so the example indices (< 10) are valid
RANGED_COLS = 10


class RangedIndexRows(torch.nn.Module):
    def forward(self, table, i):
        return table[i]


class RangedIndexPair(torch.nn.Module):
    def forward(self, table, i, j):
        return table[i, j]


class RangedGather0(torch.nn.Module):
    def forward(self, table, i):
        return torch.gather(table, 0, i)


class RangedPositions(torch.nn.Module):
    def forward(self, table):
        rows = table.size(0) - 1
        return table[:rows] * torch.arange(rows).unsqueeze(1).to(table.dtype)


class RangedAttention(torch.nn.Module):
    def forward(self, q, k, v, mask):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class RangedHeads(torch.nn.Module):
    """A transformer's split into heads and merge back, over a ranged leading dim."""

    def forward(self, table):
        heads = (table + 1.0).reshape(table.size(0), 2, 5).transpose(0, 1) * 2.0
        return heads.transpose(0, 1).reshape(table.size(0), 10) - table


RANGED = ["index_rows", "index_pair", "gather_0", "positions", "heads", "attention_bool",
          "attention_additive"]


# Ops whose result extents tensor values decide. compile keeps them in PyTorch (TVM computes
# them through Python callbacks), so these cases run from_torchscript's module on TVM's VM.
class Nonzero(torch.nn.Module):
    def forward(self, x):
        return torch.nonzero(x > 0) * 2


class WhereCondition(torch.nn.Module):
    def forward(self, x):
        rows, cols = torch.where(x > 0)
        return rows * 10 + cols


class MaskedSelect(torch.nn.Module):
    def forward(self, x, mask):
        return torch.masked_select(x, mask) * 2.0


class MaskIndex(torch.nn.Module):
    def forward(self, x):
        return x[x > 0] + 1.0


class MaskIndexAfterDim(torch.nn.Module):
    def forward(self, x, mask):
        return x[:, mask] - 1.0


class Unique(torch.nn.Module):
    def forward(self, x):
        values, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
        return values, inverse, counts


class Bincount(torch.nn.Module):
    def forward(self, x):
        return torch.bincount(x.flatten().abs(), minlength=3)


class WeightedBincount(torch.nn.Module):
    def forward(self, x):
        values = x.flatten().abs()
        return torch.bincount(values, weights=values.to(torch.float32) * 0.5 - 1.0)


class Nms(torch.nn.Module):
    """torchvision's nms at IoU 0.5, and at 0 (any overlap suppresses; touching boxes do not)."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, boxes, scores):
        return torchvision.ops.nms(boxes, scores, self.threshold)


# op -> (module, its inputs: "values", "values and mask" (a column mask) or "boxes", the
# values' dtype)
DATA_DEPENDENT = {
    "nonzero": (Nonzero, "values", torch.float32),
    "where": (WhereCondition, "values", torch.float32),
    "masked_select": (MaskedSelect, "values and mask", torch.float32),  # mask broadcast over rows
    "mask_index": (MaskIndex, "values", torch.float32),
    "mask_index_after_dim": (MaskIndexAfterDim, "values and mask", torch.float32),
    "unique_float": (Unique, "values", torch.float32),
    "unique_int": (Unique, "values", torch.int64),
    "bincount": (Bincount, "values", torch.int64),
    "bincount_weighted": (WeightedBincount, "values", torch.int64),
    "nms": (lambda: Nms(0.5), "boxes", torch.float32),
    "nms_zero_threshold": (lambda: Nms(0.0), "boxes", torch.float32),
}


def grid_values(rng: random.Random, shape: tuple, dtype=torch.float32) -> torch.Tensor:
    """Random values on a small grid (repeats, for unique), with NaN, infinities and signed
    zeros mixed in; sometimes all positive or all negative (masks all true or all false)."""
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    x = torch.randint(-3, 4, shape, generator=generator).to(dtype)
    kind = rng.choice(["mixed", "mixed", "specials", "none positive", "all positive"])
    if kind == "none positive":
        x = -x.abs()
    elif kind == "all positive":
        x = x.abs() + 1
    elif kind == "specials" and dtype.is_floating_point and x.numel():
        flat = x.view(-1)
        for special in (float("nan"), float("nan"), float("inf"), -float("inf"), -0.0):
            flat[rng.randrange(flat.numel())] = special
    return x


def run_on_vm(module: torch.nn.Module, *inputs: torch.Tensor) -> list:
    """from_torchscript (weights embedded) -> tvm.compile -> Relax VM, with no PyTorch in
    between; the outputs as a list of tensors."""
    import tvm

    mod, _ = tt.from_torchscript(torch.jit.script(module),
                                 [tt.Input(tuple(x.shape), dtype=x.dtype) for x in inputs],
                                 keep_params_as_input=False)
    vm = tvm.relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(x.numpy()) for x in inputs])
    results = [result] if hasattr(result, "numpy") else list(result)
    return [torch.from_numpy(r.numpy()) for r in results]


# --- networks: small CNNs of generated blocks ------------------------------------------------

# Activations after a convolution: the ones the build clamps in oneDNN's kernel (ReLU, ReLU6,
# a clamp) and ones TVM's passes take (GELU, SiLU, hardswish, leaky ReLU).
NETWORK_ACTIVATIONS = {
    "none": torch.nn.Identity, "relu": torch.nn.ReLU, "relu6": torch.nn.ReLU6,
    "hardtanh": lambda: torch.nn.Hardtanh(-1.0, 2.0), "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU, "hardswish": torch.nn.Hardswish,
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.1),
}


def _conv_unit(rng: random.Random, inputs: int, outputs: int, kernel: int, stride: int = 1,
               groups: int = 1, activation: str | None = None) -> torch.nn.Sequential:
    """A convolution (with or without bias), maybe batch norm (running statistics drawn, so
    freezing folds a real scale and shift into it), then an activation."""
    conv = torch.nn.Conv2d(inputs, outputs, kernel, stride, padding=kernel // 2, groups=groups,
                           bias=rng.random() < 0.5)
    layers = [conv]
    if rng.random() < 0.6:
        norm = torch.nn.BatchNorm2d(outputs)
        with torch.no_grad():
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
        layers.append(norm)
    if activation is None:
        activation = rng.choice(list(NETWORK_ACTIVATIONS))
    layers.append(NETWORK_ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)


class Residual(torch.nn.Module):
    """`after(body(x) + x)`: ResNet's basic block (ReLU after) or MobileNet-V2's inverted
    residual (nothing after)."""

    def __init__(self, body: torch.nn.Module, after: torch.nn.Module):
        super().__init__()
        self.body, self.after = body, after

    def forward(self, x):
        return self.after(self.body(x) + x)


class SharedSum(torch.nn.Module):
    """`s = body(x) + x` read twice, by a convolution and by a second addition: a residual
    stream, as in the blocks of MobileNet-V2 that feed the next block's addition."""

    def __init__(self, body: torch.nn.Module, tail: torch.nn.Module):
        super().__init__()
        self.body, self.tail = body, tail

    def forward(self, x):
        s = self.body(x) + x
        return self.tail(s) + s


class Classifier(torch.nn.Module):
    """Global average pooling and a linear layer: a network's head."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.fc = torch.nn.Linear(inputs, outputs)

    def forward(self, x):
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


NETWORK_BLOCKS = ["conv", "depthwise", "grouped", "basic_residual", "inverted_residual",
                  "shared_sum", "pool"]


def _network(rng: random.Random, channels: int, side: int, blocks: int) -> torch.nn.Sequential:
    """`blocks` blocks drawn from NETWORK_BLOCKS on an input of `channels` x `side` x `side`,
    maybe ending in a classifier. Draws from `rng` in block order, so fewer blocks are a
    prefix of the same network."""
    layers = []
    for _ in range(blocks):
        block = rng.choice(NETWORK_BLOCKS)
        stride = rng.choice([1, 1, 2]) if side >= 4 else 1
        if block == "conv":
            outputs = rng.randrange(1, 2 * channels + 2)
            layers.append(_conv_unit(rng, channels, outputs, rng.choice([1, 3]), stride))
            channels = outputs
        elif block == "depthwise":
            layers.append(_conv_unit(rng, channels, channels, 3, stride, groups=channels))
        elif block == "grouped" and channels % 2 == 0:
            layers.append(_conv_unit(rng, channels, channels, rng.choice([1, 3]), stride,
                                     groups=2))
        elif block == "basic_residual":
            stride = 1
            body = torch.nn.Sequential(_conv_unit(rng, channels, channels, 3, activation="relu"),
                                       _conv_unit(rng, channels, channels, 3, activation="none"))
            layers.append(Residual(body, torch.nn.ReLU()))
        elif block in ("inverted_residual", "shared_sum"):
            stride = 1
            hidden = channels * rng.choice([2, 4])
            body = torch.nn.Sequential(
                _conv_unit(rng, channels, hidden, 1, activation="relu6"),
                _conv_unit(rng, hidden, hidden, 3, groups=hidden, activation="relu6"),
                _conv_unit(rng, hidden, channels, 1, activation="none"))
            if block == "inverted_residual":
                layers.append(Residual(body, torch.nn.Identity()))
            else:
                layers.append(SharedSum(body, _conv_unit(rng, channels, channels, 1)))
        elif block == "pool" and side >= 2:
            layers.append(rng.choice([torch.nn.MaxPool2d(2), torch.nn.AvgPool2d(2)]))
            side //= 2
            continue
        else:
            stride = 1
        side = (side - 1) // stride + 1  # odd kernels padded by half
    if rng.random() < 0.3:
        layers.append(Classifier(channels, rng.randrange(1, 8)))
    return torch.nn.Sequential(*layers)


# Precision and convolution kernels a network is built with: oneDNN's or TVM's schedules (the
# build would time both and keep the faster; here each is built alone); and whether it goes
# through torch.export (ir="export") instead of TorchScript.
NETWORK_BUILDS = {"fp32_onednn": ("fp32", True, False), "fp32_tvm": ("fp32", False, False),
                  "bf16_onednn": ("bf16", True, False), "bf16_tvm": ("bf16", False, False),
                  "fp32_export": ("fp32", True, True), "bf16_export": ("bf16", True, True)}


# --- transformers: small encoders of generated blocks ----------------------------------------

class SelfAttention(torch.nn.Module):
    """Multi-head self-attention written out as models from `transformers` write it (separate
    query, key and value projections, heads split by reshape), through PyTorch's fused
    attention or softmax over the scaled scores, causal or not, then a residual addition and
    layer norm after (BERT) or before (GPT-2)."""

    def __init__(self, width: int, heads: int, fused: bool, causal: bool, norm_first: bool):
        super().__init__()
        self.heads, self.fused, self.causal, self.norm_first = heads, fused, causal, norm_first
        self.query, self.key, self.value, self.out = (torch.nn.Linear(width, width)
                                                      for _ in range(4))
        self.norm = torch.nn.LayerNorm(width)

    def _split(self, x):
        batch, steps, width = x.shape
        return x.reshape(batch, steps, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, x):
        h = self.norm(x) if self.norm_first else x
        q, k, v = self._split(self.query(h)), self._split(self.key(h)), self._split(self.value(h))
        if self.fused:
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = q @ k.transpose(-1, -2) / float(q.shape[-1]) ** 0.5
            if self.causal:
                steps = scores.shape[-1]
                future = torch.ones(steps, steps, dtype=torch.bool).triu(1)
                scores = scores.masked_fill(future, float("-inf"))
            a = torch.softmax(scores, dim=-1) @ v
        a = self.out(a.transpose(1, 2).reshape(x.shape))
        return x + a if self.norm_first else self.norm(x + a)


class FeedForward(torch.nn.Module):
    """Linear, GELU (exact or tanh) or ReLU, linear, residual addition and layer norm."""

    def __init__(self, width: int, hidden: int, activation: str):
        super().__init__()
        self.up, self.down = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, width)
        self.activation = activation
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x):
        h = self.up(x)
        if self.activation == "relu":
            h = torch.relu(h)
        else:
            h = torch.nn.functional.gelu(h, approximate=self.activation)
        return self.norm(x + self.down(h))


class TokenEncoder(torch.nn.Module):
    """Token ids -> embedding plus learned positions -> blocks -> a linear head: the shape of
    BERT and GPT-2. Ids outside the table must raise as PyTorch raises."""

    def __init__(self, vocabulary: int, steps: int, width: int, blocks: torch.nn.Sequential):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocabulary, width)
        self.positions = torch.nn.Parameter(torch.randn(steps, width) * 0.1)
        self.blocks = blocks
        self.head = torch.nn.Linear(width, vocabulary)

    def forward(self, ids):
        return self.head(self.blocks(self.tokens(ids) + self.positions[: ids.shape[1]]))


TRANSFORMER_BLOCKS = ["encoder_layer", "attention", "feed_forward"]


def _transformer_blocks(rng: random.Random, heads: int, head_width: int,
                        blocks: int) -> torch.nn.Sequential:
    """`blocks` blocks drawn from TRANSFORMER_BLOCKS, `heads` x `head_width` wide, batch first;
    drawn in order, so fewer blocks are a prefix of the same stack."""
    width, layers = heads * head_width, []
    for _ in range(blocks):
        block = rng.choice(TRANSFORMER_BLOCKS)
        if block == "encoder_layer":
            layers.append(torch.nn.TransformerEncoderLayer(
                width, heads, rng.randrange(1, 4 * width + 1), dropout=0.0,
                activation=rng.choice(["relu", "gelu"]), batch_first=True,
                norm_first=rng.random() < 0.5))
        elif block == "attention":
            layers.append(SelfAttention(width, heads, fused=rng.random() < 0.5,
                                        causal=rng.random() < 0.5,
                                        norm_first=rng.random() < 0.5))
        else:
            layers.append(FeedForward(width, rng.randrange(1, 4 * width + 1),
                                      rng.choice(["none", "tanh", "relu"])))
    return torch.nn.Sequential(*layers)


# Precision; whether the model takes token ids (an embedding first) or hidden states; whether
# from_torchscript converts it whole for TVM's VM instead of compile building it.
TRANSFORMER_BUILDS = {"fp32_tokens": ("fp32", True, False), "fp32_states": ("fp32", False, False),
                      "bf16_tokens": ("bf16", True, False), "bf16_states": ("bf16", False, False),
                      "vm_states": ("fp32", False, True)}


# --- cases -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    family: str
    op: str
    seed: int
    sizes: dict  # the size parameters shrinking lowers
    make_module: Callable[[], torch.nn.Module]
    example: tuple  # valid values of the call's shapes, to compile with
    call: tuple  # the values the case calls with
    pytorch_dies: bool = False  # PyTorch's own kernel traps on these values
    atol: float | None = None  # floating results' tolerance, where not TOLERANCE's
    inputs: list | None = None  # tt.Input ranges to compile with instead of `example`'s shapes
    on_vm: bool = False  # from_torchscript's module on TVM's VM instead of compile's
    # Reasons, besides KNOWN_REFUSALS, for which nodes of this case may run in PyTorch.
    allowed_fallbacks: tuple = ()
    exported: bool = False  # compiled with ir="export" (a PT2E module, or one to export)
    precision: str = "fp32"  # compile's precision
    # Build with oneDNN's convolutions (True) or TVM's (False) alone; None: as the build chooses.
    onednn_convolutions: bool | None = None

    def describe(self) -> str:
        def show(t):
            return f"{t.dtype}{list(t.shape)}={t.flatten()[:12].tolist()}"
        return (f"{self.family}/{self.op} seed={self.seed} sizes={self.sizes} "
                f"call=({', '.join(show(t) for t in self.call)})")


def _indexing_case(op: str, seed: int, sizes: dict) -> Case:
    module, dim, layout, wraps = INDEXING[op]
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    rows, cols, count = sizes["rows"], sizes["cols"], sizes["count"]
    x = torch.randn(rows, cols, generator=gen)
    extent = rows * cols if dim is None else (rows, cols)[dim]
    if layout == "rows":
        shape = [rows, count]
    elif layout == "any" and rng.random() < 0.3:
        shape = [count, 2]
    else:
        shape = [count]
    low = -extent if wraps else 0
    dtype = rng.choice([torch.int64, torch.int32]) if op in INT32_INDICES else torch.int64
    valid = torch.randint(low, extent, shape, generator=gen, dtype=dtype)
    return Case("indexing", op, seed, sizes, module, (x, valid),
                (x, _maybe_out_of_range(rng, valid, extent, low)))


def _maybe_out_of_range(rng: random.Random, valid: torch.Tensor, extent: int,
                        low: int) -> torch.Tensor:
    """`valid` (indices in [low, extent)), often with one value at or beyond a bound."""
    call = valid.clone()
    if call.numel() and rng.random() < 0.6:
        info = torch.iinfo(call.dtype)
        bad = rng.choice([extent, extent + rng.randrange(1, 50), -extent - 1, 10**9,
                          info.min, info.max, -1, low])
        call.view(-1)[rng.randrange(call.numel())] = bad
    return call


def _ranged_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    rows = RANGED_ROWS[0] - 1 + sizes["rows"]
    low_rows, opt_rows, high_rows = RANGED_ROWS
    if op.startswith("attention"):
        steps = (1, 2, rows, 4)
        # Specials in the queries only: one in a key or value spreads NaN over every row.
        q = _with_specials(rng, torch.randn(steps, generator=gen), 2)
        k, v = torch.randn(steps, generator=gen), torch.randn(steps, generator=gen)
        sees = torch.rand(1, 1, rows, rows, generator=gen) > 0.3
        sees[..., rng.randrange(rows), :] = rng.random() < 0.5  # a query that sees no key, or all
        mask = sees if op == "attention_bool" else torch.where(sees, 0.0, float("-inf"))
        ranged = dict(dim_names=(None, None, "steps", None))
        inputs = [tt.Input(min_shape=(1, 2, low_rows, 4), opt_shape=(1, 2, opt_rows, 4),
                           max_shape=(1, 2, high_rows, 4), **ranged) for _ in range(3)]
        inputs.append(tt.Input(min_shape=(1, 1, low_rows, low_rows),
                               opt_shape=(1, 1, opt_rows, opt_rows),
                               max_shape=(1, 1, high_rows, high_rows), dtype=mask.dtype,
                               dim_names=(None, None, "steps", "steps")))
        call = (q, k, v, mask)
        return Case("ranged", op, seed, sizes, RangedAttention, call, call, inputs=inputs)
    table = _with_specials(rng, torch.randn(rows, RANGED_COLS, generator=gen), 3)
    table_input = tt.Input(min_shape=(low_rows, RANGED_COLS), opt_shape=(opt_rows, RANGED_COLS),
                           max_shape=(high_rows, RANGED_COLS))
    count = sizes["count"]
    if op in ("positions", "heads"):
        module = RangedPositions if op == "positions" else RangedHeads
        return Case("ranged", op, seed, sizes, module, (table,), (table,), inputs=[table_input])
    if op == "gather_0":
        valid = torch.randint(0, rows, (count, RANGED_COLS), generator=gen)
        call = (table, _maybe_out_of_range(rng, valid, rows, 0))
        return Case("ranged", op, seed, sizes, RangedGather0, call, call,
                    inputs=[table_input, tt.Input(tuple(valid.shape), dtype=torch.int64)])
    valid_rows = torch.randint(-rows, rows, (count,), generator=gen)
    index = tt.Input((count,), dtype=torch.int64)
    if op == "index_rows":
        call = (table, _maybe_out_of_range(rng, valid_rows, rows, -rows))
        return Case("ranged", op, seed, sizes, RangedIndexRows, call, call,
                    inputs=[table_input, index])
    valid_cols = torch.randint(-RANGED_COLS, RANGED_COLS, (count,), generator=gen)
    call = (table, _maybe_out_of_range(rng, valid_rows, rows, -rows),
            _maybe_out_of_range(rng, valid_cols, RANGED_COLS, -RANGED_COLS))
    return Case("ranged", op, seed, sizes, RangedIndexPair, call, call,
                inputs=[table_input, index, index])


def _floating_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = rng.choice([torch.float32, torch.float64, torch.float16, torch.bfloat16])
    shape = [1, sizes["channels"], sizes["height"], sizes["width"]]
    x = torch.randn(shape, generator=gen).to(dtype)
    y = torch.randn(shape, generator=gen).to(dtype)
    call_x, call_y = x.clone(), y.clone()
    specials = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0]
    for tensor in (call_x, call_y):
        for _ in range(rng.randrange(0, 4)):
            tensor.view(-1)[rng.randrange(tensor.numel())] = rng.choice(specials)
    dim = rng.randrange(4)
    return Case("floating", op, seed, sizes, lambda: Unary(op, dim), (x, y), (call_x, call_y))


def _division_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = rng.choice([torch.int32, torch.int64])
    lowest = torch.iinfo(dtype).min
    n = sizes["length"]
    a = torch.randint(-100, 100, [n], generator=gen, dtype=dtype)
    signs = 1 - 2 * (torch.rand(n, generator=gen) < 0.5).to(dtype)
    b = torch.randint(1, 9, [n], generator=gen, dtype=dtype) * signs
    call_a, call_b = a.clone(), b.clone()
    if n and rng.random() < 0.5:
        k = rng.randrange(n)
        if rng.random() < 0.5:
            call_b[k] = 0
        else:
            call_a[k], call_b[k] = lowest, -1
    if n and rng.random() < 0.3:
        call_a[rng.randrange(n)] = rng.choice([lowest, torch.iinfo(dtype).max])
    pytorch_dies = bool(((call_a == lowest) & (call_b == -1)).any())
    return Case("division", op, seed, sizes, lambda: Divide(op), (a, b), (call_a, call_b),
                pytorch_dies)


def _transcendental_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    # Wide values: exp overflows past 88.7 and reaches subnormals below -87.3.
    scale = rng.choice([1.0, 10.0, 100.0])
    shape = [sizes["rows"], sizes["cols"]]
    x = torch.randn(shape, generator=gen) * scale
    call_x = x.clone()
    specials = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 88.7, -103.9, 1e-30]
    for _ in range(rng.randrange(0, 4)):
        call_x.view(-1)[rng.randrange(call_x.numel())] = rng.choice(specials)
    dim = rng.randrange(2)
    return Case("transcendental", op, seed, sizes, lambda: Transcendental(op, dim), (x,),
                (call_x,))


def _sorting_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = rng.choice([torch.float32, torch.float64, torch.float16, torch.int64, torch.int32])
    shape = [sizes["rows"], sizes["cols"]]
    # Few distinct values, so that ties (where stability shows) are common.
    x = torch.randint(-3, 4, shape, generator=gen).to(dtype)
    if dtype.is_floating_point and rng.random() < 0.5:
        x = x + torch.randn(shape, generator=gen).to(dtype)
    call_x = x.clone()
    if dtype.is_floating_point:
        specials = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0]
        for _ in range(rng.randrange(0, 5)):
            call_x.view(-1)[rng.randrange(call_x.numel())] = rng.choice(specials)
    dim = rng.choice([0, 1, -1, -2])
    k = rng.randrange(1, shape[dim] + 1)
    flag = rng.random() < 0.5
    return Case("sorting", op, seed, sizes, lambda: Sorting(op, dim, k, flag), (x,), (call_x,))


def _with_specials(rng: random.Random, tensor: torch.Tensor, count: int) -> torch.Tensor:
    """A copy of `tensor` with up to `count` elements set to NaN, +-inf or -0.0 (floats)."""
    tensor = tensor.clone()
    if tensor.is_floating_point() and tensor.numel():
        for _ in range(rng.randrange(0, count + 1)):
            tensor.view(-1)[rng.randrange(tensor.numel())] = rng.choice(
                [float("nan"), float("inf"), float("-inf"), -0.0])
    return tensor


def _random_tensor(gen: torch.Generator, shape: list, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) < 0.5
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    return torch.randint(-4, 5, shape, generator=gen).to(dtype)


def _reduction_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    floating = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
    # PyTorch has no argmin of bools.
    integral = [torch.int64, torch.int32] + ([] if op == "argmin" else [torch.bool])
    dtype = rng.choice(floating if op in FLOATING_REDUCTIONS else floating + integral)
    shape = [sizes["rows"], sizes["cols"], sizes["depth"]]
    x = _random_tensor(gen, shape, dtype)
    dims = [d - 3 if rng.random() < 0.5 else d for d in rng.sample(range(3), rng.randrange(1, 3))]
    if op in ("prod", "min_dim", "argmin", "any", "all", "cumsum"):
        dims = dims[:1]
    keepdim = rng.random() < 0.5
    return Case("reduction", op, seed, sizes, lambda: Reduction(op, dims, keepdim), (x,),
                (_with_specials(rng, x, 3),))


def _binary_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtypes = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool]
    if op in ("sub", "pow", "pow_3"):  # PyTorch has no bool subtraction or power
        dtypes = dtypes[:-1]
    shape = [sizes["rows"], sizes["cols"]]
    shape_b = rng.choice([shape, [1, shape[1]], [shape[0], 1], [shape[1]], []])
    a = _random_tensor(gen, shape, rng.choice(dtypes))
    b = _random_tensor(gen, shape_b, rng.choice(dtypes))
    if op == "pow" and not (a.is_floating_point() or b.is_floating_point()):
        b = b.abs()  # PyTorch raises for integers to negative integer powers
    return Case("binary", op, seed, sizes, lambda: Binary(op), (a, b),
                (_with_specials(rng, a, 2), _with_specials(rng, b, 2)))


def _elementwise_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    floating = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
    dtypes = floating if op in FLOATING_ELEMENTWISE else floating + [torch.int64, torch.int32,
                                                                     torch.bool]
    if op in ("abs", "neg", "floor", "round", "trunc"):  # PyTorch has no bool forms of these
        dtypes = [d for d in dtypes if d != torch.bool]
    x = _random_tensor(gen, [sizes["rows"], sizes["cols"]], rng.choice(dtypes))
    if x.is_floating_point():
        x = x * rng.choice([1.0, 3.0])  # half-integers and large values for rounding
        if rng.random() < 0.3:
            x = torch.round(x * 2) / 2
    return Case("elementwise", op, seed, sizes,
                lambda: torch.jit.trace(Elementwise(op), (x,), check_trace=False), (x,),
                (_with_specials(rng, x, 3),))


def _shape_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = rng.choice([torch.float32, torch.int64, torch.bool, torch.float16])
    if op == "cumsum" and dtype == torch.bool:
        dtype = torch.int32
    shape = [sizes["rows"], sizes["cols"], sizes["depth"]]
    x = _random_tensor(gen, shape, dtype)
    y = _random_tensor(gen, shape, dtype)
    if op in ("transpose", "unsqueeze", "flatten", "movedim") and dtype == torch.bool:
        x, y = x.int(), y.int()  # these add 1 to force a copy; bool + 1 is int64 anyway
    rank = len(shape) + (1 if op in ("stack", "unsqueeze") else 0)
    dim = rng.randrange(rank)
    if rng.random() < 0.5:
        dim -= rank
    return Case("shape", op, seed, sizes, lambda: Shape(op, dim), (x, y),
                (_with_specials(rng, x, 2), y))


def _matmul_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = rng.choice([torch.float32, torch.float32, torch.bfloat16])
    shape_a, shape_b = MATMUL_SHAPES[op](sizes["m"], sizes["k"], sizes["n"], sizes["batch"])
    a = torch.randn(shape_a, generator=gen).to(dtype)
    b = torch.randn(shape_b, generator=gen).to(dtype)
    call_a, call_b = a.clone(), b.clone()
    if rng.random() < 0.3:
        call_a.view(-1)[rng.randrange(call_a.numel())] = rng.choice(
            [float("nan"), float("inf"), float("-inf")])
    return Case("matmul", op, seed, sizes, Matmul, (a, b), (call_a, call_b))


def _pooling_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    spatial_dims = int(op.split("_pool")[1][0])
    kernel, stride, dilation = rng.randrange(1, 4), rng.randrange(1, 4), rng.choice([1, 1, 2])
    span = (kernel - 1) * dilation + 1
    padding = rng.randrange(0, kernel // 2 + 1)  # PyTorch's limit: half the window
    ceil_mode = rng.random() < 0.5
    dtype = torch.float32 if op == "conv_max_pool2d" else rng.choice(
        [torch.float32, torch.float64, torch.float16, torch.bfloat16])
    # Every extent at least the window, so there is an output; the conv's input small.
    shape = [1, sizes["channels"]] + [sizes["length"] + span + i for i in range(spatial_dims)]
    x = torch.randn(shape, generator=gen).to(dtype)
    if op.endswith("_indices") and rng.random() < 0.5:
        x = x.round()  # equal values in a window: the first one's index is PyTorch's
    make = lambda: Pooling(op, sizes["channels"], kernel, stride, padding, dilation, ceil_mode)
    return Case("pooling", op, seed, sizes, make, (x,), (_with_specials(rng, x, 4),))


def _linear_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = rng.choice([torch.float32, torch.float32, torch.bfloat16])
    x = torch.randn(LINEAR_SHAPES[op](sizes["m"], sizes["k"], sizes["batch"]),
                    generator=gen).to(dtype)
    weight = torch.randn(sizes["n"], sizes["k"], generator=gen)
    bias = torch.randn(sizes["n"], generator=gen) if rng.random() < 0.5 else None
    return Case("linear", op, seed, sizes, lambda: LinearLayer(weight, bias, dtype), (x,),
                (_with_specials(rng, x, 2),))


def _relative_tolerance(model: torch.nn.Module, x: torch.Tensor, fraction: float) -> float:
    """`fraction` of the largest finite magnitude of model(x) (of 1 where that is smaller): a
    whole model's error grows with its values, not with each element's."""
    with torch.no_grad():
        expected = model(x)
    finite = expected[torch.isfinite(expected)]
    return fraction * max(1.0, finite.abs().max().item() if finite.numel() else 0.0)


def _network_case(op: str, seed: int, sizes: dict) -> Case:
    """A generated CNN (NETWORK_BLOCKS) built as NETWORK_BUILDS[op] says, called on values
    with NaN, infinities or -0.0 in most cases. Tolerance: relative to the output's largest
    finite magnitude, 1e-4 in float32 (oneDNN sums in another order than PyTorch), 3e-2 in
    bfloat16 (each layer rounds its products' operands to 8 bits)."""
    precision, onednn, exported = NETWORK_BUILDS[op]
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    channels, side = sizes["channels"], sizes["width"]
    draws = rng.randrange(2**31)

    def make_module() -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(draws)
            return _network(random.Random(draws), channels, side, sizes["blocks"]).eval()

    x = torch.randn(rng.choice([1, 1, 2]), channels, side, side, generator=gen)
    call = _with_specials(rng, x, 3) if rng.random() < 0.7 else x
    atol = _relative_tolerance(make_module(), x, 1e-4 if precision == "fp32" else 3e-2)
    return Case("networks", op, seed, sizes, make_module, (x,), (call,), atol=atol,
                precision=precision, onednn_convolutions=onednn, exported=exported)


def _transformer_case(op: str, seed: int, sizes: dict) -> Case:
    """A generated encoder (TRANSFORMER_BLOCKS) built as TRANSFORMER_BUILDS[op] says: on token
    ids, some outside the table (the call must raise as PyTorch does), or on hidden states with
    NaN, infinities or -0.0 in most cases. Tolerance: relative to the output's largest finite
    magnitude, 1e-4 in float32, 5e-2 in bfloat16."""
    precision, tokens, on_vm = TRANSFORMER_BUILDS[op]
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    heads, head_width, steps = sizes["heads"], sizes["head_width"], sizes["steps"]
    width, vocabulary = heads * head_width, rng.randrange(2, 50)
    batch, draws = rng.choice([1, 1, 2]), rng.randrange(2**31)

    def make_module() -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(draws)
            blocks = _transformer_blocks(random.Random(draws), heads, head_width, sizes["blocks"])
            model = TokenEncoder(vocabulary, steps, width, blocks) if tokens else blocks
            return model.eval()

    if tokens:
        x = torch.randint(0, vocabulary, (batch, steps), generator=gen)
        call = _maybe_out_of_range(rng, x, vocabulary, 0)
    else:
        x = torch.randn(batch, steps, width, generator=gen)
        call = _with_specials(rng, x, 3) if rng.random() < 0.7 else x
    atol = _relative_tolerance(make_module(), x, 1e-4 if precision == "fp32" else 5e-2)
    return Case("transformers", op, seed, sizes, make_module, (x,), (call,), atol=atol,
                precision=precision, on_vm=on_vm)


def _pt2e_case(op: str, seed: int, sizes: dict) -> Case:
    """The model is quantized by PT2E here, calibrated on seeded batches, and called beyond
    their range too; its values must be PT2E's own model's within one step of the last grid."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Pt2eStack(op, sizes["channels"])
    shape = ([sizes["batch"], sizes["length"] + 1, sizes["channels"]] if op.startswith("linear")
             else [sizes["batch"], sizes["channels"], sizes["length"] + 1, sizes["length"] + 1])
    x = torch.randn(shape, generator=gen)
    converted = quantize_pt2e(model, x, [torch.randn(shape, generator=gen) for _ in range(3)])
    call = x * rng.choice([0.5, 1.0, 3.0])
    return Case("pt2e", op, seed, sizes, lambda: converted, (x,), (call,),
                atol=1.001 * last_quantize_scale(converted), exported=True)


def _quantized_case(op: str, seed: int, sizes: dict) -> Case:
    """The model is quantized here (calibrated on seeded random inputs) and its values compared
    within one step of its output's scale (PyTorch's kernels on both sides, where TVM hands them
    the convolutions; TVM's float32 form, exact on the grid, elsewhere)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    channels = sizes["channels"]
    groups = rng.choice([1, 1, channels])
    out_channels = groups * rng.randrange(1, 4)
    kernel, stride, dilation = rng.randrange(1, 4), rng.randrange(1, 3), rng.choice([1, 1, 2])
    padding = rng.randrange(0, kernel)
    conv = torch.nn.Conv2d(channels, out_channels, kernel, stride, padding, dilation, groups,
                           bias=rng.random() < 0.7)
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen) * 0.5)
    model = QuantizedConv(op, conv).eval()
    if op == "conv2d_relu":
        torch.ao.quantization.fuse_modules(model, [["conv", "relu"]], inplace=True)
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    torch.ao.quantization.prepare(model, inplace=True)
    extent = (kernel - 1) * dilation + 1 + sizes["length"]
    shape = [1, channels, extent, extent + 1]
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(shape, generator=gen))
    torch.ao.quantization.convert(model, inplace=True)
    x = torch.randn(shape, generator=gen) * rng.choice([0.5, 1.0, 3.0])  # beyond calibration too
    last = model.residual if op == "conv2d_add_relu" else model.conv  # sets the output's scale
    return Case("quantized", op, seed, sizes, lambda: model, (x,), (x,),
                atol=1.001 * float(last.scale))


def _input_writes_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    shape = [sizes["rows"], sizes["cols"]]
    x, y = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    steps = [(op, 0)] + [(rng.choice(list(INPUT_WRITES)), rng.choice([0, 0, 1]))
                         for _ in range(rng.randrange(0, 3))]
    result = rng.choice(["x", "x_plus_y", "mixed"])
    call_x, call_y = x.clone(), y.clone()
    if rng.random() < 0.4:
        call_x.view(-1)[rng.randrange(call_x.numel())] = rng.choice(
            [float("nan"), float("inf"), float("-inf")])

    def make_module():
        # Traced on copies: tracing runs the writes.
        return torch.jit.trace(InputWrites(steps, result), (x.clone(), y.clone()),
                               check_trace=False)

    return Case("input_writes", op, seed, sizes, make_module, (x, y), (call_x, call_y))


def _view_writes_case(op: str, seed: int, sizes: dict) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sizes["rows"], sizes["cols"], generator=gen)
    writes = [rng.choice(list(VIEW_WRITES)) for _ in range(rng.randrange(1, 3))]
    result = rng.choice(["base", "view", "both"])
    call = x.clone()
    if rng.random() < 0.4:
        call.view(-1)[rng.randrange(call.numel())] = rng.choice(
            [float("nan"), float("inf"), float("-inf")])

    def make_module():
        return torch.jit.trace(ViewWrites(op, writes, result), (x.clone(),), check_trace=False)

    return Case("view_writes", op, seed, sizes, make_module, (x,), (call,),
                allowed_fallbacks=VIEW_WRITE_FALLBACKS)


def _data_dependent_case(op: str, seed: int, sizes: dict) -> Case:
    module, inputs, dtype = DATA_DEPENDENT[op]
    rng = random.Random(seed)
    x = grid_values(rng, (sizes["rows"], sizes["length"]), dtype)  # length 0: no elements
    if inputs == "boxes":  # small integer corners: equal scores, touching and nested boxes
        count = sizes["rows"] * sizes["length"]
        gen = torch.Generator().manual_seed(seed)
        corner = torch.randint(0, 6, (count, 2), generator=gen)
        boxes = torch.cat([corner, corner + torch.randint(0, 4, (count, 2), generator=gen)], 1)
        call = (boxes.to(dtype), x.flatten())
    elif inputs == "values and mask":
        call = (x, grid_values(rng, (sizes["length"],)) > 0)
    else:
        call = (x,)
    return Case("data_dependent", op, seed, sizes, module, call, call, on_vm=True)


FAMILIES = {
    "input_writes": (list(INPUT_WRITES), _input_writes_case,
                     lambda rng: {"rows": rng.randrange(1, 5), "cols": rng.randrange(1, 6)}),
    "view_writes": (list(VIEWS), _view_writes_case,
                    lambda rng: {"rows": rng.randrange(1, 5), "cols": rng.randrange(1, 6)}),
    "indexing": (list(INDEXING), _indexing_case,
                 lambda rng: {"rows": rng.randrange(1, 6), "cols": rng.randrange(1, 6),
                              "count": rng.randrange(0, 5)}),
    "floating": (FLOATING, _floating_case,
                 lambda rng: {"channels": rng.randrange(1, 4), "height": rng.randrange(2, 5),
                              "width": rng.randrange(2, 5)}),
    "division": (DIVISION, _division_case, lambda rng: {"length": rng.randrange(0, 6)}),
    "transcendental": (TRANSCENDENTAL, _transcendental_case,
                       lambda rng: {"rows": rng.randrange(1, 6), "cols": rng.randrange(1, 40)}),
    "sorting": (SORTING, _sorting_case,
                lambda rng: {"rows": rng.randrange(1, 5), "cols": rng.randrange(1, 9)}),
    "reduction": (REDUCTION, _reduction_case,
                  lambda rng: {"rows": rng.randrange(1, 4), "cols": rng.randrange(1, 5),
                               "depth": rng.randrange(1, 6)}),
    # cols may be 0 here: tensors with no elements.
    "binary": (BINARY, _binary_case,
               lambda rng: {"rows": rng.randrange(1, 4), "cols": rng.randrange(0, 6)}),
    "elementwise": (list(ELEMENTWISE), _elementwise_case,
                    lambda rng: {"rows": rng.randrange(1, 4), "cols": rng.randrange(0, 9)}),
    "shape": (SHAPE, _shape_case,
              lambda rng: {"rows": rng.randrange(1, 4), "cols": rng.randrange(1, 5),
                           "depth": rng.randrange(1, 5)}),
    "pooling": (POOLING, _pooling_case,
                lambda rng: {"channels": rng.randrange(1, 4), "length": rng.randrange(0, 5)}),
    "linear": (list(LINEAR_SHAPES), _linear_case,
               lambda rng: {"m": rng.randrange(1, 9), "k": rng.randrange(1, 40),
                            "n": rng.randrange(1, 9), "batch": rng.randrange(1, 4)}),
    "ranged": (RANGED, _ranged_case,
               lambda rng: {"rows": rng.randrange(1, RANGED_ROWS[2] - RANGED_ROWS[0] + 2),
                            "count": rng.randrange(0, 5)}),
    "quantized": (QUANTIZED, _quantized_case,
                  lambda rng: {"channels": rng.randrange(1, 9), "length": rng.randrange(0, 6)}),
    "pt2e": (PT2E, _pt2e_case,
             lambda rng: {"channels": rng.randrange(1, 9), "length": rng.randrange(0, 6),
                          "batch": rng.randrange(1, 3)}),
    "data_dependent": (list(DATA_DEPENDENT), _data_dependent_case,
                       lambda rng: {"rows": rng.randrange(1, 5), "length": rng.randrange(0, 6)}),
    "networks": (list(NETWORK_BUILDS), _network_case,
                 lambda rng: {"blocks": rng.randrange(1, 5), "channels": rng.randrange(1, 9),
                              "width": rng.randrange(1, 13)}),
    "transformers": (list(TRANSFORMER_BUILDS), _transformer_case,
                     lambda rng: {"blocks": rng.randrange(1, 4), "heads": rng.randrange(1, 5),
                                  "head_width": rng.randrange(1, 9),
                                  "steps": rng.randrange(1, 11)}),
    "matmul": (list(MATMUL_SHAPES), _matmul_case,
               lambda rng: {"m": rng.randrange(1, 9), "k": rng.randrange(1, 40),
                            "n": rng.randrange(1, 9), "batch": rng.randrange(1, 4)}),
}
MINIMUM_SIZES = {"rows": 1, "cols": 1, "count": 0, "channels": 1, "height": 2, "width": 2,
                 "length": 0, "depth": 1, "m": 1, "k": 1, "n": 1, "batch": 1, "blocks": 1,
                 "heads": 1, "head_width": 1, "steps": 1}


# --- running ---------------------------------------------------------------------------------

# Values are compared at rtol = atol = 1e-5, or this for the half-precision dtypes.
TOLERANCE = {torch.float16: 1e-3, torch.bfloat16: 1e-2}

# Converter refusals the cases may meet (the op then runs in PyTorch, and must still agree).
KNOWN_REFUSALS = ("an empty index is left to PyTorch",
                  "an integer tensor to a tensor or negative power is left to PyTorch")


def check(case: Case, refusals: list | None = None) -> str | None:
    """None when the compiled module agrees with PyTorch on the case, else what differs.
    Nodes the converters leave to PyTorch for a reason in KNOWN_REFUSALS are allowed (and
    appended to `refusals`); any other node left to PyTorch is a finding."""
    model = case.make_module()
    if case.exported:
        return _check_exported(model, case)
    model = model.eval()
    if case.on_vm:
        return _check_on_vm(model, case)
    try:
        inputs = case.inputs or [t.clone() for t in case.example]
        with _convolution_kernels(case.onednn_convolutions):
            compiled = tt.compile(torch.jit.script(model), inputs, min_block_size=1,
                                  never_slower=False, precision=case.precision)
    except Exception as error:  # noqa: BLE001 (a compile that fails is a finding)
        return f"does not compile: {str(error).splitlines()[0][:300]}"
    for node in tt.report(compiled).nodes:
        if node["region"] >= 0 or not node["fallback"]:
            continue
        if not any(reason in node["reason"]
                   for reason in KNOWN_REFUSALS + case.allowed_fallbacks):
            return f"{node['kind']} stays in PyTorch: {node['reason'][:300]}"
        if refusals is not None:
            refusals.append(f"{case.op}: {node['reason'][:120]}")
    expected, expected_error = None, None
    if case.pytorch_dies:
        expected_error = "PyTorch traps (SIGFPE)"
    # Each side gets its own copy of the call: what a model writes into its inputs is compared
    # too.
    expected_inputs = [t.clone() for t in case.call]
    actual_inputs = [t.clone() for t in case.call]
    if not case.pytorch_dies:
        try:
            with torch.no_grad():
                expected = model(*expected_inputs)
        except Exception as error:  # noqa: BLE001
            expected_error = f"{type(error).__name__}: {error}"
    try:
        actual = compiled(*actual_inputs)
    except Exception as error:  # noqa: BLE001
        if expected_error is None:
            return f"raises where PyTorch answers: {str(error).splitlines()[-1][:300]}"
        known = ("out of range", "ZeroDivisionError", "overflow")
        if not any(word in str(error) for word in known):
            return f"raises an unexplained error: {str(error)[-300:]}"
        return None
    if expected_error is not None:
        return f"answers where PyTorch raises ({expected_error.splitlines()[0][:200]})"
    for index, (after, expected_after) in enumerate(zip(actual_inputs, expected_inputs)):
        problem = _difference(after, expected_after, case)
        if problem is not None:
            return f"input {index} after the call: {problem}"
    return _difference(actual, expected, case)


@contextlib.contextmanager
def _convolution_kernels(onednn: bool | None):
    """Builds within have oneDNN's convolutions (True) or TVM's (False) alone, instead of the
    build timing both (pipeline.convolution_kernel_choices); None changes nothing."""
    if onednn is None:
        yield
        return
    choices = pipeline.convolution_kernel_choices
    pipeline.convolution_kernel_choices = lambda *args, **kwargs: (onednn,)
    try:
        yield
    finally:
        pipeline.convolution_kernel_choices = choices


def _check_exported(model: torch.nn.Module, case: Case) -> str | None:
    """check() for an exported module: compiled whole with ir="export" (no region failed, no
    op left to PyTorch), its outputs as PyTorch's."""
    try:
        with _convolution_kernels(case.onednn_convolutions):
            compiled = tt.compile(model, list(case.example), ir="export", min_block_size=1,
                                  never_slower=False, precision=case.precision)
    except Exception as error:  # noqa: BLE001 (a compile that fails is a finding)
        return f"does not compile: {str(error).splitlines()[0][:300]}"
    report = tt.report(compiled)
    if report.failed_regions or report.torch_ops:
        return f"not whole in TVM: {report.torch_ops} {report.failed_regions}"
    with torch.no_grad():
        expected, actual = model(*case.call), compiled(*case.call)
    return _difference(actual, expected, case)


def _check_on_vm(model: torch.nn.Module, case: Case) -> str | None:
    """check() for a case run whole on TVM's VM: every output as PyTorch's."""
    try:
        actual = run_on_vm(model, *case.call)
    except Exception as error:  # noqa: BLE001 (a conversion that fails is a finding)
        return f"does not run on the VM: {str(error).splitlines()[0][:300]}"
    with torch.no_grad():
        expected = model(*case.call)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    if len(actual) != len(expected):
        return f"gives {len(actual)} outputs, PyTorch {len(expected)}"
    for index, (a, e) in enumerate(zip(actual, expected)):
        problem = _difference(a, e, case)
        if problem is not None:
            return f"output {index}: {problem}"
    return None


def _difference(actual: torch.Tensor, expected: torch.Tensor, case: Case) -> str | None:
    """What differs between a result and PyTorch's (dtype, shape, NaN mask, values within the
    case's tolerance), or None."""
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        return f"gives {actual.dtype}{list(actual.shape)}, PyTorch {expected.dtype}{list(expected.shape)}"
    if actual.is_floating_point():
        if not torch.equal(torch.isnan(actual), torch.isnan(expected)):
            return f"NaN mask differs: {actual.flatten()[:12].tolist()} vs {expected.flatten()[:12].tolist()}"
        tolerance = TOLERANCE.get(actual.dtype, 1e-5)
        rtol, atol = (tolerance, tolerance) if case.atol is None else (0.0, case.atol)
        if not torch.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True):
            return f"values differ: {actual.flatten()[:12].tolist()} vs {expected.flatten()[:12].tolist()}"
    elif not torch.equal(actual, expected):
        return f"values differ: {actual.flatten()[:12].tolist()} vs {expected.flatten()[:12].tolist()}"
    return None


def shrink(family: str, case: Case, problem: str) -> tuple[Case, str]:
    """Lowers the case's size parameters one step at a time while it still fails."""
    _, make, _ = FAMILIES[family]
    improved = True
    while improved:
        improved = False
        for name, value in case.sizes.items():
            if value <= MINIMUM_SIZES[name]:
                continue
            smaller = make(case.op, case.seed, dict(case.sizes, **{name: value - 1}))
            smaller_problem = check(smaller)
            if smaller_problem is not None:
                case, problem, improved = smaller, smaller_problem, True
                break
    return case, problem


def run_cases(cases_per_family: int, seed: int = 0, families=tuple(FAMILIES)) -> dict:
    """Runs the cases; returns {family: {"cases": n, "failures": [(description, problem)],
    "refusals": [known refusals met]}}."""
    results = {}
    for family in families:
        ops, make, draw_sizes = FAMILIES[family]
        rng = random.Random(f"{family}:{seed}")
        failures, refusals = [], []
        for index in range(cases_per_family):
            op = ops[index % len(ops)]
            case_seed = rng.randrange(2**31)
            case = make(op, case_seed, draw_sizes(rng))
            problem = check(case, refusals)
            if problem is not None:
                case, problem = shrink(family, case, problem)
                failures.append((case.describe(), problem))
        results[family] = {"cases": cases_per_family, "failures": failures,
                           "refusals": refusals}
    return results


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="cases per family")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = run_cases(args.cases, args.seed)
    failed = False
    for family, result in results.items():
        print(f"{family}: {result['cases']} cases, {len(result['failures'])} disagreements, "
              f"{len(result['refusals'])} known refusals (run in PyTorch)")
        for description, problem in result["failures"]:
            failed = True
            print(f"  {description}\n    {problem}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
