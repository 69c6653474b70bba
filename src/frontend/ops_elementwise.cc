// Elementwise arithmetic and activations.
#include <ATen/native/TypeProperties.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/result_type.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "frontend/value_checks.h"
#include "tvmbridge/artifact.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using torch::jit::Node;

// One operand of a binary op as PyTorch's type promotion sees it: a number, or a tensor's
// rank (0-d tensors promote like numbers) and dtype, as an empty meta tensor.
c10::IValue PromotionOperand(ConversionContext& ctx, const torch::jit::Value* value) {
  if (ctx.IsConstant(value) && ctx.Constant(value).isScalar()) return ctx.Constant(value);
  Expr tensor = ctx.Tensor(value);
  relax::IntList shape(static_cast<size_t>(ctx.Rank(tensor)), 1);
  relax::TensorInfo info = ctx.Info(tensor);
  return at::empty(shape, at::TensorOptions().device(at::kMeta).dtype(DtypeFromName(info.dtype)));
}

// The dtype PyTorch computes `a op b` in (at::result_type: categories bool < integer <
// float, dimensioned tensors before 0-d tensors before numbers).
std::string PromotedDtype(ConversionContext& ctx, const torch::jit::Value* first,
                          const torch::jit::Value* second) {
  c10::IValue a = PromotionOperand(ctx, first);
  c10::IValue b = PromotionOperand(ctx, second);
  c10::ScalarType type;
  if (a.isTensor() && b.isTensor()) {
    type = at::result_type(a.toTensor(), b.toTensor());
  } else if (a.isTensor()) {
    type = at::result_type(a.toTensor(), b.toScalar());
  } else if (b.isTensor()) {
    type = at::result_type(b.toTensor(), a.toScalar());
  } else {
    type = at::result_type(a.toScalar(), b.toScalar());
  }
  return DtypeName(type);
}
std::string PromotedDtype(ConversionContext& ctx, const Node& node) {
  return PromotedDtype(ctx, node.input(0), node.input(1));
}

// An operand as a tensor of `dtype`: numbers become 0-d constants, tensors are cast.
Expr Operand(ConversionContext& ctx, const torch::jit::Value* value, const std::string& dtype) {
  if (ctx.IsConstant(value) && ctx.Constant(value).isScalar()) {
    return ctx.Scalar(ctx.Constant(value).toScalar().toDouble(), dtype);
  }
  Expr tensor = ctx.Tensor(value);
  if (ctx.Info(tensor).dtype == dtype) return tensor;
  return ctx.EmitExpr(relax::op::AsType(tensor, dtype));
}

// aten::where(condition, self, other) in its tensor and scalar overloads: self and other
// promoted to their common dtype. (where(condition) is ops_data_dependent.cc's.)
Value ConvertWhere(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node.input(1), node.input(2));
  return ctx.Emit(relax::op::Where(ctx.Tensor(node.input(0)), Operand(ctx, node.input(1), dtype),
                                   Operand(ctx, node.input(2), dtype)));
}

// Arithmetic and comparisons: both operands promoted to PyTorch's common dtype. TVM's
// lowering of comparisons and maxima of bools fails (LLVM rejects the code), so bools are
// compared as uint8, and a uint8 result is read back as bool (1 + 1 is true, as in PyTorch).
template <Expr (*Op)(const Expr&, const Expr&)>
Value ConvertBinary(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node);
  std::string computed = dtype == "bool" ? "uint8" : dtype;
  Expr result = ctx.EmitExpr(
      Op(Operand(ctx, node.input(0), computed), Operand(ctx, node.input(1), computed)));
  if (computed == dtype || ctx.Info(result).dtype == "bool") return Value::Tensor(result);
  return ctx.Emit(relax::op::AsType(result, dtype));
}

// aten::pow(self, exponent). TVM's power is float-only; an integer tensor to a constant
// non-negative integer power is exact by repeated squaring (wrapping on overflow, as PyTorch
// does), other integer powers stay in PyTorch (which refuses negative ones).
Value ConvertPow(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node);
  if (c10::isFloatingType(DtypeFromName(dtype))) {
    return ctx.Emit(
        relax::op::Power(Operand(ctx, node.input(0), dtype), Operand(ctx, node.input(1), dtype)));
  }
  const torch::jit::Value* exponent = node.input(1);
  TORCH_CHECK(ctx.IsConstant(exponent) && ctx.Constant(exponent).isInt() && ctx.Int(exponent) >= 0,
              "pow: an integer tensor to a tensor or negative power is left to PyTorch");
  Expr base = Operand(ctx, node.input(0), dtype);
  std::optional<Expr> result;
  for (int64_t bits = ctx.Int(exponent); bits > 0; bits >>= 1) {
    if (bits & 1) result = result ? ctx.EmitExpr(relax::op::Multiply(*result, base)) : base;
    if (bits > 1) base = ctx.EmitExpr(relax::op::Multiply(base, base));
  }
  if (!result) return Value::Tensor(ctx.Filled(1, ctx.Shape(base), dtype));
  return Value::Tensor(*result);
}

