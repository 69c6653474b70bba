// Scalars and tensor metadata. Metadata of static tensors (numel, is_floating_point, device,
// dtype, shape as a tensor) is known at conversion. Numbers read from tensor data (Int, Float,
// ImplicitTensorToNum, ...) stay 0-d tensors in Relax: arithmetic on them promotes like
// PyTorch's numbers, and ops that need a compile-time number name the problem.
#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "tvmbridge/artifact.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using torch::jit::Node;

// The dtype a number of TorchScript type `type` has as a 0-d tensor; empty for Scalar (the
// tensor's own dtype is kept).
std::string NumberDtype(const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::IntType:
      return "int64";
    case c10::TypeKind::FloatType:
      return "float64";
    case c10::TypeKind::BoolType:
      return "bool";
    default:
      return "";
  }
}

// Int(t), Float(t), IntImplicit(t), ScalarImplicit(t), prim::ImplicitTensorToNum(t): the one
// element of a tensor computed by the graph, as a 0-d tensor of the number's dtype.
Value ConvertTensorToNumber(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::IntList shape = ctx.Shape(x);
  int64_t elements = 1;
  for (int64_t extent : shape) elements *= extent;
  TORCH_CHECK(elements == 1, "a tensor with ", elements,
              " elements cannot be converted to a Python number");
  if (!shape.empty()) x = ctx.EmitExpr(relax::op::Reshape(x, {}));
  std::string dtype = NumberDtype(node.output()->type());
  if (!dtype.empty() && dtype != ctx.Info(x).dtype) x = ctx.EmitExpr(relax::op::AsType(x, dtype));
  return Value::Tensor(x);
}

// prim::NumToTensor(number) of a number computed from tensor data: it already is a 0-d
// tensor. (Constant numbers are folded by PyTorch before any converter runs.)
Value ConvertNumberToTensor(ConversionContext& ctx, const Node& node) {
  return Value::Tensor(ctx.Tensor(node.input(0)));
}

// aten::tensor / as_tensor(data, dtype?, device?, ...) of numbers computed from tensors:
// stacked into a tensor of PyTorch's dtype for them (or the one asked for).
Value ConvertTensorOfNumbers(ConversionContext& ctx, const Node& node) {
  CheckCpuDevice(ctx, node);
  const Value& data = ctx.Get(node.input(0));
  std::vector<Expr> numbers;
  if (data.kind == Value::Kind::kList) {
    for (const Value& item : data.items) {
      TORCH_CHECK(item.kind == Value::Kind::kTensor || item.constant.isScalar(),
                  "tensor() of nested lists holding computed values is not supported");
      numbers.push_back(item.kind == Value::Kind::kTensor
                            ? item.tensor
                            : ctx.Scalar(item.constant.toScalar().toDouble(),
                                         item.constant.isDouble() ? "float64" : "int64"));
    }
  } else {
    numbers.push_back(ctx.Tensor(node.input(0)));
  }
  // PyTorch: a float among the numbers makes the default float dtype, else int64 (or bool).
  std::string dtype = "bool";
  for (const Expr& number : numbers) {
    std::string own = ctx.Info(number).dtype;
    if (c10::isFloatingType(DtypeFromName(own))) {
      dtype = "float32";
    } else if (own != "bool" && dtype == "bool") {
      dtype = "int64";
    }
  }
  dtype = DtypeArgument(ctx, node).value_or(dtype);
  for (Expr& number : numbers) {
    if (ctx.Info(number).dtype != dtype) number = ctx.EmitExpr(relax::op::AsType(number, dtype));
  }
  if (data.kind != Value::Kind::kList) return Value::Tensor(numbers[0]);
  return ctx.Emit(relax::op::Stack(numbers, 0));
}

Value ConvertNumel(ConversionContext& ctx, const Node& node) {
  int64_t elements = 1;
  for (int64_t extent : ctx.Shape(ctx.Tensor(node.input(0)))) elements *= extent;
  return Value::Constant(elements);
}

Value ConvertIsFloatingPoint(ConversionContext& ctx, const Node& node) {
  return Value::Constant(ctx.IsFloating(ctx.Tensor(node.input(0))));
}

// prim::device(tensor): compiled code runs on the CPU. aten::device(str) parses a name.
Value ConvertDevice(ConversionContext& ctx, const Node& node) {
  if (node.kind() == c10::prim::device) {
    ctx.Tensor(node.input(0));
    return Value::Constant(c10::Device(c10::kCPU));
  }
  return Value::Constant(c10::Device(ctx.String(node.input(0))));
}

// prim::layout(tensor): compiled tensors are strided (torch.strided is 0).
Value ConvertLayout(ConversionContext& ctx, const Node& node) {
  ctx.Tensor(node.input(0));
  return Value::Constant(static_cast<int64_t>(c10::Layout::Strided));
}

Value ConvertDtype(ConversionContext& ctx, const Node& node) {
  return Value::Constant(
      static_cast<int64_t>(DtypeFromName(ctx.Info(ctx.Tensor(node.input(0))).dtype)));
}

// aten::_shape_as_tensor(self): the static shape as an int64 tensor.
Value ConvertShapeAsTensor(ConversionContext& ctx, const Node& node) {
  at::Tensor shape = at::tensor(ctx.Shape(ctx.Tensor(node.input(0))), at::kLong);
  return Value::Tensor(TensorConstant(shape));
}

// aten::__not__(bool) where the bool is a 0-d tensor computed by the graph.
Value ConvertNot(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  if (ctx.Info(x).dtype != "bool") x = ctx.EmitExpr(relax::op::AsType(x, "bool"));
  return ctx.Emit(relax::op::Unary("logical_not", x));
}

// aten::warn(message, stacklevel): compiled code computes, it does not print; the warning a
// scripted forward gives on every call (GoogLeNet's "Scripted GoogleNet always returns
// GoogleNetOutputs Tuple") is not repeated by the compiled module.
Value ConvertWarn(ConversionContext&, const Node&) { return Value::List({}); }

// prim::Uninitialized: the value TorchScript gives a variable on a path that returned early
// or raised (a branch's output, so that both branches give one). The path that uses it is
// never taken; a converter that reads it anyway fails on None.
Value ConvertUninitialized(ConversionContext&, const Node&) { return Value::Constant({}); }

}  // namespace

void RegisterScalarOps(ConverterTable& table) {
  table.Register("prim::Uninitialized", ConvertUninitialized);
  RegisterAll(table,
              {"aten::Int", "aten::Float", "aten::IntImplicit", "aten::FloatImplicit",
               "aten::ScalarImplicit", "prim::ImplicitTensorToNum"},
              ConvertTensorToNumber);
  table.Register("prim::NumToTensor", ConvertNumberToTensor);
  RegisterAll(table, {"aten::tensor", "aten::as_tensor"}, ConvertTensorOfNumbers);
  table.Register("aten::numel", ConvertNumel);
  table.Register("aten::is_floating_point", ConvertIsFloatingPoint);
  RegisterAll(table, {"prim::device", "aten::device"}, ConvertDevice);
  table.Register("prim::dtype", ConvertDtype);
  table.Register("prim::layout", ConvertLayout);
  table.Register("aten::_shape_as_tensor", ConvertShapeAsTensor);
  table.Register("aten::__not__", ConvertNot);
  table.Register("aten::warn", ConvertWarn);
}

}  // namespace tvmbridge::frontend
