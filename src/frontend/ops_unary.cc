// Unary math with PyTorch's dtype rules: floating functions of integer or bool tensors give
// float32 (the default dtype); sign-like and rounding functions keep the dtype. The ones Relax
// has no op for are written out.
#include <cmath>
#include <limits>

#include "frontend/emit_math.h"
#include "tvmbridge/artifact.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using torch::jit::Node;

Expr AsFloating(ConversionContext& ctx, const Expr& x) {
  return ctx.IsFloating(x) ? x : ctx.EmitExpr(relax::op::AsType(x, "float32"));
}

// sin, exp, sigmoid, isnan, ...: computed in a floating dtype.
Converter Floating(std::string relax_name) {
  return [relax_name](ConversionContext& ctx, const Node& node) {
    return ctx.Emit(relax::op::Unary(relax_name, AsFloating(ctx, ctx.Tensor(node.input(0)))));
  };
}

// relu, abs, neg, sign: the input's dtype is kept.
Converter KeepingDtype(std::string relax_name) {
  return [relax_name](ConversionContext& ctx, const Node& node) {
    return ctx.Emit(relax::op::Unary(relax_name, ctx.Tensor(node.input(0))));
  };
}

// floor, ceil, round, trunc: integers are whole already, and PyTorch returns them as they are.
Converter Rounding(std::string relax_name) {
  return [relax_name](ConversionContext& ctx, const Node& node) {
    Expr x = ctx.Tensor(node.input(0));
    return ctx.Emit(ctx.IsFloating(x) ? relax::op::Unary(relax_name, x) : x);
  };
}

// log2 and log10 as log(x) times a constant.
Converter ScaledLog(double scale) {
  return [scale](ConversionContext& ctx, const Node& node) {
    Expr x = AsFloating(ctx, ctx.Tensor(node.input(0)));
    EmitMath m = EmitMath::Like(ctx, x);
    return ctx.Emit(relax::op::Multiply(m.Log(x), m.Number(scale)));
  };
}

// log(1 + x): Relax has no log1p; for |x| below ~1e-4 this keeps fewer digits than PyTorch's.
Value ConvertLog1p(ConversionContext& ctx, const Node& node) {
  Expr x = AsFloating(ctx, ctx.Tensor(node.input(0)));
  EmitMath m = EmitMath::Like(ctx, x);
  return ctx.Emit(relax::op::Unary("log", m.Add(x, m.Number(1))));
}

// exp(x) - 1: Relax has no expm1; for |x| below ~1e-4 this keeps fewer digits than PyTorch's
// (the error stays below the dtype's spacing at 1).
Value ConvertExpm1(ConversionContext& ctx, const Node& node) {
  Expr x = AsFloating(ctx, ctx.Tensor(node.input(0)));
  EmitMath m = EmitMath::Like(ctx, x);
  return ctx.Emit(relax::op::Subtract(m.Exp(x), m.Number(1)));
}

// sinh and cosh from exp: TVM 0.27's LLVM code generator has no lowering for them once a
// target names its CPU ("unknown intrinsic tirx.sinh").
template <bool kCosh>
Value ConvertHyperbolic(ConversionContext& ctx, const Node& node) {
  Expr x = AsFloating(ctx, ctx.Tensor(node.input(0)));
  EmitMath m = EmitMath::Like(ctx, x);
  Expr up = m.Exp(x);
  Expr down = m.Exp(m.Neg(x));
  return ctx.Emit(relax::op::Multiply(kCosh ? m.Add(up, down) : m.Sub(up, down), m.Number(0.5)));
}

Value ConvertReciprocal(ConversionContext& ctx, const Node& node) {
  Expr x = AsFloating(ctx, ctx.Tensor(node.input(0)));
  return ctx.Emit(relax::op::Divide(EmitMath::Like(ctx, x).Number(1), x));
}

Value ConvertSquare(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  if (ctx.Info(x).dtype == "bool") x = ctx.EmitExpr(relax::op::AsType(x, "int64"));
  return ctx.Emit(relax::op::Multiply(x, x));
}

// clamp_min(x, min) / clamp_max(x, max): one-sided clamp.
template <bool kLower>
Value ConvertOneSidedClamp(ConversionContext& ctx, const Node& node) {
  constexpr double kInfinity = std::numeric_limits<double>::infinity();
  double bound = ctx.Double(node.input(1));
  return ctx.Emit(relax::op::Clip(ctx.Tensor(node.input(0)), kLower ? bound : -kInfinity,
                                  kLower ? kInfinity : bound));
}

// aten::sign: a bool is its own sign (TVM's sign of a bool makes a -1 it cannot hold).
Value ConvertSign(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  if (ctx.Info(x).dtype == "bool") return Value::Tensor(x);
  return ctx.Emit(relax::op::Unary("sign", x));
}

}  // namespace

void RegisterUnaryOps(ConverterTable& table) {
  for (const char* name : {"sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "erf", "sin", "cos",
                           "tan", "asin", "acos", "atan"}) {
    // PyTorch's quantized sigmoid puts [0, 1) on 256 steps; the others have no quantized kernel.
    OpTraits traits = std::string(name) == "sigmoid" ? kOnUnitGrid : OpTraits{};
    RegisterWithInplace(table, std::string("aten::") + name, Floating(name), traits);
  }
  RegisterWithInplace(table, "aten::sinh", ConvertHyperbolic<false>);
  RegisterWithInplace(table, "aten::cosh", ConvertHyperbolic<true>);
  for (const char* name : {"isfinite", "isinf", "isnan"}) {
    table.Register(std::string("aten::") + name, Floating(name));
  }
  RegisterWithInplace(table, "aten::relu", KeepingDtype("nn.relu"), kOnInputGrid);
  RegisterWithInplace(table, "aten::silu", Floating("nn.silu"));
  RegisterWithInplace(table, "aten::abs", KeepingDtype("abs"));
  RegisterWithInplace(table, "aten::neg", KeepingDtype("negative"));
  RegisterWithInplace(table, "aten::sign", ConvertSign);
  for (const char* name : {"floor", "ceil", "round", "trunc"}) {
    RegisterWithInplace(table, std::string("aten::") + name, Rounding(name));
  }
  RegisterWithInplace(table, "aten::log2", ScaledLog(1.0 / std::log(2.0)));
  RegisterWithInplace(table, "aten::log10", ScaledLog(1.0 / std::log(10.0)));
  RegisterWithInplace(table, "aten::log1p", ConvertLog1p);
  RegisterWithInplace(table, "aten::expm1", ConvertExpm1);
  RegisterWithInplace(table, "aten::reciprocal", ConvertReciprocal);
  RegisterWithInplace(table, "aten::square", ConvertSquare);
  RegisterWithInplace(table, "aten::clamp_min", ConvertOneSidedClamp<true>);
  RegisterWithInplace(table, "aten::clamp_max", ConvertOneSidedClamp<false>);
}

}  // namespace tvmbridge::frontend
