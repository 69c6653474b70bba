// Indexing, slicing and splitting: select, slice, index_select, embedding, chunk, split,
// unsqueeze, squeeze, expand, where, argmax/argmin, topk, gather, index, sort/argsort,
// searchsorted/bucketize, take, one_hot, slice_scatter/select_scatter. Writes by index
// tensors (scatter, index_put) are ops_scatter.cc's.
#include <algorithm>
#include <limits>

#include <ATen/Dispatch.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "frontend/value_checks.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

// Splits `x` along `axis` at `indices` and returns the pieces as a TorchScript list.
Value SplitAt(ConversionContext& ctx, const Expr& x, const IntList& indices, int64_t axis) {
  // One piece: Relax's split then returns the tensor itself, not a tuple of one.
  if (indices.empty()) return Value::List({Value::Tensor(x)});
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
  int64_t axis = NormalizeAxis(ctx.Int(node.input(2)), ctx.Rank(x));
  int64_t extent = ctx.Extent(x, axis);
  int64_t chunks = ctx.Int(node.input(1));
  TORCH_CHECK(chunks > 0, "chunk expects a positive number of chunks");
  int64_t size = (extent + chunks - 1) / chunks;
  IntList indices;
  for (int64_t at = size; at < extent; at += size) indices.push_back(at);
  return SplitAt(ctx, x, indices, axis);
}

// aten::split(self, split_size: int | int[], dim) and aten::split_with_sizes(self, sizes, dim)
Value ConvertSplit(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(2)), ctx.Rank(x));
  int64_t extent = ctx.Extent(x, axis);
  c10::IValue sizes = ctx.Constant(node.input(1));
  IntList indices;
  if (sizes.isInt()) {
    TORCH_CHECK(sizes.toInt() > 0, "split expects a positive size");
    for (int64_t at = sizes.toInt(); at < extent; at += sizes.toInt()) indices.push_back(at);
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

// Slice ends at or past this mean "to the end" (traced `x[a:]` ends at 2^63 - 1).
constexpr int64_t kUnboundedSliceEnd = int64_t{1} << 62;

// aten::slice(self, dim, start, end, step)
Value ConvertSlice(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(x));
  int64_t step = ctx.Int(node.input(4));
  TORCH_CHECK(step > 0, "slice step must be positive");
  const relax::Dim extent = ctx.Dims(x).at(static_cast<size_t>(axis));
  const bool static_bounds = ctx.Get(node.input(2)).kind != Value::Kind::kSize &&
                             ctx.Get(node.input(3)).kind != Value::Kind::kSize;
  if (extent.IsStatic() && static_bounds) {
    auto [begin, end] = SliceBounds(ctx, node.input(2), node.input(3), extent.Static());
    if (begin == 0 && end == extent.Static() && step == 1) return ctx.Get(node.input(0));
    end = std::max(begin, end);
    return ctx.Emit(
        relax::op::StridedSlice(x, {axis}, relax::Dims{begin}, relax::Dims{end}, {step}));
  }
  // A symbolic extent n or bound (`x[:, :seq]`, `x[:, 1:]`): bounds clamped to [0, n] as
  // PyTorch clamps them; a negative number counts from n. The bounds `:` traces (0, and the
  // largest int64) are exact: TVM cannot simplify min(n, 2^63 - 1) to n on its own.
  auto bound = [&](const torch::jit::Value* value, const relax::Dim& fallback) {
    if (ctx.IsNone(value)) return fallback;
    relax::Dim position = ctx.SizeArgument(value);
    if (position.IsStatic()) {
      if (position.Static() == 0) return relax::Dim(0);
      if (position.Static() >= kUnboundedSliceEnd) return extent;
      if (position.Static() < 0) position = extent + position;
    }
    return ctx.Simplify(relax::Maximum(relax::Minimum(position, extent), 0));
  };
  const relax::Dim begin = bound(node.input(2), 0);
  const relax::Dim end = bound(node.input(3), extent);
  if (begin.IsStatic() && begin.Static() == 0 && step == 1 && ctx.ProvablyEqual(end, extent)) {
    return ctx.Get(node.input(0));
  }
  return ctx.Emit(relax::op::StridedSlice(x, {axis}, relax::Dims{begin},
                                          relax::Dims{ctx.Simplify(relax::Maximum(begin, end))},
                                          {step}, relax::op::SliceBounds::kInRange));
}