// aten::add / aten::sub (self, other, alpha): self ± alpha * other; aten::rsub (kReversed):
// other - alpha * self. alpha scales the operand that is subtracted or added.
template <Expr (*Op)(const Expr&, const Expr&), bool kReversed = false>
Value ConvertAddSub(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node);
  Expr lhs = Operand(ctx, node.input(kReversed ? 1 : 0), dtype);
  Expr rhs = Operand(ctx, node.input(kReversed ? 0 : 1), dtype);
  if (node.inputs().size() > 2 && ctx.Double(node.input(2)) != 1.0) {
    rhs = ctx.EmitExpr(relax::op::Multiply(rhs, ctx.Scalar(ctx.Double(node.input(2)), dtype)));
  }
  return ctx.Emit(Op(lhs, rhs));
}

// a / b rounded toward minus infinity (kFloor) or zero, in the operands' dtype. Integer
// operands are checked first (CheckIntegerDivision): a division that would trap raises.
template <bool kFloor>
Expr RoundedDivide(ConversionContext& ctx, const Node& node, const Expr& a, const Expr& b,
                   const std::string& dtype) {
  if (!c10::isFloatingType(DtypeFromName(dtype))) {
    CheckIntegerDivision(ctx, node, a, b);
    // TVM's integer division truncates.
    return ctx.EmitExpr(kFloor ? relax::op::Binary("floor_divide", a, b) : relax::op::Divide(a, b));
  }
  return ctx.EmitExpr(
      relax::op::Unary(kFloor ? "floor" : "trunc", ctx.EmitExpr(relax::op::Divide(a, b))));
}

// aten::div(self, other, rounding_mode?): true division (integers divide as float32,
// PyTorch's default), or rounded to "trunc" / "floor" in the promoted dtype.
Value ConvertDiv(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node);
  const torch::jit::Value* rounding = NamedInput(node, "rounding_mode");
  std::string mode = rounding == nullptr || ctx.IsNone(rounding) ? "" : ctx.String(rounding);
  TORCH_CHECK(mode.empty() || mode == "trunc" || mode == "floor", "div: unknown rounding mode '",
              mode, "'");
  if (mode.empty() && !c10::isFloatingType(DtypeFromName(dtype))) dtype = "float32";
  Expr a = Operand(ctx, node.input(0), dtype);
  Expr b = Operand(ctx, node.input(1), dtype);
  if (mode == "floor") return Value::Tensor(RoundedDivide<true>(ctx, node, a, b, dtype));
  if (mode == "trunc") return Value::Tensor(RoundedDivide<false>(ctx, node, a, b, dtype));
  return ctx.Emit(relax::op::Divide(a, b));
}

// aten::floor_divide(self, other)
Value ConvertFloorDivide(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node);
  return Value::Tensor(RoundedDivide<true>(ctx, node, Operand(ctx, node.input(0), dtype),
                                           Operand(ctx, node.input(1), dtype), dtype));
}

// aten::remainder (the sign of the divisor, Python's %) and aten::fmod (the sign of the
// dividend, C's fmod): a - b * rounded(a / b).
template <bool kFloor>
Value ConvertModulo(ConversionContext& ctx, const Node& node) {
  std::string dtype = PromotedDtype(ctx, node);
  Expr a = Operand(ctx, node.input(0), dtype);
  Expr b = Operand(ctx, node.input(1), dtype);
  Expr quotient = RoundedDivide<kFloor>(ctx, node, a, b, dtype);
  return ctx.Emit(relax::op::Subtract(a, ctx.EmitExpr(relax::op::Multiply(b, quotient))));
}

