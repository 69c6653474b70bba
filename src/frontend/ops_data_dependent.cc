// Ops whose result extents tensor values decide: nonzero, where(condition), masked_select,
// indexing by a boolean mask, unique, bincount, torchvision's nms.
//
// Relax computes them with ops of unknown result shape (R.nonzero, R.unique). Each result is
// bound with match_cast to a shape holding a fresh symbol (`nonzero_0`) that the analyzer
// knows lies in [0, element count]; later converters treat it as any symbolic extent. The
// partitioner keeps these ops in PyTorch (their shapes are data-dependent, see
// shape_observer.cc), so this is what lets from_torchscript run such a model whole on
// TVM's VM.
#include <cmath>
#include <limits>

#include "frontend/converter.h"
#include "frontend/value_checks.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using torch::jit::Node;

// The int64 indices [rank, count] of the nonzero elements of `condition`, in row-major order;
// NaN counts as nonzero, as in PyTorch.
Expr NonzeroIndices(ConversionContext& ctx, const Expr& condition, const char* op) {
  relax::Dims dims = ctx.Dims(condition);
  TORCH_CHECK(!dims.empty(), op, " of a 0-d tensor is not supported; give it at least one dim");
  std::string dtype = ctx.Info(condition).dtype;
  Expr truth = dtype == "bool" ? condition
                               : ctx.EmitExpr(relax::op::NotEqual(condition, ctx.Scalar(0, dtype)));
  Expr indices = ctx.EmitExpr(relax::op::Nonzero(truth));
  relax::Dim count = ctx.DataDependentExtent("nonzero", ctx.Simplify(ElementCount(dims)));
  return ctx.MatchShape(indices, {static_cast<int64_t>(dims.size()), count});
}

// The flat positions [count] of the true elements of `mask`.
Expr TruePositions(ConversionContext& ctx, const Expr& mask, const char* op) {
  relax::Dims dims = ctx.Dims(mask);
  Expr flat = ctx.EmitExpr(relax::op::Reshape(mask, {ctx.Simplify(ElementCount(dims))}));
  Expr indices = NonzeroIndices(ctx, flat, op);
  return ctx.EmitExpr(relax::op::Reshape(indices, {ctx.Dims(indices)[1]}));
}

void CheckMask(ConversionContext& ctx, const Expr& mask, const char* op) {
  std::string dtype = ctx.Info(mask).dtype;
  TORCH_CHECK(dtype == "bool" || dtype == "uint8", op, ": the mask must be bool (or uint8), got ",
              dtype);
}

// nonzero(self) and argwhere(self): [count, rank].
Value ConvertNonzero(ConversionContext& ctx, const Node& node) {
  Expr indices = NonzeroIndices(ctx, ctx.Tensor(node.input(0)), node.kind().toUnqualString());
  return ctx.Emit(relax::op::PermuteDims(indices, {1, 0}));
}

// masked_select(self, mask): self's elements where the mask (broadcast with self) is true.
Value ConvertMaskedSelect(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  Expr mask = ctx.Tensor(node.input(1));
  CheckMask(ctx, mask, "masked_select");
  relax::Dims shape =
      BroadcastShapes(ctx, {ctx.Dims(x), ctx.Dims(mask)}, "masked_select: self and mask");
  const relax::Dim elements = ctx.Simplify(ElementCount(shape));
  if (elements.IsStatic() && elements.Static() == 0) {
    // Nothing to select. Said as a constant: TVM 0.27's build fails (IndexError) on a
    // broadcast to an empty shape whose result goes unused.
    return Value::Tensor(ctx.Filled(0, {0}, ctx.Info(x).dtype));
  }
  if (!SameShape(ctx, ctx.Dims(x), shape)) x = ctx.EmitExpr(relax::op::BroadcastTo(x, shape));
  if (!SameShape(ctx, ctx.Dims(mask), shape)) {
    mask = ctx.EmitExpr(relax::op::BroadcastTo(mask, shape));
  }
  Expr flat = ctx.EmitExpr(relax::op::Reshape(x, {elements}));
  return ctx.Emit(relax::op::Take(flat, TruePositions(ctx, mask, "masked_select"), 0));
}

