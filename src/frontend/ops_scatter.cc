// Writes through index tensors: scatter, scatter_add and scatter_reduce (every reduction,
// include_self or not), index_put (integer indices, or one mask with one value). Every index a
// caller sends is checked first (value_checks.h): none writes outside self.
#include <algorithm>
#include <optional>

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

// The part of `src` that `index` covers, when PyTorch's scatter is given a larger src.
Expr CoveredPart(ConversionContext& ctx, const Expr& src, const IntList& index_shape) {
  IntList shape = ctx.Shape(src);
  if (shape == index_shape) return src;
  TORCH_CHECK(shape.size() == index_shape.size(), "scatter: index and src differ in rank");
  IntList axes, begin(shape.size(), 0), strides(shape.size(), 1);
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    TORCH_CHECK(index_shape[axis] <= shape[axis], "scatter: index is larger than src");
    axes.push_back(static_cast<int64_t>(axis));
  }
  return ctx.EmitExpr(relax::op::StridedSlice(src, axes, relax::ToDims(begin),
                                              relax::ToDims(index_shape), strides));
}

// scatter(self, dim, index, src | value[, reduce]), scatter_add(self, dim, index, src) and
// The value no element changes under `reduction` ("add", "mul", "max", "min") in `dtype`.
at::Tensor ReductionIdentity(const std::string& reduction, c10::ScalarType dtype) {
  auto options = at::TensorOptions().dtype(dtype);
  if (reduction == "add") return at::zeros({}, options);
  if (reduction == "mul") return at::ones({}, options);
  bool lowest = reduction == "max";
  if (c10::isFloatingType(dtype)) {
    constexpr double kInfinity = std::numeric_limits<double>::infinity();
    return at::scalar_tensor(lowest ? -kInfinity : kInfinity, options);
  }
  return AT_DISPATCH_INTEGRAL_TYPES_AND(at::kBool, dtype, "reduction identity", [&] {
    return at::scalar_tensor(
        lowest ? std::numeric_limits<scalar_t>::lowest() : std::numeric_limits<scalar_t>::max(),
        options);
  });
}

// scatter_reduce with include_self=False, or with "mean": the targets start from the
// reduction's identity instead of self's value (self stays where nothing is scattered), and a
// mean divides by how many values met at each target (self counting as one when included).
Expr ScatterReduced(ConversionContext& ctx, const Expr& self, const Expr& index,
                    const Expr& updates, int64_t axis, const std::string& reduction,
                    bool include_self) {
  std::string dtype = ctx.Info(self).dtype;
  IntList shape = ctx.Shape(self);
  std::string combine = reduction == "mean" ? "add" : reduction;
  Expr start = self;
  if (!include_self) {
    Expr identity = TensorConstant(ReductionIdentity(combine, DtypeFromName(dtype)));
    Expr fill = ctx.EmitExpr(relax::op::BroadcastTo(identity, ctx.Dims(index)));
    start = ctx.EmitExpr(relax::op::ScatterElements(self, index, fill, axis, "update"));
  }
  Expr combined = ctx.EmitExpr(relax::op::ScatterElements(start, index, updates, axis, combine));
  if (reduction != "mean") return combined;
  TORCH_CHECK(c10::isFloatingType(DtypeFromName(dtype)),
              "scatter_reduce: 'mean' of integers is left to PyTorch (it rounds the quotient)");
  Expr counted_self = ctx.Filled(include_self ? 1.0 : 0.0, shape, dtype);
  Expr ones = ctx.Filled(1.0, ctx.Shape(index), dtype);
  Expr counts = ctx.EmitExpr(relax::op::ScatterElements(counted_self, index, ones, axis, "add"));
  Expr mean = ctx.EmitExpr(relax::op::Divide(combined, counts));
  // Where nothing met (only possible without self), self stays.
  Expr met = ctx.EmitExpr(relax::op::Greater(counts, ctx.Scalar(0.0, dtype)));
  return ctx.EmitExpr(relax::op::Where(met, mean, self));
}

// scatter_reduce(self, dim, index, src, reduce, include_self).
Value ConvertScatter(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::TensorInfo info = ctx.Info(x);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), static_cast<int64_t>(info.shape->size()));
  Expr index = CheckedIndices(ctx, node, ctx.Tensor(node.input(2)), info.shape->at(axis), axis,
                              NegativeIndices::kRejected);
  IntList index_shape = ctx.Shape(index);
  // Nothing to write (TVM's scatter fails to build on an empty index).
  if (IsEmpty(ctx, index)) return ctx.Get(node.input(0));
  Expr updates;
  if (const torch::jit::Value* value = NamedInput(node, "value")) {
    Expr filler = ctx.TensorOrScalar(value, x);
    if (ctx.Info(filler).dtype != info.dtype)
      filler = ctx.EmitExpr(relax::op::AsType(filler, info.dtype));
    updates = ctx.EmitExpr(relax::op::BroadcastTo(filler, relax::ToDims(index_shape)));
  } else {
    updates = CoveredPart(ctx, ctx.Tensor(NamedInput(node, "src")), index_shape);
  }
  std::string reduction = "update";
  bool include_self = true;
  if (node.kind() == c10::Symbol::fromQualString("aten::scatter_add")) {
    reduction = "add";
  } else if (const torch::jit::Value* reduce = NamedInput(node, "reduce")) {
    std::string given = ctx.String(reduce);
    const torch::jit::Value* include = NamedInput(node, "include_self");
    include_self = include == nullptr || ctx.Bool(include);
    reduction = given == "add" || given == "sum"         ? "add"
                : given == "multiply" || given == "prod" ? "mul"
                : given == "amax"                        ? "max"
                : given == "amin"                        ? "min"
                : given == "mean"                        ? "mean"
                                                         : "";
    TORCH_CHECK(!reduction.empty(), "scatter: reduction '", given, "' is not supported");
  }
  if (reduction == "update" || (include_self && reduction != "mean")) {
    return ctx.Emit(relax::op::ScatterElements(x, index, updates, axis, reduction));
  }
  return Value::Tensor(ScatterReduced(ctx, x, index, updates, axis, reduction, include_self));
}