// aten::lerp(self, end, weight): self + weight * (end - self)
Value ConvertLerp(ConversionContext& ctx, const Node& node) {
  Expr start = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(start).dtype;
  Expr end = Operand(ctx, node.input(1), dtype);
  Expr weight = Operand(ctx, node.input(2), dtype);
  Expr step =
      ctx.EmitExpr(relax::op::Multiply(weight, ctx.EmitExpr(relax::op::Subtract(end, start))));
  return ctx.Emit(relax::op::Add(start, step));
}

// aten::addcmul / addcdiv(self, tensor1, tensor2, value): self + value * (t1 op t2)
template <Expr (*Op)(const Expr&, const Expr&)>
Value ConvertAddc(ConversionContext& ctx, const Node& node) {
  Expr self = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(self).dtype;
  Expr combined =
      ctx.EmitExpr(Op(Operand(ctx, node.input(1), dtype), Operand(ctx, node.input(2), dtype)));
  double value = ctx.Double(node.input(3));
  if (value != 1.0)
    combined = ctx.EmitExpr(relax::op::Multiply(combined, ctx.Scalar(value, dtype)));
  return ctx.Emit(relax::op::Add(self, combined));
}

// aten::masked_fill(self, mask, value: number | 0-d tensor)
Value ConvertMaskedFill(ConversionContext& ctx, const Node& node) {
  Expr self = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(self).dtype;
  return ctx.Emit(
      relax::op::Where(ctx.Tensor(node.input(1)), Operand(ctx, node.input(2), dtype), self));
}

// <<, >> on integer tensors.
Converter Shift(const std::string& relax_name) {
  return [relax_name](ConversionContext& ctx, const Node& node) {
    std::string dtype = PromotedDtype(ctx, node);
    return ctx.Emit(relax::op::Binary(relax_name, Operand(ctx, node.input(0), dtype),
                                      Operand(ctx, node.input(1), dtype)));
  };
}

// clamp(self, min?, max?) with tensor bounds: minimum(maximum(self, min), max) in the dtype
// PyTorch promotes all three to, so NaN anywhere gives NaN and min > max gives max.
Value ConvertClampByTensors(ConversionContext& ctx, const Node& node) {
  at::native::ResultTypeState state{};
  for (size_t i = 0; i < 3; ++i) {
    if (ctx.IsNone(node.input(i))) continue;
    c10::IValue operand = PromotionOperand(ctx, node.input(i));
    state = operand.isTensor() ? at::native::update_result_type_state(operand.toTensor(), state)
                               : at::native::update_result_type_state(operand.toScalar(), state);
  }
  std::string dtype = DtypeName(at::native::result_type(state));
  Expr result = Operand(ctx, node.input(0), dtype);
  if (!ctx.IsNone(node.input(1))) {
    result = ctx.EmitExpr(relax::op::Maximum(result, Operand(ctx, node.input(1), dtype)));
  }
  if (!ctx.IsNone(node.input(2))) {
    result = ctx.EmitExpr(relax::op::Minimum(result, Operand(ctx, node.input(2), dtype)));
  }
  return Value::Tensor(result);
}

Value ConvertClamp(ConversionContext& ctx, const Node& node) {
  auto is_tensor = [](const torch::jit::Value* bound) {
    return bound->type()->isSubtypeOf(*c10::OptionalType::ofTensor()) &&
           bound->type()->kind() != c10::TypeKind::NoneType;
  };
  if (is_tensor(node.input(1)) || is_tensor(node.input(2))) {
    return ConvertClampByTensors(ctx, node);
  }
  Expr x = ctx.Tensor(node.input(0));
  double low = ctx.IsNone(node.input(1)) ? -std::numeric_limits<double>::infinity()
                                         : ctx.Double(node.input(1));
  double high = ctx.IsNone(node.input(2)) ? std::numeric_limits<double>::infinity()
                                          : ctx.Double(node.input(2));
  return ctx.Emit(relax::op::Clip(x, low, high));
}

Value ConvertHardtanh(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::Clip(ctx.Tensor(node.input(0)), ctx.Double(node.input(1)),
                                  ctx.Double(node.input(2))));
}

Value ConvertRelu6(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::Clip(ctx.Tensor(node.input(0)), 0.0, 6.0));
}

// relu6(x + 3) / 6, shared by hardsigmoid and hardswish.
Expr HardSigmoid(ConversionContext& ctx, const Expr& x) {
  std::string dtype = ctx.Info(x).dtype;
  Expr shifted = ctx.EmitExpr(relax::op::Add(x, ctx.Scalar(3.0, dtype)));
  Expr clipped = ctx.EmitExpr(relax::op::Clip(shifted, 0.0, 6.0));
  return ctx.EmitExpr(relax::op::Divide(clipped, ctx.Scalar(6.0, dtype)));
}