// TVM's unique of the flattened `flat` (no NaN in it): the values [count], the index of each
// element's value [elements] and each value's count [count].
struct UniqueParts {
  Expr values, inverse, counts;
  relax::Dim count = 0;
};

UniqueParts UniqueOf(ConversionContext& ctx, const Expr& flat, bool inverse, bool counts) {
  relax::Dim elements = ctx.Dims(flat)[0];
  Expr unique = ctx.EmitExpr(relax::op::Unique(flat, inverse, counts));
  UniqueParts parts;
  parts.count = ctx.DataDependentExtent("unique", elements);
  auto field = [&](int index) {
    return inverse || counts ? ctx.EmitExpr(relax::TupleGetItem(unique, index)) : unique;
  };
  parts.values = ctx.MatchShape(field(0), {parts.count});
  if (inverse) parts.inverse = ctx.MatchShape(field(1), {elements});
  if (counts) parts.counts = ctx.MatchShape(field(inverse ? 2 : 1), {parts.count});
  return parts;
}

// PyTorch's unique keeps every NaN apart, after the other values, each counted once; TVM's
// merges them. So NaNs are set aside, the rest goes through TVM's unique, and the NaNs are
// appended, the inverse of the k-th NaN being count + k.
UniqueParts UniqueKeepingNaNs(ConversionContext& ctx, const Expr& flat, bool inverse, bool counts) {
  Expr is_nan = ctx.EmitExpr(relax::op::Unary("isnan", flat));
  Expr is_number = ctx.EmitExpr(relax::op::Unary("logical_not", is_nan));
  Expr numbers = ctx.EmitExpr(relax::op::Take(flat, TruePositions(ctx, is_number, "unique"), 0));
  Expr nans = ctx.EmitExpr(relax::op::Take(flat, TruePositions(ctx, is_nan, "unique"), 0));
  relax::Dim nan_count = ctx.Dims(nans)[0];
  UniqueParts parts = UniqueOf(ctx, numbers, inverse, counts);
  parts.values = ctx.EmitExpr(relax::op::Concat({parts.values, nans}, 0));
  if (counts) {
    Expr ones = ctx.EmitExpr(relax::op::Full({nan_count}, ctx.Scalar(1, "int64"), "int64"));
    parts.counts = ctx.EmitExpr(relax::op::Concat({parts.counts, ones}, 0));
  }
  if (inverse) {
    // Element i is the r-th number or the r-th NaN, r = (running count of its kind) - 1.
    auto rank_among = [&](const Expr& mask) {
      Expr running = ctx.EmitExpr(relax::op::CumSum(mask, 0, "int64"));
      return ctx.EmitExpr(relax::op::Subtract(running, ctx.Scalar(1, "int64")));
    };
    // Padded with one entry so that the index read for a NaN (clamped to [0, numbers]) is
    // inside the buffer even when there are no numbers at all.
    Expr padded = ctx.EmitExpr(relax::op::Concat({parts.inverse, ctx.Filled(0, {1}, "int64")}, 0));
    Expr number_rank =
        ctx.EmitExpr(relax::op::Maximum(rank_among(is_number), ctx.Scalar(0, "int64")));
    Expr of_numbers = ctx.EmitExpr(relax::op::Take(padded, number_rank, 0));
    Expr of_nans =
        ctx.EmitExpr(relax::op::Add(rank_among(is_nan), ctx.SizeScalar(parts.count, "int64")));
    parts.inverse = ctx.EmitExpr(relax::op::Where(is_nan, of_nans, of_numbers));
  }
  parts.count = parts.count + nan_count;
  return parts;
}

