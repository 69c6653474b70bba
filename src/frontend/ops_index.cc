// Indexing, slicing and splitting: select, slice, index_select, embedding, chunk, split,
// unsqueeze, squeeze, expand, where, argmax/argmin, topk, gather, index.
#include <algorithm>
#include <limits>

#include <c10/util/Exception.h>

#include "frontend/converter.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

// Splits `x` along `axis` at `indices` and returns the pieces as a TorchScript list.
Value SplitAt(ConversionContext& ctx, const Expr& x, const IntList& indices, int64_t axis) {
  Expr pieces = ctx.EmitExpr(relax::op::Split(x, indices, axis));
  std::vector<Value> items;
  for (size_t i = 0; i <= indices.size(); ++i) {
    items.push_back(ctx.Emit(relax::TupleGetItem(pieces, static_cast<int>(i))));
  }
  return Value::List(std::move(items));
}

// aten::chunk(self, chunks, dim): pieces of ceil(n / chunks), the last one smaller.
Value ConvertChunk(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(2)), static_cast<int64_t>(shape.size()));
  int64_t chunks = ctx.Int(node.input(1));
  TORCH_CHECK(chunks > 0, "chunk expects a positive number of chunks");
  int64_t size = (shape[axis] + chunks - 1) / chunks;
  IntList indices;
  for (int64_t at = size; at < shape[axis]; at += size) indices.push_back(at);
  return SplitAt(ctx, x, indices, axis);
}

// aten::split(self, split_size: int | int[], dim) and aten::split_with_sizes(self, sizes, dim)
Value ConvertSplit(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(2)), static_cast<int64_t>(shape.size()));
  c10::IValue sizes = ctx.Constant(node.input(1));
  IntList indices;
  if (sizes.isInt()) {
    TORCH_CHECK(sizes.toInt() > 0, "split expects a positive size");
    for (int64_t at = sizes.toInt(); at < shape[axis]; at += sizes.toInt()) indices.push_back(at);
  } else {
    int64_t at = 0;
    IntList lengths = sizes.toIntVector();
    for (size_t i = 0; i + 1 < lengths.size(); ++i) indices.push_back(at += lengths[i]);
  }
  return SplitAt(ctx, x, indices, axis);
}

// The begin/end of a slice with PyTorch's clamping of out-of-range and None bounds.
std::pair<int64_t, int64_t> SliceBounds(ConversionContext& ctx, const torch::jit::Value* start,
                                        const torch::jit::Value* end, int64_t extent) {
  auto bound = [&](const torch::jit::Value* value, int64_t fallback) {
    if (ctx.IsNone(value)) return fallback;
    int64_t position = ctx.Int(value);
    if (position < 0) position += extent;
    return std::clamp<int64_t>(position, 0, extent);
  };
  return {bound(start, 0), bound(end, extent)};
}

// aten::slice(self, dim, start, end, step)
Value ConvertSlice(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(shape.size()));
  auto [begin, end] = SliceBounds(ctx, node.input(2), node.input(3), shape[axis]);
  int64_t step = ctx.Int(node.input(4));
  TORCH_CHECK(step > 0, "slice step must be positive");
  if (begin == 0 && end == shape[axis] && step == 1) return ctx.Get(node.input(0));
  end = std::max(begin, end);
  return ctx.Emit(relax::op::StridedSlice(x, {axis}, {begin}, {end}, {step}));
}

// aten::select(self, dim, index): one slice along dim, without that dim.
Value ConvertSelect(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(shape.size()));
  int64_t index = ctx.Int(node.input(2));
  if (index < 0) index += shape[axis];
  TORCH_CHECK(index >= 0 && index < shape[axis], "select index ", ctx.Int(node.input(2)),
              " is out of range for size ", shape[axis]);
  Expr one = ctx.EmitExpr(relax::op::StridedSlice(x, {axis}, {index}, {index + 1}, {1}));
  return ctx.Emit(relax::op::Squeeze(one, {axis}));
}

// aten::index_select(self, dim, index)
Value ConvertIndexSelect(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(ctx.Shape(x).size()));
  return ctx.Emit(relax::op::Take(x, ctx.Tensor(node.input(2)), axis));
}

// aten::embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse)
Value ConvertEmbedding(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::Take(ctx.Tensor(node.input(0)), ctx.Tensor(node.input(1)), 0));
}

// aten::unsqueeze(self, dim)
Value ConvertUnsqueeze(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  auto rank = static_cast<int64_t>(ctx.Shape(x).size());
  return ctx.Emit(relax::op::ExpandDims(x, {NormalizeAxis(ctx.Int(node.input(1)), rank + 1)}));
}

