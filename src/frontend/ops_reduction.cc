// Reductions with PyTorch's dtype rules (sums and products of integers and bools are int64):
// sum, mean, prod, amax/amin, max/min (all three forms), std/var (with their correction),
// var_mean/std_mean, norms, logsumexp, all/any, cumsum, and the losses built from them.
#include <cmath>
#include <limits>

#include <c10/util/Exception.h>

#include "frontend/emit_math.h"
#include "frontend/value_checks.h"
#include "tvmbridge/artifact.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

bool Keepdim(ConversionContext& ctx, const Node& node) {
  const torch::jit::Value* keepdim = NamedInput(node, "keepdim");
  return keepdim != nullptr && ctx.Bool(keepdim);
}

// The input cast to the `dtype` argument, or, without one, to int64 when `widen_integers`
// and it is an integer or bool tensor (PyTorch's sum, prod and cumsum).
Expr ReductionInput(ConversionContext& ctx, const Node& node, bool widen_integers) {
  Expr x = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(x).dtype;
  std::optional<std::string> requested = DtypeArgument(ctx, node);
  std::string wanted = requested                                                      ? *requested
                       : widen_integers && !c10::isFloatingType(DtypeFromName(dtype)) ? "int64"
                                                                                      : dtype;
  return wanted == dtype ? x : ctx.EmitExpr(relax::op::AsType(x, wanted));
}

// Number of elements the reduction over `axes` combines.
int64_t ReducedCount(ConversionContext& ctx, const Expr& x, const IntList& axes) {
  IntList shape = ctx.Shape(x);
  int64_t count = 1;
  for (int64_t axis : axes) count *= shape[axis];
  return count;
}

// TVM's max and min have no identity for bool; on bools as uint8 they are any and all.
Expr Ordered(ConversionContext& ctx, const Expr& x) {
  return ctx.Info(x).dtype == "bool" ? ctx.EmitExpr(relax::op::AsType(x, "uint8")) : x;
}
Expr AsDtypeOf(ConversionContext& ctx, const Expr& x, const Expr& like) {
  std::string dtype = ctx.Info(like).dtype;
  return ctx.Info(x).dtype == dtype ? x : ctx.EmitExpr(relax::op::AsType(x, dtype));
}
// PyTorch accumulates float16 and bfloat16 reductions in float32 (its acc_type) and rounds
// the result back; so do we (AsDtypeOf): in half precision a variance drifts by 0.2%.
Expr Accumulated(ConversionContext& ctx, const Expr& x) {
  std::string dtype = ctx.Info(x).dtype;
  if (dtype != "float16" && dtype != "bfloat16") return x;
  return ctx.EmitExpr(relax::op::AsType(x, "float32"));
}

// sum, mean, prod, amax, amin: (self, dim?, keepdim, dtype?) in all their overloads.
Converter Reduction(std::string relax_name, bool widen_integers) {
  return [relax_name, widen_integers](ConversionContext& ctx, const Node& node) {
    Expr x = ReductionInput(ctx, node, widen_integers);
    IntList axes = ReductionAxes(ctx, NamedInput(node, "dim"), ctx.Rank(x));
    bool exact = relax_name == "max" || relax_name == "min";
    Expr reduced = ctx.EmitExpr(relax::op::Reduce(
        relax_name, exact ? Ordered(ctx, x) : Accumulated(ctx, x), axes, Keepdim(ctx, node)));
    return Value::Tensor(AsDtypeOf(ctx, reduced, x));
  };
}

// max/min: (self) -> the extreme element; (self, dim, keepdim) -> (values, indices). The
// elementwise max.other is ops_elementwise.cc's.
template <bool kMax>
Value ConvertExtreme(ConversionContext& ctx, const Node& node) {
  Expr given = ctx.Tensor(node.input(0));
  const char* name = kMax ? "max" : "min";
  const torch::jit::Value* dim = NamedInput(node, "dim");
  IntList axes = ReductionAxes(ctx, dim, ctx.Rank(given));
  bool keepdim = Keepdim(ctx, node);
  Expr x = Ordered(ctx, given);
  Value values =
      Value::Tensor(AsDtypeOf(ctx, ctx.EmitExpr(relax::op::Reduce(name, x, axes, keepdim)), given));
  if (dim == nullptr) return values;
  Expr index = ctx.EmitExpr(kMax ? relax::op::ArgMax(x, axes[0], keepdim)
                                 : relax::op::ArgMin(x, axes[0], keepdim));
  return Value::List({values, ctx.Emit(relax::op::AsType(index, "int64"))});
}