// unique(self, sorted, return_inverse[, return_counts]) of the flattened input: the values,
// sorted (PyTorch leaves the order of sorted=False unspecified), the index of each element's
// value in them (self's shape), and each value's count. Outputs not asked for are empty, as
// PyTorch's.
Value ConvertUnique(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::Dims dims = ctx.Dims(x);
  const bool inverse = ctx.Bool(node.input(2));
  const bool counts = node.inputs().size() > 3 && ctx.Bool(node.input(3));
  Expr flat = ctx.EmitExpr(relax::op::Reshape(x, {ctx.Simplify(ElementCount(dims))}));
  UniqueParts parts = ctx.IsFloating(x) ? UniqueKeepingNaNs(ctx, flat, inverse, counts)
                                        : UniqueOf(ctx, flat, inverse, counts);
  Expr empty = ctx.Filled(0, {0}, "int64");
  std::vector<Value> outputs{Value::Tensor(parts.values)};
  outputs.push_back(
      Value::Tensor(inverse ? ctx.EmitExpr(relax::op::Reshape(parts.inverse, dims)) : empty));
  if (node.outputs().size() > 2) outputs.push_back(Value::Tensor(counts ? parts.counts : empty));
  return Value::List(std::move(outputs));
}

// bincount(self [n], weights [n]?, minlength): for each value v below
// max(max(self) + 1, minlength), how often self holds it, or the sum of the weights where it
// does: a length the values decide. The counts are int64; the sums float32 for float32 weights
// and float64 for any others, as PyTorch's.
Value ConvertBincount(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  const std::string dtype = ctx.Info(x).dtype;
  TORCH_CHECK(ctx.Rank(x) == 1 && !ctx.IsFloating(x) && dtype != "bool",
              "bincount: expected a 1-d tensor of integers, got ", dtype,
              relax::ToString(ctx.Dims(x)));
  const int64_t minlength = ctx.Int(node.input(2));
  TORCH_CHECK(minlength >= 0, "bincount: minlength should be >= 0, got ", minlength);
  std::optional<Expr> weights;
  if (!ctx.IsNone(node.input(1))) {
    weights = ctx.Tensor(node.input(1));
    TORCH_CHECK(ctx.Rank(*weights) == 1 && ctx.ProvablyEqual(ctx.Dims(*weights)[0], ctx.Dims(x)[0]),
                "bincount: weights should be 1-d and have the same length as input, got ",
                relax::ToString(ctx.Dims(*weights)), " for ", relax::ToString(ctx.Dims(x)));
  }
  const relax::Dim n = ctx.Dims(x)[0];
  // PyTorch's answer for no values, weights or not.
  if (n.IsStatic() && n.Static() == 0) return Value::Tensor(ctx.Filled(0, {minlength}, "int64"));
  const std::string result_dtype = !weights                                ? "int64"
                                   : ctx.Info(*weights).dtype == "float32" ? "float32"
                                                                           : "float64";
  CheckNotNegative(ctx, node, x, "bincount expects non-negative integers");
  Expr values = ctx.EmitExpr(relax::op::AsType(x, "int64"));
  // The max of no values (a symbolic n that is 0) is int64's lowest: the length is minlength.
  Expr past_largest = ctx.EmitExpr(relax::op::Add(
      ctx.EmitExpr(relax::op::Reduce("max", values, {0}, false)), ctx.Scalar(1, "int64")));
  Expr length = ctx.EmitExpr(
      relax::op::Maximum(past_largest, ctx.Scalar(static_cast<double>(minlength), "int64")));
  relax::Dim bins =
      ctx.DataDependentExtentOf(length, "bincount", std::numeric_limits<int64_t>::max() - 1);
  Expr counts = ctx.EmitExpr(relax::op::Full({bins}, ctx.Scalar(0, result_dtype), result_dtype));
  Expr added = weights
                   ? ctx.EmitExpr(relax::op::AsType(*weights, result_dtype))
                   : ctx.EmitExpr(relax::op::Full(ctx.Dims(x), ctx.Scalar(1, "int64"), "int64"));
  return ctx.Emit(relax::op::ScatterElements(counts, values, added, 0, "add"));
}