// aten::select(self, dim, index): one slice along dim, without that dim.
Value ConvertSelect(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(x));
  int64_t extent = ctx.Extent(x, axis);
  int64_t index = ctx.Int(node.input(2));
  if (index < 0) index += extent;
  TORCH_CHECK(index >= 0 && index < extent, "select index ", ctx.Int(node.input(2)),
              " is out of range for size ", extent);
  Expr one = ctx.EmitExpr(
      relax::op::StridedSlice(x, {axis}, relax::Dims{index}, relax::Dims{index + 1}, {1}));
  return ctx.Emit(relax::op::Squeeze(one, {axis}));
}

// aten::index_select(self, dim, index)
Value ConvertIndexSelect(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(x));
  Expr index = CheckedIndices(ctx, node, ctx.Tensor(node.input(2)), ctx.Extent(x, axis), axis,
                              NegativeIndices::kRejected);
  return ctx.Emit(relax::op::Take(x, index, axis));
}

// aten::embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse)
Value ConvertEmbedding(ConversionContext& ctx, const Node& node) {
  Expr weight = ctx.Tensor(node.input(0));
  Expr indices = CheckedIndices(ctx, node, ctx.Tensor(node.input(1)), ctx.Extent(weight, 0), 0,
                                NegativeIndices::kRejected);
  return ctx.Emit(relax::op::Take(weight, indices, 0));
}

// aten::unsqueeze(self, dim)
Value ConvertUnsqueeze(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  auto rank = ctx.Rank(x);
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

Value BroadcastTo(ConversionContext& ctx, const torch::jit::Value* input, relax::Dims target) {
  Expr x = ctx.Tensor(input);
  relax::Dims shape = ctx.Dims(x);
  TORCH_CHECK(target.size() >= shape.size(), "expand: the target has fewer dims than the input");
  size_t offset = target.size() - shape.size();
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i].IsStatic() && target[i].Static() == -1) {
      TORCH_CHECK(i >= offset, "expand: -1 is not allowed in a new leading dimension");
      target[i] = shape[i - offset];
    }
  }
  if (SameShape(ctx, target, shape)) return ctx.Get(input);
  return ctx.Emit(relax::op::BroadcastTo(x, target));
}

// aten::expand(self, size, implicit) and aten::expand_as(self, other)
Value ConvertExpand(ConversionContext& ctx, const Node& node) {
  return BroadcastTo(ctx, node.input(0), ctx.SizesArgument(node.input(1)));
}
Value ConvertExpandAs(ConversionContext& ctx, const Node& node) {
  return BroadcastTo(ctx, node.input(0), ctx.Dims(ctx.Tensor(node.input(1))));
}

// aten::argmax / argmin(self, dim, keepdim)
template <Expr (*Op)(const Expr&, std::optional<int64_t>, bool)>
Value ConvertArgReduce(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  auto rank = ctx.Rank(x);
  std::optional<int64_t> axis;
  if (!ctx.IsNone(node.input(1))) axis = NormalizeAxis(ctx.Int(node.input(1)), rank);
  Expr index = ctx.EmitExpr(Op(x, axis, ctx.Bool(node.input(2))));
  return ctx.Emit(relax::op::AsType(index, "int64"));
}

// The permutation that sorts `x` along `axis` as PyTorch's CPU sort does: stable, and with NaN
// above +inf (last ascending, first descending; topk takes it as the largest). TVM's sort
// compares with `<`, which leaves NaN anywhere, so a floating tensor is ordered by two stable
// argsorts, least significant key first: NaN or not, then the value with NaN read as +inf.
Expr SortOrder(ConversionContext& ctx, const Expr& x, int64_t axis, bool descending) {
  if (!ctx.IsFloating(x)) return ctx.EmitExpr(relax::op::ArgSort(x, axis, descending));
  const std::string dtype = ctx.Info(x).dtype;
  Expr nan = ctx.EmitExpr(relax::op::Unary("isnan", x));
  Expr by_nan = ctx.EmitExpr(
      relax::op::ArgSort(ctx.EmitExpr(relax::op::AsType(nan, "int32")), axis, descending));
  Expr key = ctx.EmitExpr(
      relax::op::Where(nan, ctx.Scalar(std::numeric_limits<double>::infinity(), dtype), x));
  Expr by_key = ctx.EmitExpr(relax::op::ArgSort(
      ctx.EmitExpr(relax::op::GatherElements(key, by_nan, axis)), axis, descending));
  return ctx.EmitExpr(relax::op::GatherElements(by_nan, by_key, axis));
}

