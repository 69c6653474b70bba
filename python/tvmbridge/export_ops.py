"""What the export path hands to TVM: the ATen overloads TVM's ExportedProgram translator
converts, the converters tvmbridge adds to its map (scaled_dot_product_attention written for
PyTorch's fused kernel, PT2E's quantize and dequantize, max pooling with its default stride),
the decompositions that keep attention whole, and which fx nodes a region may take
(:class:`TranslatableByTvm`). export.py partitions and builds with these."""

from __future__ import annotations

import functools
from typing import Iterable

import torch
import torch.fx as fx
from torch.fx.passes.operator_support import OperatorSupportBase

from .types import DTYPE_NAMES


@functools.cache
def translatable_ops() -> frozenset:
    """The overloads ("conv2d.default") TVM's ExportedProgram translator converts, with the
    quantize and dequantize ops of PT2E quantization that tvmbridge adds to it."""
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    return frozenset(ExportedProgramImporter().create_convert_map()) | frozenset(CONVERTERS)


def decompositions() -> dict:
    """PyTorch's core-ATen decompositions, but for scaled_dot_product_attention, which
    :func:`_convert_attention` writes in the form the build hands to PyTorch's fused kernel
    (decomposed, it is a dozen ops no pattern finds)."""
    table = torch.export.default_decompositions()
    table.pop(torch.ops.aten.scaled_dot_product_attention.default, None)
    return table


def _convert_attention(node: fx.Node, importer):
    """scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale,
    enable_gqa) written as the TorchScript frontend writes it (src/frontend/ops_nn.cc:
    ``softmax(q @ k^T * scale + mask) @ v``, a query that sees no key getting zeros), which
    the build's FusedAttention hands to PyTorch's fused kernel. TVM's own converter takes
    what that form does not cover (dropout, grouped keys, other ranks)."""
    from tvm import relax

    args = list(node.args) + [None] * (8 - len(node.args))
    query, key, value, mask, dropout, causal, scale, grouped = args
    mask = node.kwargs.get("attn_mask", mask)
    dropout = node.kwargs.get("dropout_p", dropout) or 0.0
    causal = node.kwargs.get("is_causal", causal) or False
    scale = node.kwargs.get("scale", scale)
    grouped = node.kwargs.get("enable_gqa", grouped) or False
    shapes = [tensor.meta["val"].shape for tensor in (query, key, value)]
    causal_extents = [shapes[0][-2], shapes[1][-2]] if causal else []
    if dropout != 0.0 or grouped or any(len(shape) != 4 for shape in shapes) or not all(
            isinstance(d, int) for d in [shapes[0][-1], *causal_extents]):
        return importer._scaled_dot_product_attention(node)
    query, key, value = (importer.env[tensor] for tensor in (query, key, value))
    dtype = query.ty.dtype
    if scale is None:
        scale = 1.0 / float(shapes[0][-1]) ** 0.5
    emit = importer.block_builder.emit
    scores = emit(relax.op.matmul(query, relax.op.permute_dims(key, [0, 1, 3, 2])))
    scores = emit(relax.op.multiply(scores, relax.const(scale, dtype)))
    masked_out = relax.const(float("-inf"), dtype)
    if causal:  # query i sees keys 0..i
        sees = relax.const(torch.ones(*causal_extents, dtype=torch.bool).tril().numpy())
        scores = emit(relax.op.where(sees, scores, masked_out))
    if mask is not None:
        mask = importer.env[mask]
        scores = emit(relax.op.where(mask, scores, masked_out) if mask.ty.dtype == "bool"
                      else relax.op.add(scores, mask))
    weights = emit(relax.op.nn.softmax(scores, axis=-1))
    blocked = emit(relax.op.astype(emit(relax.op.equal(scores, masked_out)), dtype))
    sees_no_key = emit(relax.op.equal(emit(relax.op.min(blocked, axis=[-1], keepdims=True)),
                                      relax.const(1.0, dtype)))
    weights = emit(relax.op.where(sees_no_key, relax.const(0.0, dtype), weights))
    return emit(relax.op.matmul(weights, value))


