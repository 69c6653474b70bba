// Tensor creation: arange, zeros/ones/full/empty, linspace, eye (evaluated by PyTorch
// when their arguments are known, which static shapes make the rule; arange also up to a
// symbolic extent), and the *_like / new_*
// family, zero_ and fill_, which take only the shape and dtype of a tensor computed in the graph.
#include <c10/util/Exception.h>

#include "frontend/converter.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using torch::jit::Node;

// Creation ops with only constant arguments never reach a converter: ConvertNode has
// PyTorch evaluate them (its exact dtype rules and values) into a constant. This converter
// registers them as supported and names the problem when an argument is computed.
Value RequireConstantArguments(ConversionContext&, const Node& node) {
  TORCH_CHECK(false, node.kind().toQualString(),
              " needs its arguments known at compile time, but one is computed from tensors");
}

// arange with a computed bound: traced models count positions up to a symbolic extent
// (`arange(seq_len)`). Integer bounds only; constant ones never get here (see above).
Value ConvertArange(ConversionContext& ctx, const Node& node) {
  const torch::jit::Value* start = NamedInput(node, "start");
  const torch::jit::Value* step = NamedInput(node, "step");
  for (const torch::jit::Value* bound : {start, NamedInput(node, "end"), step}) {
    TORCH_CHECK(bound == nullptr || bound->type()->kind() == c10::TypeKind::IntType,
                "aten::arange with computed bounds takes ints only, got a ",
                bound->type()->repr_str());
  }
  CheckCpuDevice(ctx, node);
  relax::Dim begin = start != nullptr ? ctx.SizeArgument(start) : relax::Dim(0);
  relax::Dim stride = step != nullptr ? ctx.SizeArgument(step) : relax::Dim(1);
  TORCH_CHECK(stride.IsStatic() && stride.Static() > 0,
              "aten::arange with computed bounds needs a constant positive step");
  return ctx.Emit(relax::op::Arange(begin, ctx.SizeArgument(NamedInput(node, "end")), stride,
                                    DtypeArgument(ctx, node).value_or("int64")));
}

// The value an op fills with: ones, zeros, or its fill_value argument.
template <int kFill>
double FillValue(ConversionContext& ctx, const Node& node) {
  if constexpr (kFill >= 0) {
    return kFill;
  } else {
    return ctx.Double(node.input(*node.schema().argumentIndexWithName("fill_value")));
  }
}

// zeros_like / ones_like / full_like / empty_like (self, [fill_value,] dtype, ...) and
// new_zeros / new_ones / new_full / new_empty (self, size, [fill_value,] dtype, ...).
// kFill: the constant filled, or -1 for the op's fill_value argument.
template <int kFill>
Value ConvertFilledFrom(ConversionContext& ctx, const Node& node) {
  Expr self = ctx.Tensor(node.input(0));
  relax::TensorInfo info = ctx.Info(self);
  auto size_index = node.schema().argumentIndexWithName("size");
  relax::IntList shape = size_index ? ctx.Ints(node.input(*size_index)) : ctx.Shape(self);
  std::string dtype = DtypeArgument(ctx, node).value_or(info.dtype);
  CheckCpuDevice(ctx, node);
  // relax full, not a constant: a graph-sized constant would be stored in the library.
  return ctx.Emit(
      relax::op::Full(relax::ToDims(shape), ctx.Scalar(FillValue<kFill>(ctx, node), dtype), dtype));
}

// fill_(self, value: number | 0-d tensor): self's shape and dtype, every element `value`.
Value ConvertFill(ConversionContext& ctx, const Node& node) {
  Expr self = ctx.Tensor(node.input(0));
  relax::TensorInfo info = ctx.Info(self);
  Expr value = ctx.TensorOrScalar(node.input(1), self);
  if (ctx.Info(value).dtype != info.dtype)
    value = ctx.EmitExpr(relax::op::AsType(value, info.dtype));
  if (!ctx.Shape(value).empty()) value = ctx.EmitExpr(relax::op::Reshape(value, {}));
  return ctx.Emit(relax::op::Full(ctx.Dims(self), value, info.dtype));
}

}  // namespace

void RegisterCreationOps(ConverterTable& table) {
  RegisterAll(table,
              {"aten::zeros", "aten::ones", "aten::full", "aten::empty", "aten::linspace",
               "aten::eye", "aten::scalar_tensor"},
              RequireConstantArguments);
  table.Register("aten::arange", ConvertArange);
  RegisterAll(table, {"aten::zero_", "aten::zero"}, ConvertFilledFrom<0>);
  RegisterAll(table, {"aten::fill_", "aten::fill"}, ConvertFill);
  RegisterAll(table, {"aten::zeros_like", "aten::new_zeros", "aten::empty_like", "aten::new_empty"},
              ConvertFilledFrom<0>);
  RegisterAll(table, {"aten::ones_like", "aten::new_ones"}, ConvertFilledFrom<1>);
  RegisterAll(table, {"aten::full_like", "aten::new_full"}, ConvertFilledFrom<-1>);
}

}  // namespace tvmbridge::frontend