// The variance PyTorch computes: the population variance scaled by n / (n - correction).
// `correction` comes from `unbiased` (1 or 0) or from the correction argument (default 1).
Expr CorrectedVariance(ConversionContext& ctx, const Node& node, const Expr& x, const IntList& axes,
                       bool keepdim) {
  double correction = 1.0;
  if (const torch::jit::Value* unbiased = NamedInput(node, "unbiased")) {
    correction = ctx.Bool(unbiased) ? 1.0 : 0.0;
  } else if (const torch::jit::Value* given = NamedInput(node, "correction")) {
    if (!ctx.IsNone(given)) correction = ctx.Double(given);
  }
  Expr variance = ctx.EmitExpr(relax::op::Reduce("variance", x, axes, keepdim));
  if (correction == 0.0) return variance;
  auto count = static_cast<double>(ReducedCount(ctx, x, axes));
  double scale = count - correction > 0 ? count / (count - correction)
                                        : std::numeric_limits<double>::quiet_NaN();
  return ctx.EmitExpr(relax::op::Multiply(variance, ctx.Scalar(scale, ctx.Info(x).dtype)));
}

// std / var / var_mean / std_mean in their (unbiased), (dim, unbiased, keepdim) and
// (dim, correction, keepdim) forms.
template <bool kStd, bool kWithMean>
Value ConvertMoments(ConversionContext& ctx, const Node& node) {
  Expr given = ctx.Tensor(node.input(0));
  Expr x = Accumulated(ctx, given);
  IntList axes = ReductionAxes(ctx, NamedInput(node, "dim"), ctx.Rank(x));
  bool keepdim = Keepdim(ctx, node);
  Expr spread = CorrectedVariance(ctx, node, x, axes, keepdim);
  if (kStd) spread = ctx.EmitExpr(relax::op::Unary("sqrt", spread));
  spread = AsDtypeOf(ctx, spread, given);
  if (!kWithMean) return Value::Tensor(spread);
  Expr mean = ctx.EmitExpr(relax::op::Mean(x, axes, keepdim));
  return Value::List({Value::Tensor(spread), Value::Tensor(AsDtypeOf(ctx, mean, given))});
}

// The p-norm over `axes`: p = 2, 1, +-inf, 0 (count of non-zeros) or any other p.
Expr PNorm(ConversionContext& ctx, const Expr& x, double p, const IntList& axes, bool keepdim) {
  EmitMath m = EmitMath::Like(ctx, x);
  if (std::isinf(p)) {
    return ctx.EmitExpr(relax::op::Reduce(p > 0 ? "max" : "min", m.Abs(x), axes, keepdim));
  }
  if (p == 0) {
    Expr nonzero = ctx.EmitExpr(relax::op::NotEqual(x, m.Number(0)));
    return ctx.EmitExpr(
        relax::op::Sum(ctx.EmitExpr(relax::op::AsType(nonzero, m.dtype)), axes, keepdim));
  }
  if (p == 1) return ctx.EmitExpr(relax::op::Sum(m.Abs(x), axes, keepdim));
  if (p == 2) {
    return m.Unary("sqrt", ctx.EmitExpr(relax::op::Sum(m.Mul(x, x), axes, keepdim)));
  }
  Expr powered = ctx.EmitExpr(relax::op::Power(m.Abs(x), m.Number(p)));
  Expr total = ctx.EmitExpr(relax::op::Sum(powered, axes, keepdim));
  return ctx.EmitExpr(relax::op::Power(total, m.Number(1.0 / p)));
}

// norm(self, p?, dim?, keepdim, dtype?), frobenius_norm(self, dim, keepdim),
// linalg_vector_norm(self, ord, dim?, keepdim, dtype?).
Value ConvertNorm(ConversionContext& ctx, const Node& node) {
  Expr x = ReductionInput(ctx, node, false);
  TORCH_CHECK(ctx.IsFloating(x), "norms are defined for floating tensors, not ", ctx.Info(x).dtype);
  const torch::jit::Value* order = NamedInput(node, "p");
  if (order == nullptr) order = NamedInput(node, "ord");
  double p = order == nullptr || ctx.IsNone(order) ? 2.0 : ctx.Double(order);
  IntList axes = ReductionAxes(ctx, NamedInput(node, "dim"), ctx.Rank(x));
  Expr norm = PNorm(ctx, Accumulated(ctx, x), p, axes, Keepdim(ctx, node));
  return Value::Tensor(AsDtypeOf(ctx, norm, x));
}