# --- PT2E quantization's quantize and dequantize ops ----------------------------------------
# convert_pt2e (torchao's PT2E flow, X86InductorQuantizer) writes a quantized model as float
# ops between quantized_decomposed ops: quantize(op(dequantize(x), dequantize(w_int8))). They
# become Relax's quantize and dequantize, the form the TorchScript frontend gives quantized
# models too, in which the build finds the convolutions it runs on int8 kernels
# (quantized.py). Only the overloads with constant scales and zero points (static
# quantization); the .tensor overloads (computed at run time) stay in PyTorch.

_INTEGER_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


def _scalar(value: float, dtype: str):
    from tvm import relax

    return relax.const(value, dtype)


def _integer_dtype(node: fx.Node, dtype: torch.dtype) -> str:
    """The Relax name of an 8-bit dtype (the partition keeps others in PyTorch)."""
    name = DTYPE_NAMES.get(dtype)
    if name not in _INTEGER_RANGES:
        raise ValueError(f"tvmbridge: {_qualified(node.target)} to {dtype} is not supported; "
                         f"PT2E's 8-bit dtypes (torch.uint8, torch.int8) are")
    return name


def _convert_quantize_per_tensor(node: fx.Node, importer):
    """quantize_per_tensor(x, scale, zero_point, quant_min, quant_max, dtype)."""
    from tvm import relax

    x, scale, zero_point, quant_min, quant_max, dtype = node.args[:6]
    dtype = _integer_dtype(node, dtype)
    q = relax.op.quantize(importer.env[x], _scalar(scale, "float32"),
                          _scalar(zero_point, "int32"), axis=-1, out_dtype=dtype)
    if (quant_min, quant_max) != _INTEGER_RANGES[dtype]:  # a narrower range than the dtype's
        q = relax.op.clip(q, quant_min, quant_max)
    return importer.block_builder.emit(q)


def _convert_dequantize_per_tensor(node: fx.Node, importer):
    """dequantize_per_tensor(x, scale, zero_point, quant_min, quant_max, dtype, out_dtype)."""
    from tvm import relax

    x, scale, zero_point = node.args[:3]
    _integer_dtype(node, node.args[5])
    return importer.block_builder.emit(relax.op.dequantize(
        importer.env[x], _scalar(scale, "float32"), _scalar(zero_point, "int32"), axis=-1,
        out_dtype=DTYPE_NAMES[node.kwargs.get("out_dtype") or torch.float32]))


def _convert_dequantize_per_channel(node: fx.Node, importer):
    """dequantize_per_channel(x, scales, zero_points, axis, quant_min, quant_max, dtype,
    out_dtype): a weight's, whose scales and zero points are constants of the region."""
    from tvm import relax

    x, scales, zero_points, axis = node.args[:4]
    _integer_dtype(node, node.args[6])
    # Weights are still parameters here (the translator binds them to constants after), so
    # the casts stay in the program; the build reads through them (quantized.py).
    scales = relax.op.astype(importer.env[scales], "float32")
    if zero_points is None:
        zero_points = _scalar(0, "int32")
    else:
        zero_points = relax.op.astype(importer.env[zero_points], "int32")
    return importer.block_builder.emit(relax.op.dequantize(
        importer.env[x], scales, zero_points, axis=axis,
        out_dtype=DTYPE_NAMES[node.kwargs.get("out_dtype") or torch.float32]))


def _max_pool_with_its_kernel_as_stride(method: str):
    """TVM's translator takes a max pooling's omitted stride only as None; ATen writes it as
    [] (``F.max_pool2d(x, 2)``), which TVM's pooling then rejects ("The input strides length is
    expected to be 2"). Both mean strides of the kernel's size, which the node is given."""

    def convert(node: fx.Node, importer):
        if len(node.args) > 2 and not node.args[2]:
            node.args = (*node.args[:2], node.args[1], *node.args[3:])
        return getattr(importer, method)(node)

    return convert


_MAX_POOLS = {f"{op}.default": _max_pool_with_its_kernel_as_stride(f"_{op}")
              for op in ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                         "max_pool3d_with_indices")}


# By the name TVM's translator looks converters up under (the overload's __name__); their
# namespace, quantized_decomposed, is checked where nodes are chosen (TranslatableByTvm).
_QDQ_CONVERTERS = {
    "quantize_per_tensor.default": _convert_quantize_per_tensor,
    "dequantize_per_tensor.default": _convert_dequantize_per_tensor,
    "dequantize_per_channel.default": _convert_dequantize_per_channel,
}
_QDQ_NAMESPACE = "quantized_decomposed"
# What tvmbridge adds to (or takes over in) the translator's map.
CONVERTERS = {**_QDQ_CONVERTERS, **_MAX_POOLS,
               "scaled_dot_product_attention.default": _convert_attention}