// The least number of `dtype` (float32 or float64) above `threshold`: TVM suppresses at
// IoU >= it, which for IoUs of that dtype is torchvision's IoU > threshold.
double NextAbove(double threshold, const std::string& dtype) {
  if (dtype == "float64") return std::nextafter(threshold, std::numeric_limits<double>::infinity());
  auto single = static_cast<float>(threshold);
  if (static_cast<double>(single) <= threshold) {
    single = std::nextafter(single, std::numeric_limits<float>::infinity());
  }
  return single;
}

// torchvision::nms(boxes [n, 4] as (x1, y1, x2, y2), scores [n], iou_threshold): the int64
// indices of the boxes kept, by decreasing score, dropping greedily each box whose IoU with a
// kept one exceeds the threshold. TVM's kernel differs from torchvision's in three ways, each
// undone here:
// - it orders boxes by score itself and drops those scoring at or below 0: it is given each
//   box's place in torchvision's order (a stable sort by decreasing score, NaN first) as a
//   positive score;
// - it suppresses at IoU >= threshold: it is given the next number above the threshold;
// - it pads the kept indices with -1: the kept ones are selected as masked_select does.
// TVM also orders each box's corners, so boxes outside torchvision's contract
// (x1 <= x2, y1 <= y2) may give other results.
Value ConvertNms(ConversionContext& ctx, const Node& node) {
  Expr boxes = ctx.Tensor(node.input(0)), scores = ctx.Tensor(node.input(1));
  const double threshold = ctx.Double(node.input(2));
  const std::string dtype = ctx.Info(boxes).dtype;
  TORCH_CHECK(dtype == "float32" || dtype == "float64",
              "nms: boxes must be float32 or float64, got ", dtype);
  TORCH_CHECK(ctx.Info(scores).dtype == dtype, "nms: scores must have the dtype of boxes (", dtype,
              "), got ", ctx.Info(scores).dtype);
  const relax::Dims box_dims = ctx.Dims(boxes), score_dims = ctx.Dims(scores);
  TORCH_CHECK(box_dims.size() == 2 && box_dims[1].IsStatic() && box_dims[1].Static() == 4,
              "nms: boxes must be [N, 4], got ", relax::ToString(box_dims));
  TORCH_CHECK(score_dims.size() == 1 && ctx.ProvablyEqual(score_dims[0], box_dims[0]),
              "nms: scores must be [N] for boxes [N, 4], got ", relax::ToString(score_dims),
              " for ", relax::ToString(box_dims));
  // Below 0, torchvision keeps pairs of empty boxes (their IoU is 0 / 0) that TVM suppresses.
  TORCH_CHECK(threshold >= 0, "nms: iou_threshold ", threshold,
              " is negative; only thresholds >= 0 are supported");
  const relax::Dim n = box_dims[0];
  if (n.IsStatic() && n.Static() == 0) return Value::Tensor(ctx.Filled(0, {0}, "int64"));
  // torchvision's order: a stable sort by score, then NaNs moved to the front, in index order.
  Expr is_nan = ctx.EmitExpr(relax::op::Unary("isnan", scores));
  Expr by_score = ctx.EmitExpr(relax::op::ArgSort(
      ctx.EmitExpr(relax::op::Where(is_nan, ctx.Scalar(0, dtype), scores)), 0, true));
  Expr nan_first = ctx.EmitExpr(relax::op::ArgSort(
      ctx.EmitExpr(relax::op::Take(ctx.EmitExpr(relax::op::AsType(is_nan, "int32")), by_score, 0)),
      0, true));
  Expr order = ctx.EmitExpr(relax::op::Take(by_score, nan_first, 0));
  Expr place = ctx.EmitExpr(relax::op::ArgSort(order, 0, false));
  Expr rank_score = ctx.EmitExpr(
      relax::op::Subtract(ctx.SizeScalar(n, dtype), ctx.EmitExpr(relax::op::AsType(place, dtype))));
  Expr data =
      ctx.EmitExpr(relax::op::Concat({ctx.EmitExpr(relax::op::Reshape(rank_score, {1, n, 1})),
                                      ctx.EmitExpr(relax::op::Reshape(boxes, {1, n, 4}))},
                                     2));
  Expr all_valid = ctx.EmitExpr(relax::op::Full({1}, ctx.SizeScalar(n, "int32"), "int32"));
  Expr identity =
      ctx.EmitExpr(relax::op::Reshape(ctx.EmitExpr(relax::op::Arange(0, n, 1, "int32")), {1, n}));
  Expr suppressed = ctx.EmitExpr(
      relax::op::NonMaxSuppression(data, all_valid, identity, NextAbove(threshold, dtype)));
  Expr kept =
      ctx.EmitExpr(relax::op::Reshape(ctx.EmitExpr(relax::TupleGetItem(suppressed, 0)), {n}));
  Expr positions = TruePositions(
      ctx, ctx.EmitExpr(relax::op::GreaterEqual(kept, ctx.Scalar(0, "int32"))), "nms");
  return ctx.Emit(relax::op::AsType(ctx.EmitExpr(relax::op::Take(kept, positions, 0)), "int64"));
}