// logsumexp(self, dim, keepdim) = max + log(sum(exp(x - max))), so large inputs do not
// overflow. Integers are computed as float32, as PyTorch does.
Value ConvertLogSumExp(ConversionContext& ctx, const Node& node) {
  Expr given = ctx.Tensor(node.input(0));
  Expr x = ctx.IsFloating(given) ? Accumulated(ctx, given)
                                 : ctx.EmitExpr(relax::op::AsType(given, "float32"));
  IntList axes = ReductionAxes(ctx, NamedInput(node, "dim"), ctx.Rank(x));
  bool keepdim = Keepdim(ctx, node);
  EmitMath m = EmitMath::Like(ctx, x);
  Expr peak = ctx.EmitExpr(relax::op::Reduce("max", x, axes, true));
  // An all -inf row has peak -inf; shift by 0 there so exp gives 0 and the result -inf.
  Expr finite_peak = m.Where(ctx.EmitExpr(relax::op::Unary("isinf", peak)), m.Number(0), peak);
  Expr total = ctx.EmitExpr(relax::op::Sum(m.Exp(m.Sub(x, finite_peak)), axes, keepdim));
  Expr shift = keepdim ? finite_peak : ctx.EmitExpr(relax::op::Squeeze(finite_peak, axes));
  Expr result = ctx.EmitExpr(relax::op::Add(m.Log(total), shift));
  return Value::Tensor(ctx.IsFloating(given) ? AsDtypeOf(ctx, result, given) : result);
}

// all/any(self[, dim | dims, keepdim]): whether every (some) element is non-zero.
template <bool kAll>
Value ConvertAllAny(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  std::string dtype = ctx.Info(x).dtype;
  Expr truth = dtype == "bool" ? x : ctx.EmitExpr(relax::op::NotEqual(x, ctx.Scalar(0, dtype)));
  Expr as_int = ctx.EmitExpr(relax::op::AsType(truth, "int8"));
  IntList axes = ReductionAxes(ctx, NamedInput(node, "dim"), ctx.Rank(x));
  Expr reduced =
      ctx.EmitExpr(relax::op::Reduce(kAll ? "min" : "max", as_int, axes, Keepdim(ctx, node)));
  return ctx.Emit(relax::op::AsType(reduced, "bool"));
}

// cumsum(self, dim, dtype?)
Value ConvertCumSum(ConversionContext& ctx, const Node& node) {
  Expr x = ReductionInput(ctx, node, true);
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(x));
  return ctx.Emit(relax::op::CumSum(x, axis, ctx.Info(x).dtype));
}

// PyTorch's loss reduction argument: 0 none, 1 mean, 2 sum.
Expr ReduceLoss(ConversionContext& ctx, const Expr& loss, int64_t reduction) {
  TORCH_CHECK(reduction >= 0 && reduction <= 2, "unknown loss reduction ", reduction);
  if (reduction == 0) return loss;
  IntList axes = ReductionAxes(ctx, nullptr, ctx.Rank(loss));
  return ctx.EmitExpr(reduction == 1 ? relax::op::Mean(loss, axes, false)
                                     : relax::op::Sum(loss, axes, false));
}

// l1_loss / mse_loss(self, target, reduction)
template <bool kSquared>
Value ConvertPointwiseLoss(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m = EmitMath::Like(ctx, x);
  Expr difference = m.Sub(x, ctx.Tensor(node.input(1)));
  Expr loss = kSquared ? m.Mul(difference, difference) : m.Abs(difference);
  return Value::Tensor(ReduceLoss(ctx, loss, ctx.Int(NamedInput(node, "reduction"))));
}

// The negative log-likelihood of log-probabilities `x` ([N, C, ...] or [C]) at class
// indices `target` ([N, ...] or []), with class weights, ignore_index and PyTorch's mean
// (a sum over the weights of the targets that count).
Expr NllLoss(ConversionContext& ctx, const Node& node, const Expr& x) {
  Expr target = ctx.Tensor(node.input(1));
  const torch::jit::Value* weight_input = NamedInput(node, "weight");
  int64_t reduction = ctx.Int(NamedInput(node, "reduction"));
  int64_t ignore_index = ctx.Int(NamedInput(node, "ignore_index"));
  EmitMath m = EmitMath::Like(ctx, x);
  bool batched = ctx.Rank(x) > 1;
  int64_t class_axis = batched ? 1 : 0;
  std::string index_dtype = ctx.Info(target).dtype;
  Expr counted = ctx.EmitExpr(
      relax::op::NotEqual(target, ctx.Scalar(static_cast<double>(ignore_index), index_dtype)));
  Expr safe_target = CheckedIndices(
      ctx, node, ctx.EmitExpr(relax::op::Where(counted, target, ctx.Scalar(0, index_dtype))),
      ctx.Shape(x)[class_axis], class_axis, NegativeIndices::kRejected);
  Expr picked = ctx.EmitExpr(relax::op::Squeeze(
      ctx.EmitExpr(relax::op::GatherElements(
          x, ctx.EmitExpr(relax::op::ExpandDims(safe_target, {class_axis})), class_axis)),
      {class_axis}));
  Expr weight = ctx.EmitExpr(relax::op::AsType(counted, m.dtype));
  if (weight_input != nullptr && !ctx.IsNone(weight_input)) {
    Expr class_weight = ctx.EmitExpr(relax::op::Take(ctx.Tensor(weight_input), safe_target, 0));
    weight = m.Mul(weight, class_weight);
  }
  Expr loss = m.Neg(m.Mul(picked, weight));
  if (reduction != 1) return ReduceLoss(ctx, loss, reduction);
  IntList all = ReductionAxes(ctx, nullptr, ctx.Rank(loss));
  return ctx.EmitExpr(relax::op::Divide(ctx.EmitExpr(relax::op::Sum(loss, all, false)),
                                        ctx.EmitExpr(relax::op::Sum(weight, all, false))));
}