Value ConvertHardsigmoid(ConversionContext& ctx, const Node& node) {
  return Value::Tensor(HardSigmoid(ctx, ctx.Tensor(node.input(0))));
}

Value ConvertHardswish(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  return ctx.Emit(relax::op::Multiply(x, HardSigmoid(ctx, x)));
}

Value ConvertGelu(ConversionContext& ctx, const Node& node) {
  std::string approximate = node.inputs().size() > 1 ? ctx.String(node.input(1)) : "none";
  TORCH_CHECK(approximate == "none" || approximate == "tanh", "unknown gelu approximation '",
              approximate, "'");
  return ctx.Emit(relax::op::Gelu(ctx.Tensor(node.input(0)), approximate == "tanh"));
}

Value ConvertLeakyRelu(ConversionContext& ctx, const Node& node) {
  return ctx.Emit(relax::op::LeakyRelu(ctx.Tensor(node.input(0)), ctx.Double(node.input(1))));
}

// aten::softmax / log_softmax (self, dim, dtype)
template <Expr (*Op)(const Expr&, int)>
Value ConvertSoftmax(ConversionContext& ctx, const Node& node) {
  TORCH_CHECK(node.inputs().size() < 3 || ctx.IsNone(node.input(2)),
              "softmax with a dtype argument is not supported yet");
  Expr x = ctx.Tensor(node.input(0));
  auto rank = ctx.Rank(x);
  int64_t axis = ctx.Int(node.input(1));
  return ctx.Emit(Op(x, static_cast<int>(axis < 0 ? axis + rank : axis)));
}

// &, |, ^ and their named forms: logical on bool tensors, bitwise on integers.
Converter Logic(const std::string& operation) {
  return [operation](ConversionContext& ctx, const Node& node) {
    std::string dtype = PromotedDtype(ctx, node);
    Expr lhs = Operand(ctx, node.input(0), dtype);
    Expr rhs = Operand(ctx, node.input(1), dtype);
    bool logical = dtype == "bool";
    return ctx.Emit(relax::op::Binary((logical ? "logical_" : "bitwise_") + operation, lhs, rhs));
  };
}

// logical_and/or/xor: nonzero is true, whatever the dtypes; the result is bool.
Converter LogicalOf(const std::string& operation) {
  return [operation](ConversionContext& ctx, const Node& node) {
    auto truth = [&](const torch::jit::Value* value) {
      Expr x = Operand(ctx, value, PromotedDtype(ctx, node));
      return ctx.Info(x).dtype == "bool" ? x : ctx.EmitExpr(relax::op::AsType(x, "bool"));
    };
    return ctx.Emit(
        relax::op::Binary("logical_" + operation, truth(node.input(0)), truth(node.input(1))));
  };
}

// ~x and logical_not(x)
Value ConvertNot(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  bool logical =
      ctx.Info(x).dtype == "bool" || node.kind().toUnqualString() == std::string("logical_not");
  if (logical && ctx.Info(x).dtype != "bool") x = ctx.EmitExpr(relax::op::AsType(x, "bool"));
  return ctx.Emit(relax::op::Unary(logical ? "logical_not" : "bitwise_not", x));
}

// aten::Bool(Tensor) -> bool: a one-element tensor as a condition. In Relax it stays a 0-d
// bool tensor, which is what a Relax If takes.
Value ConvertTensorToBool(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::IntList shape = ctx.Shape(x);
  int64_t elements = 1;
  for (int64_t extent : shape) elements *= extent;
  TORCH_CHECK(elements == 1, "bool() of a tensor with ", elements, " elements");
  Expr scalar = shape.empty() ? x : ctx.EmitExpr(relax::op::Reshape(x, {}));
  std::string dtype = ctx.Info(scalar).dtype;
  if (dtype == "bool") return Value::Tensor(scalar);
  return ctx.Emit(relax::op::NotEqual(scalar, ctx.Scalar(0.0, dtype)));
}