// where(condition) and nonzero_numpy(self): one [count] tensor of indices per dim.
Value ConvertNonzeroColumns(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  Expr indices = NonzeroIndices(ctx, x, node.kind().toUnqualString());
  std::vector<Value> columns;
  for (int64_t axis = 0; axis < ctx.Rank(x); ++axis) {
    columns.push_back(ctx.Emit(relax::op::Take(indices, ctx.Scalar(axis, "int64"), 0)));
  }
  return Value::List(std::move(columns));
}

}  // namespace

// index(self, indices) where the one index is a boolean mask over the dims from its position
// on (`x[mask]`, `x[:, mask]`): those dims become one of the mask's true count.
Value ConvertIndexByMask(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::Dims shape = ctx.Dims(x);
  std::vector<std::optional<Expr>> entries = ctx.OptionalTensors(node.input(1));
  std::optional<size_t> first;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i]) continue;
    TORCH_CHECK(!first, "index: a boolean mask with other index tensors is not supported");
    first = i;
  }
  Expr mask = *entries.at(*first);
  CheckMask(ctx, mask, "index");
  relax::Dims mask_shape = ctx.Dims(mask);
  TORCH_CHECK(!mask_shape.empty(), "index: a 0-d boolean mask is not supported");
  TORCH_CHECK(*first + mask_shape.size() <= shape.size(),
              "index: too many indices for a tensor of rank ", shape.size(), " (a mask of rank ",
              mask_shape.size(), " at dim ", *first, ")");
  for (size_t i = 0; i < mask_shape.size(); ++i) {
    TORCH_CHECK(ctx.ProvablyEqual(mask_shape[i], shape[*first + i]),
                "index: the shape of the mask ", relax::ToString(mask_shape), " at index ", i,
                " does not match the shape of the indexed tensor ", relax::ToString(shape),
                " at index ", *first + i);
  }
  relax::Dims flat_shape(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(*first));
  flat_shape.push_back(ctx.Simplify(ElementCount(mask_shape)));
  flat_shape.insert(flat_shape.end(),
                    shape.begin() + static_cast<std::ptrdiff_t>(*first + mask_shape.size()),
                    shape.end());
  Expr flat = ctx.EmitExpr(relax::op::Reshape(x, flat_shape));
  return ctx.Emit(
      relax::op::Take(flat, TruePositions(ctx, mask, "index"), static_cast<int64_t>(*first)));
}

void RegisterDataDependentOps(ConverterTable& table) {
  table.Register("aten::nonzero", ConvertNonzero);
  table.Register("aten::argwhere", ConvertNonzero);
  table.Register("aten::nonzero_numpy", ConvertNonzeroColumns);
  table.Register("aten::where", ConvertNonzeroColumns);  // where(condition); see where.self
  table.Register("aten::masked_select", ConvertMaskedSelect);
  table.Register("aten::_unique2", ConvertUnique);
  table.Register("aten::_unique", ConvertUnique);
  table.Register("aten::bincount", ConvertBincount);
  table.Register("torchvision::nms", ConvertNms);
}

}  // namespace tvmbridge::frontend