// Sorting an empty tensor is a no-op TVM cannot build (it makes no gather of an empty index).
void CheckSortable(ConversionContext& ctx, const Node& node, const Expr& x) {
  TORCH_CHECK(!IsEmpty(ctx, x), node.kind().toUnqualString(),
              ": an empty index is left to PyTorch");
}

// aten::topk(self, k, dim, largest, sorted) -> (values, indices): the first k of the sort order,
// which is what PyTorch returns for sorted=True, and a valid answer for sorted=False.
Value ConvertTopK(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(2)), static_cast<int64_t>(shape.size()));
  int64_t extent = shape.empty() ? 1 : shape[axis];
  int64_t k = ctx.Int(node.input(1));
  TORCH_CHECK(k >= 0 && k <= extent, "topk: k (", k, ") is out of range for a dimension of ",
              extent, " elements; expected 0 <= k <= ", extent);
  CheckSortable(ctx, node, x);
  TORCH_CHECK(k > 0, "topk: an empty index is left to PyTorch");
  Expr order = SortOrder(ctx, x, axis, ctx.Bool(node.input(3)));
  Expr indices = ctx.EmitExpr(relax::op::StridedSlice(order, {axis}, {0}, {k}, {1}));
  return Value::List(
      {ctx.Emit(relax::op::GatherElements(x, indices, axis)), Value::Tensor(indices)});
}

// aten::gather(self, dim, index, sparse_grad). TVM reads self at the index's position in the
// other dims, so the index may not be larger there (PyTorch raises): proven at conversion.
Value ConvertGather(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::Dims shape = ctx.Dims(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(shape.size()));
  Expr index = CheckedIndices(ctx, node, ctx.Tensor(node.input(2)), shape[axis], axis,
                              NegativeIndices::kRejected);
  relax::Dims index_shape = ctx.Dims(index);
  TORCH_CHECK(index_shape.size() == shape.size(), "gather: index and self differ in rank");
  for (size_t d = 0; d < shape.size(); ++d) {
    TORCH_CHECK(static_cast<int64_t>(d) == axis || ctx.ProvablyAtMost(index_shape[d], shape[d]),
                "gather: index size ", index_shape[d].ToString(), " in dim ", d,
                " may exceed self's ", shape[d].ToString());
  }
  // TVM builds no gather of an empty index, nor a module returning an empty constant.
  TORCH_CHECK(!IsEmpty(ctx, index), "gather: an empty index is left to PyTorch");
  return ctx.Emit(relax::op::GatherElements(x, index, axis));
}