// aten::to(self, [device,] dtype | other, ...) and aten::type_as(self, other): a dtype
// conversion; moves to a device other than the CPU are refused.
Value ConvertTo(ConversionContext& ctx, const Node& node) {
  CheckCpuDevice(ctx, node);
  std::optional<std::string> dtype = DtypeArgument(ctx, node);
  auto other = node.schema().argumentIndexWithName("other");
  if (!dtype && other) dtype = ctx.Info(ctx.Tensor(node.input(*other))).dtype;
  Expr x = ctx.Tensor(node.input(0));
  if (!dtype || *dtype == ctx.Info(x).dtype) return ctx.Get(node.input(0));
  return ctx.Emit(relax::op::AsType(x, *dtype));
}

}  // namespace

void RegisterElementwiseOps(ConverterTable& table) {
  RegisterWithInplace(table, "aten::add", ConvertAddSub<relax::op::Add>);
  RegisterWithInplace(table, "aten::sub", ConvertAddSub<relax::op::Subtract>);
  RegisterWithInplace(table, "aten::mul", ConvertBinary<relax::op::Multiply>);
  RegisterWithInplace(table, "aten::div", ConvertDiv);
  RegisterWithInplace(table, "aten::true_divide", ConvertDiv);
  RegisterWithInplace(table, "aten::floor_divide", ConvertFloorDivide);
  RegisterWithInplace(table, "aten::remainder", ConvertModulo<true>);
  RegisterWithInplace(table, "aten::fmod", ConvertModulo<false>);
  RegisterWithInplace(table, "aten::lerp", ConvertLerp);
  RegisterWithInplace(table, "aten::addcmul", ConvertAddc<relax::op::Multiply>);
  RegisterWithInplace(table, "aten::addcdiv", ConvertAddc<relax::op::Divide>);
  RegisterWithInplace(table, "aten::masked_fill", ConvertMaskedFill);
  RegisterAll(table, {"aten::__lshift__", "aten::bitwise_left_shift"}, Shift("left_shift"));
  RegisterAll(table, {"aten::__rshift__", "aten::bitwise_right_shift"}, Shift("right_shift"));
  table.Register("aten::rsub", ConvertAddSub<relax::op::Subtract, /*kReversed=*/true>);
  // max(self, other) is maximum under max's name; max's other overloads reduce.
  RegisterAll(table, {"aten::maximum", "aten::max.other"}, ConvertBinary<relax::op::Maximum>);
  RegisterAll(table, {"aten::minimum", "aten::min.other"}, ConvertBinary<relax::op::Minimum>);
  RegisterAll(table,
              {"aten::where.self", "aten::where.ScalarSelf", "aten::where.ScalarOther",
               "aten::where.Scalar"},
              ConvertWhere);
  table.Register("aten::pow", ConvertPow);
  for (const char* operation : {"and", "or", "xor"}) {
    std::string name(operation);
    table.Register("aten::__" + name + "__", Logic(name));
    table.Register("aten::__i" + name + "__", Logic(name));  // x |= y, made functional
    table.Register("aten::bitwise_" + name, Logic(name));
  }
  RegisterAll(table, {"aten::bitwise_not", "aten::logical_not"}, ConvertNot);
  for (const std::string name : {"and", "or", "xor"}) {
    RegisterWithInplace(table, "aten::logical_" + name, LogicalOf(name));
  }
  table.Register("aten::gt", ConvertBinary<relax::op::Greater>);
  table.Register("aten::ge", ConvertBinary<relax::op::GreaterEqual>);
  table.Register("aten::lt", ConvertBinary<relax::op::Less>);
  table.Register("aten::le", ConvertBinary<relax::op::LessEqual>);
  table.Register("aten::eq", ConvertBinary<relax::op::Equal>);
  table.Register("aten::ne", ConvertBinary<relax::op::NotEqual>);

  RegisterWithInplace(table, "aten::clamp", ConvertClamp);
  RegisterWithInplace(table, "aten::hardtanh", ConvertHardtanh);
  RegisterWithInplace(table, "aten::relu6", ConvertRelu6);
  RegisterWithInplace(table, "aten::hardsigmoid", ConvertHardsigmoid, kOnUnitGrid);
  RegisterWithInplace(table, "aten::hardswish", ConvertHardswish);
  table.Register("aten::gelu", ConvertGelu);
  RegisterWithInplace(table, "aten::leaky_relu", ConvertLeakyRelu);
  table.Register("aten::Bool", ConvertTensorToBool);
  RegisterAll(table, {"aten::to", "aten::type_as"}, ConvertTo);
  table.Register("aten::softmax", ConvertSoftmax<relax::op::Softmax>);
  table.Register("aten::log_softmax", ConvertSoftmax<relax::op::LogSoftmax>);
}

}  // namespace tvmbridge::frontend