_QDQ_DTYPE_POSITION = {"quantize_per_tensor.default": 5, "dequantize_per_tensor.default": 5,
                       "dequantize_per_channel.default": 6}


def _converted_quantization(node: fx.Node) -> bool:
    """Whether a node named as one of _QDQ_CONVERTERS is PT2E's op (not aten's
    quantize_per_tensor, which makes a quantized tensor) on an 8-bit dtype; others stay in
    PyTorch."""
    position = _QDQ_DTYPE_POSITION[_op_name(node.target)]
    return (node.target.namespace == _QDQ_NAMESPACE and len(node.args) > position
            and DTYPE_NAMES.get(node.args[position]) in _INTEGER_RANGES)


def _op_name(target) -> str:
    return getattr(target, "__name__", "")


def _qualified(target) -> str:
    """"aten::topk" for aten.topk.default (the spelling torch_executed_ops uses)."""
    schema = getattr(target, "_schema", None)
    return schema.name if schema is not None else _op_name(target)


def is_op(node: fx.Node) -> bool:
    """A call of an ATen operator (not getitem or Python arithmetic on sizes)."""
    return node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)


def tally(counts: dict, nodes: Iterable[fx.Node]) -> None:
    """Adds the ops among `nodes` to `counts` by name, leaving out torch.export's size reads
    and input assertions."""
    for node in nodes:
        name = _qualified(node.target) if is_op(node) else ""
        if name and not name.startswith(("aten::sym_", "aten::_assert")):
            counts[name] = counts.get(name, 0) + 1


def _tensors_in(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors_in(item)]
    return []


# Ops that read or write through indices a caller can send. TVM's translator lowers them to
# unchecked gathers and scatters (take in "fast" mode), which read wherever an index points;
# PyTorch checks and raises IndexError. They stay in PyTorch on this path (the TorchScript
# frontend checks them inside the compiled code instead: src/frontend/value_checks.h).
_UNCHECKED_INDEXING = frozenset({
    "aten::embedding", "aten::embedding_bag", "aten::_embedding_bag", "aten::index_select",
    "aten::gather", "aten::take", "aten::take_along_dim", "aten::index", "aten::_unsafe_index",
    "aten::index_put", "aten::index_put_", "aten::_unsafe_index_put", "aten::index_add",
    "aten::index_copy", "aten::index_fill", "aten::scatter", "aten::scatter_add",
    "aten::scatter_reduce", "aten::one_hot", "aten::nll_loss_forward", "aten::nll_loss2d_forward",
    "torchvision::roi_align",
    # Integer division traps on a zero divisor; PyTorch raises.
    "aten::div", "aten::floor_divide", "aten::remainder", "aten::fmod",
})


def _only_floats(node: fx.Node) -> bool:
    """Whether every tensor the node reads is floating point (no index, no integer divisor)."""
    return all(t.is_floating_point() for arg in node.all_input_nodes
               for t in _tensors_in(arg.meta.get("val")))


class TranslatableByTvm(OperatorSupportBase):
    def __init__(self, torch_executed_ops: Iterable[str]):
        self.torch_executed_ops = set(torch_executed_ops)
        self._decided = {}

    def is_node_supported(self, submodules, node: fx.Node) -> bool:
        if node not in self._decided:
            self._decided[node] = self._decide(submodules, node)
        return self._decided[node]

    def _decide(self, submodules, node: fx.Node) -> bool:
        if node.op != "call_function" or _qualified(node.target) in self.torch_executed_ops:
            return False
        name = _op_name(node.target)
        if name not in translatable_ops():
            return False
        if name in _QDQ_CONVERTERS and not _converted_quantization(node):
            return False
        if _qualified(node.target) in _UNCHECKED_INDEXING and not _only_floats(node):
            return False
        values = _tensors_in(node.meta.get("val"))
        if not values or not all(t.dtype in DTYPE_NAMES and t.device.type == "cpu" for t in values):
            return False
        # Regions take tensors only: a size PyTorch computes (sym_size of an input) keeps its
        # users out.
        return all(isinstance(arg.meta.get("val"), torch.Tensor)
                   or self.is_node_supported(submodules, arg) for arg in node.all_input_nodes)