// aten::index(self, Tensor?[] indices) with integer index tensors (advanced indexing; a
// boolean mask is ConvertIndexByMask's). The indexed dims are
// flattened into one and read with a single take; like PyTorch, the broadcast index shape
// replaces the indexed dims where they are adjacent, and leads the result where they are not.
Value ConvertIndex(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::Dims shape = ctx.Dims(x);
  auto rank = static_cast<int64_t>(shape.size());
  std::vector<std::optional<Expr>> entries = ctx.OptionalTensors(node.input(1));
  for (const std::optional<Expr>& entry : entries) {
    if (entry && (ctx.Info(*entry).dtype == "bool" || ctx.Info(*entry).dtype == "uint8")) {
      return ConvertIndexByMask(ctx, node);
    }
  }
  TORCH_CHECK(static_cast<int64_t>(entries.size()) <= rank, "index: too many indices (",
              entries.size(), ") for a tensor of rank ", rank);
  IntList axes;
  std::vector<Expr> indices;
  std::vector<relax::Dims> index_shapes;
  for (size_t axis = 0; axis < entries.size(); ++axis) {
    if (!entries[axis]) continue;
    std::string dtype = ctx.Info(*entries[axis]).dtype;
    TORCH_CHECK(dtype == "int64" || dtype == "int32",
                "index: tensors used as indices must be int64, int32 or bool, got ", dtype);
    Expr index = CheckedIndices(ctx, node, *entries[axis], shape[axis], static_cast<int64_t>(axis),
                                NegativeIndices::kWrapped);
    axes.push_back(static_cast<int64_t>(axis));
    indices.push_back(index);
    index_shapes.push_back(ctx.Dims(index));
  }
  TORCH_CHECK(!axes.empty(), "index: no index tensors");
  if (axes.size() == 1) return ctx.Emit(relax::op::Take(x, indices[0], axes[0]));

  // The indexed dims first, flattened to one; the flat index is their row-major offset.
  IntList order(axes);
  relax::Dims rest_shape;
  for (int64_t axis = 0; axis < rank; ++axis) {
    if (std::find(axes.begin(), axes.end(), axis) == axes.end()) {
      order.push_back(axis);
      rest_shape.push_back(shape[axis]);
    }
  }
  Expr permuted = ctx.EmitExpr(relax::op::PermuteDims(x, order));
  relax::Dim flat_extent = 1;
  for (int64_t axis : axes) flat_extent = flat_extent * shape[axis];
  relax::Dims flat_shape{flat_extent};
  flat_shape.insert(flat_shape.end(), rest_shape.begin(), rest_shape.end());
  Expr flat = ctx.EmitExpr(relax::op::Reshape(permuted, flat_shape));
  Expr offset;
  relax::Dim stride = 1;
  for (size_t i = axes.size(); i-- > 0;) {
    Expr index = ctx.EmitExpr(relax::op::AsType(indices[i], "int64"));
    if (!IsOne(stride)) {
      index = ctx.EmitExpr(relax::op::Multiply(index, ctx.SizeScalar(stride, "int64")));
    }
    offset = offset.defined() ? ctx.EmitExpr(relax::op::Add(offset, index)) : index;
    stride = stride * shape[axes[i]];
  }
  relax::Dims index_shape =
      BroadcastShapes(ctx, index_shapes, "index: shape mismatch, indexing tensors");
  if (!SameShape(ctx, ctx.Dims(offset), index_shape)) {
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

// aten::sort(self, [stable,] dim, descending) -> (values, int64 indices); always stable, as
// PyTorch's CPU sort is.
Value ConvertSort(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(NamedInput(node, "dim")), ctx.Rank(x));
  CheckSortable(ctx, node, x);
  Expr order = SortOrder(ctx, x, axis, ctx.Bool(NamedInput(node, "descending")));
  return Value::List({ctx.Emit(relax::op::GatherElements(x, order, axis)), Value::Tensor(order)});
}

// aten::argsort(self, [stable,] dim, descending)
Value ConvertArgSort(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t axis = NormalizeAxis(ctx.Int(NamedInput(node, "dim")), ctx.Rank(x));
  CheckSortable(ctx, node, x);
  return Value::Tensor(SortOrder(ctx, x, axis, ctx.Bool(NamedInput(node, "descending"))));
}

// aten::bucketize(self, boundaries, out_int32, right) and
// aten::searchsorted(sorted_sequence, self, out_int32, right, side?, sorter?) for a 1-d sequence.
Value ConvertBucketize(ConversionContext& ctx, const Node& node) {
  bool searchsorted = node.kind() == c10::Symbol::fromQualString("aten::searchsorted");
  Expr boundaries = ctx.Tensor(node.input(searchsorted ? 0 : 1));
  Expr values = ctx.TensorOrScalar(node.input(searchsorted ? 1 : 0), boundaries);
  TORCH_CHECK(static_cast<size_t>(ctx.Rank(boundaries)) == 1,
              "searchsorted: only a 1-d sorted sequence is "
              "supported");
  bool right = ctx.Bool(NamedInput(node, "right"));
  if (const torch::jit::Value* side = NamedInput(node, "side")) {
    if (!ctx.IsNone(side)) right = ctx.String(side) == "right";
  }
  if (const torch::jit::Value* sorter = NamedInput(node, "sorter")) {
    TORCH_CHECK(ctx.IsNone(sorter), "searchsorted with a sorter is not supported");
  }
  return ctx.Emit(
      relax::op::Bucketize(values, boundaries, ctx.Bool(NamedInput(node, "out_int32")), right));
}

// aten::take(self, index): indices into the flattened tensor.
Value ConvertTake(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t count = 1;
  for (int64_t extent : ctx.Shape(x)) count *= extent;
  Expr flat = ctx.EmitExpr(relax::op::Reshape(x, {count}));
  Expr index =
      CheckedIndices(ctx, node, ctx.Tensor(node.input(1)), count, 0, NegativeIndices::kWrapped);
  return ctx.Emit(relax::op::Take(flat, index, 0));
}

// aten::one_hot(self, num_classes): int64, one new last axis.
Value ConvertOneHot(ConversionContext& ctx, const Node& node) {
  int64_t classes = ctx.Int(node.input(1));
  TORCH_CHECK(classes > 0, "one_hot: num_classes=-1 depends on the data; give the number");
  Expr classes_of =
      CheckedIndices(ctx, node, ctx.Tensor(node.input(0)), classes, 0, NegativeIndices::kRejected);
  return ctx.Emit(relax::op::OneHot(classes_of, classes));
}

// slice_scatter(self, src, dim, start?, end?, step) and select_scatter(self, src, dim, index):
// self with the slice replaced by src, what assignments into slices become.
Value ConvertSliceScatter(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(2)), static_cast<int64_t>(shape.size()));
  Expr src = ctx.Tensor(node.input(1));
  int64_t begin, end, step = 1;
  if (const torch::jit::Value* index = NamedInput(node, "index")) {
    begin = ctx.Int(index);
    if (begin < 0) begin += shape[axis];
    end = begin + 1;
    src = ctx.EmitExpr(relax::op::ExpandDims(src, {axis}));
  } else {
    std::tie(begin, end) = SliceBounds(ctx, node.input(3), node.input(4), shape[axis]);
    step = ctx.Int(node.input(5));
  }
  TORCH_CHECK(step > 0, "slice_scatter: step must be positive");
  // Positions along `axis` that take src, as an index tensor of src's shape.
  IntList src_shape = ctx.Shape(src);
  at::Tensor positions = at::arange(begin, std::max(begin, end), step, at::kLong);
  TORCH_CHECK(positions.numel() == src_shape[axis], "slice_scatter: src has ", src_shape[axis],
              " elements along dim ", axis, " but the slice has ", positions.numel());
  IntList spread(src_shape.size(), 1);
  spread[axis] = src_shape[axis];
  Expr index = ctx.EmitExpr(
      relax::op::BroadcastTo(TensorConstant(positions.reshape(spread)), relax::ToDims(src_shape)));
  if (ctx.Info(src).dtype != ctx.Info(x).dtype) {
    src = ctx.EmitExpr(relax::op::AsType(src, ctx.Info(x).dtype));
  }
  return ctx.Emit(relax::op::ScatterElements(x, index, src, axis, "update"));
}

}  // namespace

