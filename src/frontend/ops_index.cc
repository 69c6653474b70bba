// Indexing, slicing and splitting: select, slice, index_select, embedding, chunk, split,
// unsqueeze, squeeze, expand, where, argmax/argmin, topk.
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
}

}  // namespace tvmbridge::frontend
