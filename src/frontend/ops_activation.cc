// Activations written out of elementwise Relax ops (Relax has no op for them), in the input's
// floating dtype, with PyTorch's parameters and defaults.
#include <cmath>

#include "frontend/emit_math.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using torch::jit::Node;

double DoubleOr(ConversionContext& ctx, const Node& node, size_t index, double otherwise) {
  return node.inputs().size() > index ? ctx.Double(node.input(index)) : otherwise;
}

// elu(x, alpha=1, scale=1, input_scale=1)
//   = scale * (x > 0 ? x : alpha * (exp(x * input_scale) - 1))
Expr Elu(EmitMath& m, const Expr& x, double alpha, double scale, double input_scale) {
  Expr negative =
      m.Mul(m.Sub(m.Exp(m.Mul(x, m.Number(input_scale))), m.Number(1)), m.Number(alpha));
  Expr elu = m.Where(m.Above(x, 0), x, negative);
  return scale == 1.0 ? elu : m.Mul(elu, m.Number(scale));
}

Value ConvertElu(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  return ctx.Emit(Elu(m, x, DoubleOr(ctx, node, 1, 1.0), DoubleOr(ctx, node, 2, 1.0),
                      DoubleOr(ctx, node, 3, 1.0)));
}

Value ConvertSelu(ConversionContext& ctx, const Node& node) {
  constexpr double kAlpha = 1.6732632423543772848170429916717;
  constexpr double kScale = 1.0507009873554804934193349852946;
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  return ctx.Emit(Elu(m, x, kAlpha, kScale, 1.0));
}

// celu(x, alpha=1) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
Value ConvertCelu(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  double alpha = DoubleOr(ctx, node, 1, 1.0);
  Expr negative =
      m.Mul(m.Sub(m.Exp(m.Mul(x, m.Number(1.0 / alpha))), m.Number(1)), m.Number(alpha));
  return ctx.Emit(relax::op::Add(m.Max(x, m.Number(0)), m.Min(negative, m.Number(0))));
}

// softplus(x, beta=1, threshold=20) = x * beta > threshold ? x : log(1 + exp(beta * x)) / beta
Value ConvertSoftplus(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  double beta = DoubleOr(ctx, node, 1, 1.0);
  double threshold = DoubleOr(ctx, node, 2, 20.0);
  Expr scaled = beta == 1.0 ? x : m.Mul(x, m.Number(beta));
  Expr soft = m.Softplus(scaled);
  if (beta != 1.0) soft = m.Mul(soft, m.Number(1.0 / beta));
  return ctx.Emit(relax::op::Where(m.Above(scaled, threshold), x, soft));
}

// log_sigmoid(x) = -softplus(-x)
Value ConvertLogSigmoid(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  return ctx.Emit(relax::op::Multiply(m.Softplus(m.Neg(x)), m.Number(-1)));
}

// threshold(x, threshold, value) = x > threshold ? x : value
Value ConvertThreshold(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  return ctx.Emit(relax::op::Where(m.Above(x, ctx.Double(node.input(1))), x,
                                   m.Number(ctx.Double(node.input(2)))));
}

// prelu(x, weight) = x > 0 ? x : weight * x; weight has one value or one per channel (dim 1).
Value ConvertPrelu(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  Expr weight = ctx.Tensor(node.input(1));
  EmitMath m = EmitMath::Like(ctx, x);
  const auto rank = ctx.Rank(x);
  const int64_t channels = ctx.Shape(weight).empty() ? 1 : ctx.Shape(weight)[0];
  if (rank >= 2 && channels > 1) {
    relax::IntList shape(rank - 1, 1);  // [C, 1, ...]: broadcasts along dim 1
    shape[0] = channels;
    weight = ctx.EmitExpr(relax::op::Reshape(weight, relax::ToDims(shape)));
  }
  return ctx.Emit(relax::op::Where(m.Above(x, 0), x, m.Mul(x, weight)));
}

// glu(x, dim=-1) = a * sigmoid(b), a and b the halves of x along dim.
Value ConvertGlu(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  relax::IntList shape = ctx.Shape(x);
  int64_t axis = NormalizeAxis(node.inputs().size() > 1 ? ctx.Int(node.input(1)) : -1,
                               static_cast<int64_t>(shape.size()));
  TORCH_CHECK(shape[axis] % 2 == 0, "glu: dimension ", axis, " has odd size ", shape[axis]);
  Expr halves = ctx.EmitExpr(relax::op::Split(x, {shape[axis] / 2}, axis));
  Expr a = ctx.EmitExpr(relax::TupleGetItem(halves, 0));
  Expr b = ctx.EmitExpr(relax::TupleGetItem(halves, 1));
  return ctx.Emit(relax::op::Multiply(a, ctx.EmitExpr(relax::op::Unary("sigmoid", b))));
}

}  // namespace

void RegisterActivationOps(ConverterTable& table) {
  RegisterWithInplace(table, "aten::elu", ConvertElu);
  RegisterWithInplace(table, "aten::selu", ConvertSelu);
  RegisterWithInplace(table, "aten::celu", ConvertCelu);
  table.Register("aten::softplus", ConvertSoftplus);
  table.Register("aten::log_sigmoid", ConvertLogSigmoid);
  RegisterWithInplace(table, "aten::threshold", ConvertThreshold);
  table.Register("aten::prelu", ConvertPrelu);
  table.Register("aten::glu", ConvertGlu);
}

}  // namespace tvmbridge::frontend