void RegisterIndexOps(ConverterTable& table) {
  RegisterAll(table, {"aten::chunk", "aten::unsafe_chunk"}, ConvertChunk, kOnInputGrid);
  RegisterAll(table,
              {"aten::split", "aten::split_with_sizes", "aten::unsafe_split",
               "aten::unsafe_split_with_sizes"},
              ConvertSplit, kOnInputGrid);
  table.Register("aten::slice", ConvertSlice, kOnInputGrid);
  table.Register("aten::select", ConvertSelect, kOnInputGrid);
  table.Register("aten::index_select", ConvertIndexSelect);
  table.Register("aten::embedding", ConvertEmbedding);
  table.Register("aten::unsqueeze", ConvertUnsqueeze, kOnInputGrid);
  table.Register("aten::squeeze", ConvertSqueeze, kOnInputGrid);
  RegisterAll(table, {"aten::expand", "aten::broadcast_to"}, ConvertExpand, kOnInputGrid);
  table.Register("aten::expand_as", ConvertExpandAs);
  table.Register("aten::argmax", ConvertArgReduce<relax::op::ArgMax>);
  table.Register("aten::argmin", ConvertArgReduce<relax::op::ArgMin>);
  table.Register("aten::topk", ConvertTopK);
  table.Register("aten::gather", ConvertGather);
  table.Register("aten::index", ConvertIndex);
  table.Register("aten::sort", ConvertSort);
  table.Register("aten::argsort", ConvertArgSort);
  RegisterAll(table, {"aten::bucketize", "aten::searchsorted"}, ConvertBucketize);
  table.Register("aten::take", ConvertTake);
  table.Register("aten::one_hot", ConvertOneHot);
  RegisterAll(table, {"aten::slice_scatter", "aten::select_scatter"}, ConvertSliceScatter);
}

}  // namespace tvmbridge::frontend