// aten::squeeze(self[, dim | dims]): like PyTorch, dims whose size is not 1 are kept.
Value ConvertSqueeze(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  auto rank = static_cast<int64_t>(shape.size());
  IntList candidates;
  if (node.inputs().size() == 1) {
    for (int64_t axis = 0; axis < rank; ++axis) candidates.push_back(axis);
  } else {
    for (int64_t axis : ctx.Ints(node.input(1))) candidates.push_back(NormalizeAxis(axis, rank));
  }
  IntList axes;
  for (int64_t axis : candidates) {
    if (shape[axis] == 1) axes.push_back(axis);
  }
  if (axes.empty()) return ctx.Get(node.input(0));
  return ctx.Emit(relax::op::Squeeze(x, axes));
}

Value BroadcastTo(ConversionContext& ctx, const torch::jit::Value* input, IntList target) {
  Expr x = ctx.Tensor(input);
  IntList shape = ctx.Shape(x);
  size_t offset = target.size() - shape.size();
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      TORCH_CHECK(i >= offset, "expand: -1 is not allowed in a new leading dimension");
      target[i] = shape[i - offset];
    }
  }
  if (target == shape) return ctx.Get(input);
  return ctx.Emit(relax::op::BroadcastTo(x, target));
}

// aten::expand(self, size, implicit) and aten::expand_as(self, other)
Value ConvertExpand(ConversionContext& ctx, const Node& node) {
  return BroadcastTo(ctx, node.input(0), ctx.Ints(node.input(1)));
}
Value ConvertExpandAs(ConversionContext& ctx, const Node& node) {
  return BroadcastTo(ctx, node.input(0), ctx.Shape(ctx.Tensor(node.input(1))));
}

// aten::where(condition, self, other)
Value ConvertWhere(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(node.inputs().size() == 3, "where(condition) alone is data-dependent");
  bool self_is_tensor = !ctx.IsConstant(node.input(1)) || ctx.Constant(node.input(1)).isTensor();
  Expr like = ctx.Tensor(node.input(self_is_tensor ? 1 : 2));
  return ctx.Emit(relax::op::Where(ctx.Tensor(node.input(0)),
                                   ctx.TensorOrScalar(node.input(1), like),
                                   ctx.TensorOrScalar(node.input(2), like)));
}

// aten::argmax / argmin(self, dim, keepdim)
template <Expr (*Op)(const Expr&, std::optional<int64_t>, bool)>
Value ConvertArgReduce(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  auto rank = static_cast<int64_t>(ctx.Shape(x).size());
  std::optional<int64_t> axis;
  if (!ctx.IsNone(node.input(1))) axis = NormalizeAxis(ctx.Int(node.input(1)), rank);
  Expr index = ctx.EmitExpr(Op(x, axis, ctx.Bool(node.input(2))));
  return ctx.Emit(relax::op::AsType(index, "int64"));
}

// aten::topk(self, k, dim, largest, sorted) -> (values, indices)
Value ConvertTopK(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  auto rank = static_cast<int64_t>(ctx.Shape(x).size());
  Expr both = ctx.EmitExpr(relax::op::TopK(x, ctx.Int(node.input(1)),
                                           NormalizeAxis(ctx.Int(node.input(2)), rank),
                                           ctx.Bool(node.input(3))));
  return Value::List(
      {ctx.Emit(relax::TupleGetItem(both, 0)), ctx.Emit(relax::TupleGetItem(both, 1))});
}

// aten::gather(self, dim, index, sparse_grad)
Value ConvertGather(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(ctx.Shape(x).size()));
  return ctx.Emit(relax::op::GatherElements(x, ctx.Tensor(node.input(2)), axis));
}

// The shape integer index tensors broadcast to (NumPy rules, as PyTorch's indexing).
IntList BroadcastShapes(const std::vector<IntList>& shapes) {
  size_t rank = 0;
  for (const IntList& shape : shapes) rank = std::max(rank, shape.size());
  IntList result(rank, 1);
  for (const IntList& shape : shapes) {
    for (size_t i = 0; i < shape.size(); ++i) {
      int64_t& into = result[rank - shape.size() + i];
      TORCH_CHECK(shape[i] == into || shape[i] == 1 || into == 1,
                  "index: shape mismatch, indexing tensors could not be broadcast together");
      if (shape[i] != 1) into = shape[i];
    }
  }
  return result;
}