// nll_loss / nll_loss2d / nll_loss_nd(self, target, weight?, reduction, ignore_index)
Value ConvertNllLoss(ConversionContext& ctx, const Node& node) {
  return Value::Tensor(NllLoss(ctx, node, ctx.Tensor(node.input(0))));
}

// cross_entropy_loss(self, target, weight?, reduction, ignore_index, label_smoothing) with
// class-index targets: nll_loss of log_softmax over the class axis.
Value ConvertCrossEntropy(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  int64_t class_axis = ctx.Rank(x) > 1 ? 1 : 0;
  Expr log_probabilities = ctx.EmitExpr(relax::op::LogSoftmax(x, class_axis));
  double smoothing = ctx.Double(NamedInput(node, "label_smoothing"));
  if (!ctx.IsFloating(ctx.Tensor(node.input(1)))) {
    TORCH_CHECK(smoothing == 0.0,
                "cross_entropy with label_smoothing and class indices is not supported yet");
    return Value::Tensor(NllLoss(ctx, node, log_probabilities));
  }
  // Class probabilities ([N, C, ...] like x): -sum over classes of weight * target * log p,
  // the target smoothed towards uniform; "mean" averages over every position.
  EmitMath m = EmitMath::Like(ctx, log_probabilities);
  Expr target = ctx.Tensor(node.input(1));
  if (smoothing != 0.0) {
    double classes = static_cast<double>(ctx.Shape(x)[class_axis]);
    target = m.Add(m.Mul(target, m.Number(1.0 - smoothing)), m.Number(smoothing / classes));
  }
  Expr terms = m.Mul(log_probabilities, target);
  const torch::jit::Value* weight = NamedInput(node, "weight");
  if (weight != nullptr && !ctx.IsNone(weight)) {
    IntList per_class(ctx.Rank(x) - class_axis, 1);
    per_class[0] = ctx.Shape(x)[class_axis];
    terms = m.Mul(terms,
                  ctx.EmitExpr(relax::op::Reshape(ctx.Tensor(weight), relax::ToDims(per_class))));
  }
  Expr loss = m.Neg(ctx.EmitExpr(relax::op::Sum(terms, {class_axis}, false)));
  return Value::Tensor(ReduceLoss(ctx, loss, ctx.Int(NamedInput(node, "reduction"))));
}

}  // namespace

void RegisterReductionOps(ConverterTable& table) {
  table.Register("aten::sum", Reduction("sum", true));
  table.Register("aten::mean", Reduction("mean", false), kOnInputGrid);
  table.Register("aten::prod", Reduction("prod", true));
  table.Register("aten::amax", Reduction("max", false));
  table.Register("aten::amin", Reduction("min", false));
  table.Register("aten::max", ConvertExtreme<true>);
  table.Register("aten::min", ConvertExtreme<false>);
  table.Register("aten::var", ConvertMoments<false, false>);
  table.Register("aten::std", ConvertMoments<true, false>);
  table.Register("aten::var_mean", ConvertMoments<false, true>);
  table.Register("aten::std_mean", ConvertMoments<true, true>);
  RegisterAll(table, {"aten::norm", "aten::frobenius_norm", "aten::linalg_vector_norm"},
              ConvertNorm);
  table.Register("aten::logsumexp", ConvertLogSumExp);
  table.Register("aten::all", ConvertAllAny<true>);
  table.Register("aten::any", ConvertAllAny<false>);
  RegisterWithInplace(table, "aten::cumsum", ConvertCumSum);
  table.Register("aten::l1_loss", ConvertPointwiseLoss<false>);
  table.Register("aten::mse_loss", ConvertPointwiseLoss<true>);
  RegisterAll(table, {"aten::nll_loss", "aten::nll_loss2d", "aten::nll_loss_nd"}, ConvertNllLoss);
  table.Register("aten::cross_entropy_loss", ConvertCrossEntropy);
}

}  // namespace tvmbridge::frontend
