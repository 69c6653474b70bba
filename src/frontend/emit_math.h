// Elementwise formulas for converters that write an op out of Relax ops: each call emits one
// binding, so a converter reads like its formula (m.Mul(m.Exp(x), m.Number(0.5))).
#pragma once

#include <string>

#include "frontend/converter.h"

namespace tvmbridge::frontend {

struct EmitMath {
  ConversionContext& ctx;
  std::string dtype;  // of the numbers made by Number()

  // Numbers in the dtype of `x`.
  static EmitMath Like(ConversionContext& ctx, const relax::Expr& x) {
    return EmitMath{ctx, ctx.Info(x).dtype};
  }

  relax::Expr Number(double value) { return ctx.Scalar(value, dtype); }
  relax::Expr Unary(const char* relax_name, const relax::Expr& x) {
    return ctx.EmitExpr(relax::op::Unary(relax_name, x));
  }
  relax::Expr Exp(const relax::Expr& x) { return Unary("exp", x); }
  relax::Expr Log(const relax::Expr& x) { return Unary("log", x); }
  relax::Expr Abs(const relax::Expr& x) { return Unary("abs", x); }
  relax::Expr Neg(const relax::Expr& x) { return Unary("negative", x); }
  relax::Expr Add(const relax::Expr& a, const relax::Expr& b) {
    return ctx.EmitExpr(relax::op::Add(a, b));
  }
  relax::Expr Sub(const relax::Expr& a, const relax::Expr& b) {
    return ctx.EmitExpr(relax::op::Subtract(a, b));
  }
  relax::Expr Mul(const relax::Expr& a, const relax::Expr& b) {
    return ctx.EmitExpr(relax::op::Multiply(a, b));
  }
  relax::Expr Min(const relax::Expr& a, const relax::Expr& b) {
    return ctx.EmitExpr(relax::op::Minimum(a, b));
  }
  relax::Expr Max(const relax::Expr& a, const relax::Expr& b) {
    return ctx.EmitExpr(relax::op::Maximum(a, b));
  }
  relax::Expr Above(const relax::Expr& x, double bound) {
    return ctx.EmitExpr(relax::op::Greater(x, Number(bound)));
  }
  relax::Expr Where(const relax::Expr& condition, const relax::Expr& a, const relax::Expr& b) {
    return ctx.EmitExpr(relax::op::Where(condition, a, b));
  }
  // log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)).
  relax::Expr Softplus(const relax::Expr& x) {
    return Add(Max(x, Number(0)), Log(Add(Number(1), Exp(Neg(Abs(x))))));
  }
};

}  // namespace tvmbridge::frontend