// aten::index(self, Tensor?[] indices) with integer index tensors (advanced indexing; a
// boolean mask has a data-dependent shape and stays in PyTorch). The indexed dims are
// flattened into one and read with a single take; like PyTorch, the broadcast index shape
// replaces the indexed dims where they are adjacent, and leads the result where they are not.
Value ConvertIndex(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  auto rank = static_cast<int64_t>(shape.size());
  std::vector<std::optional<Expr>> entries = ctx.OptionalTensors(node.input(1));
  TORCH_CHECK(static_cast<int64_t>(entries.size()) <= rank, "index: too many indices (",
              entries.size(), ") for a tensor of rank ", rank);
  IntList axes;
  std::vector<Expr> indices;
  std::vector<IntList> index_shapes;
  for (size_t axis = 0; axis < entries.size(); ++axis) {
    if (!entries[axis]) continue;
    std::string dtype = ctx.Info(*entries[axis]).dtype;
    TORCH_CHECK(dtype == "int64" || dtype == "int32",
                "index: tensors used as indices must be int64 or int32 (a ", dtype,
                " mask gives a data-dependent shape)");
    Expr index = *entries[axis];
    // Negative indices count from the end, as in PyTorch.
    Expr extent = ctx.Scalar(static_cast<double>(shape[axis]), dtype);
    Expr zero = ctx.Scalar(0.0, dtype);
    index = ctx.EmitExpr(relax::op::Where(ctx.EmitExpr(relax::op::Less(index, zero)),
                                          ctx.EmitExpr(relax::op::Add(index, extent)), index));
    axes.push_back(static_cast<int64_t>(axis));
    indices.push_back(index);
    index_shapes.push_back(ctx.Shape(index));
  }
  TORCH_CHECK(!axes.empty(), "index: no index tensors");
  if (axes.size() == 1) return ctx.Emit(relax::op::Take(x, indices[0], axes[0]));

  // The indexed dims first, flattened to one; the flat index is their row-major offset.
  IntList order(axes), rest_shape;
  for (int64_t axis = 0; axis < rank; ++axis) {
    if (std::find(axes.begin(), axes.end(), axis) == axes.end()) {
      order.push_back(axis);
      rest_shape.push_back(shape[axis]);
    }
  }
  Expr permuted = ctx.EmitExpr(relax::op::PermuteDims(x, order));
  int64_t flat_extent = 1;
  for (int64_t axis : axes) flat_extent *= shape[axis];
  IntList flat_shape{flat_extent};
  flat_shape.insert(flat_shape.end(), rest_shape.begin(), rest_shape.end());
  Expr flat = ctx.EmitExpr(relax::op::Reshape(permuted, flat_shape));
  Expr offset;
  int64_t stride = 1;
  for (size_t i = axes.size(); i-- > 0;) {
    Expr index = ctx.EmitExpr(relax::op::AsType(indices[i], "int64"));
    if (stride != 1) {
      index = ctx.EmitExpr(
          relax::op::Multiply(index, ctx.Scalar(static_cast<double>(stride), "int64")));
    }
    offset = offset.defined() ? ctx.EmitExpr(relax::op::Add(offset, index)) : index;
    stride *= shape[axes[i]];
  }
  IntList index_shape = BroadcastShapes(index_shapes);
  if (ctx.Shape(offset) != index_shape) {
    offset = ctx.EmitExpr(relax::op::BroadcastTo(offset, index_shape));
  }
  Expr taken = ctx.EmitExpr(relax::op::Take(flat, offset, 0));
  bool adjacent = axes.back() - axes.front() + 1 == static_cast<int64_t>(axes.size());
  if (!adjacent || axes.front() == 0) return Value::Tensor(taken);
  // Adjacent indexed dims: the index dims go where the indexed dims were.
  auto index_rank = static_cast<int64_t>(index_shape.size());
  IntList placed;
  for (int64_t i = 0; i < axes.front(); ++i) placed.push_back(index_rank + i);
  for (int64_t i = 0; i < index_rank; ++i) placed.push_back(i);
  for (int64_t i = axes.front(); i < static_cast<int64_t>(rest_shape.size()); ++i) {
    placed.push_back(index_rank + i);
  }
  return ctx.Emit(relax::op::PermuteDims(taken, placed));
}

}  // namespace

void RegisterIndexOps(ConverterTable& table) {
  table["aten::chunk"] = ConvertChunk;
  RegisterAll(table, {"aten::split", "aten::split_with_sizes"}, ConvertSplit);
  table["aten::slice"] = ConvertSlice;
  table["aten::select"] = ConvertSelect;
  table["aten::index_select"] = ConvertIndexSelect;
  table["aten::embedding"] = ConvertEmbedding;
  table["aten::unsqueeze"] = ConvertUnsqueeze;
  table["aten::squeeze"] = ConvertSqueeze;
  table["aten::expand"] = ConvertExpand;
  table["aten::expand_as"] = ConvertExpandAs;
  table["aten::where"] = ConvertWhere;
  table["aten::argmax"] = ConvertArgReduce<relax::op::ArgMax>;
  table["aten::argmin"] = ConvertArgReduce<relax::op::ArgMin>;
  table["aten::topk"] = ConvertTopK;
  table["aten::gather"] = ConvertGather;
  table["aten::index"] = ConvertIndex;
}

}  // namespace tvmbridge::frontend