// index_put(self, indices, values, accumulate): integer index tensors for the leading dims,
// or one bool mask of self's shape with a single value (x[mask] = v).
Value ConvertIndexPut(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::TensorInfo info = ctx.Info(x);
  std::vector<std::optional<Expr>> entries = ctx.OptionalTensors(node.input(1));
  Expr values = ctx.Tensor(node.input(2));
  if (ctx.Info(values).dtype != info.dtype)
    values = ctx.EmitExpr(relax::op::AsType(values, info.dtype));
  bool accumulate = ctx.Bool(node.input(3));
  if (entries.size() == 1 && entries[0] && ctx.Info(*entries[0]).dtype == "bool") {
    Expr mask = *entries[0];
    TORCH_CHECK(ctx.Shape(mask) == *info.shape, "index_put: a mask must have the shape of self");
    int64_t count = 1;
    for (int64_t extent : ctx.Shape(values)) count *= extent;
    TORCH_CHECK(count == 1,
                "index_put: a mask with more than one value has a data-dependent "
                "layout");
    if (!ctx.Shape(values).empty()) values = ctx.EmitExpr(relax::op::Reshape(values, {}));
    if (accumulate) values = ctx.EmitExpr(relax::op::Add(x, values));
    return ctx.Emit(relax::op::Where(mask, values, x));
  }
  // Relax's index_put takes one index per dim: the dims after the indexed ones get aranges,
  // laid out after the broadcast index shape, as PyTorch's x[i, j] = v reads.
  std::vector<Expr> indices;
  std::vector<relax::Dims> index_shapes;
  IntList shape = ctx.Shape(x);
  TORCH_CHECK(entries.size() <= shape.size(), "index_put: too many indices (", entries.size(),
              ") for a tensor of rank ", shape.size());
  for (size_t dim = 0; dim < entries.size(); ++dim) {
    const std::optional<Expr>& entry = entries[dim];
    TORCH_CHECK(entry.has_value(), "index_put: None between index tensors is not supported yet");
    Expr index = CheckedIndices(ctx, node, *entry, shape[dim], static_cast<int64_t>(dim),
                                NegativeIndices::kWrapped);
    if (ctx.Info(index).dtype != "int64") index = ctx.EmitExpr(relax::op::AsType(index, "int64"));
    indices.push_back(index);
    index_shapes.push_back(relax::ToDims(ctx.Shape(*entry)));
  }
  IntList index_shape = *relax::StaticExtents(
      BroadcastShapes(ctx, index_shapes, "index_put: shape mismatch, indexing tensors"));
  // Nothing to write (TVM's index_put fails to build on empty indices).
  if (std::find(index_shape.begin(), index_shape.end(), 0) != index_shape.end()) {
    return ctx.Get(node.input(0));
  }
  IntList rest(shape.begin() + static_cast<int64_t>(indices.size()), shape.end());
  IntList full = index_shape;
  full.insert(full.end(), rest.begin(), rest.end());
  for (Expr& index : indices) {
    IntList placed = ctx.Shape(index);
    placed.insert(placed.begin(), index_shape.size() - placed.size(), 1);
    placed.insert(placed.end(), rest.size(), 1);
    index = ctx.EmitExpr(relax::op::BroadcastTo(
        ctx.EmitExpr(relax::op::Reshape(index, relax::ToDims(placed))), relax::ToDims(full)));
  }
  for (size_t k = 0; k < rest.size(); ++k) {
    IntList placed(full.size(), 1);
    placed[index_shape.size() + k] = rest[k];
    at::Tensor positions = at::arange(rest[k], at::kLong).reshape(placed);
    indices.push_back(
        ctx.EmitExpr(relax::op::BroadcastTo(TensorConstant(positions), relax::ToDims(full))));
  }
  if (ctx.Shape(values) != full)
    values = ctx.EmitExpr(relax::op::BroadcastTo(values, relax::ToDims(full)));
  return ctx.Emit(relax::op::IndexPut(x, indices, values, accumulate));
}

}  // namespace

void RegisterScatterOps(ConverterTable& table) {
  RegisterAll(table,
              {"aten::scatter", "aten::scatter_", "aten::scatter_add", "aten::scatter_add_",
               "aten::scatter_reduce", "aten::scatter_reduce_"},
              ConvertScatter);
  RegisterWithInplace(table, "aten::index_put", ConvertIndexPut);
}

}  // namespace tvmbridge::frontend
