#include "frontend/value_checks.h"

#include <limits>

#include <ATen/ops/scalar_tensor.h>

#include <c10/util/Exception.h>

#include "tvmbridge/artifact.h"
#include "tvmbridge/tensor_bridge.h"
#include "tvmbridge/tvm_module.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;

// The smallest (or largest) element of `x` as a 0-d tensor.
Expr Extreme(ConversionContext& ctx, const char* reduction, const Expr& x) {
  IntList axes = ReductionAxes(ctx, nullptr, ctx.Rank(x));
  return axes.empty() ? x : ctx.EmitExpr(relax::op::Reduce(reduction, x, axes, false));
}

// Raises `error_kind` with `format` ("{}": each of `format_args`, 0-d tensors) at run time
// when the 0-d bool tensor `condition` is false.
void EmitCheck(ConversionContext& ctx, const Expr& condition, const char* error_kind,
               const std::string& format, const std::vector<Expr>& format_args = {}) {
  std::vector<Expr> args{condition, relax::MakeString(error_kind), relax::MakeString(format)};
  args.insert(args.end(), format_args.begin(), format_args.end());
  ctx.builder().EmitEffect(kCheckValuesFunction, args);
}

}  // namespace

bool IsEmpty(ConversionContext& ctx, const Expr& x) {
  // A symbolic extent may be 0 at run time too; the checks stay, and pass there: a min
  // reduction of nothing is the dtype's largest value, a max its smallest.
  for (const relax::Dim& extent : ctx.Dims(x)) {
    if (extent.IsStatic() && extent.Static() == 0) return true;
  }
  return false;
}

Expr CheckedIndices(ConversionContext& ctx, const torch::jit::Node& node, const Expr& indices,
                    const relax::Dim& extent, int64_t dim, NegativeIndices negatives) {
  const std::string dtype = ctx.Info(indices).dtype;
  TORCH_CHECK(dtype == "int64" || dtype == "int32", node.kind().toQualString(),
              ": indices must be int64 or int32, got ", dtype);
  if (IsEmpty(ctx, indices)) return indices;
  const bool wraps = negatives == NegativeIndices::kWrapped;
  const relax::Dim lowest = wraps ? ctx.Simplify(relax::Dim(0) - extent) : relax::Dim(0);
  Expr low = Extreme(ctx, "min", indices), high = Extreme(ctx, "max", indices);
  Expr end = ctx.SizeScalar(extent, dtype);
  Expr start = ctx.SizeScalar(lowest, dtype);
  Expr high_out = ctx.EmitExpr(relax::op::GreaterEqual(high, end));
  Expr low_in = ctx.EmitExpr(relax::op::GreaterEqual(low, start));
  Expr in_range = ctx.EmitExpr(
      relax::op::Binary("logical_and", low_in, ctx.EmitExpr(relax::op::Less(high, end))));
  // The index to name: the largest when it is too large, else the smallest.
  Expr offending = ctx.EmitExpr(relax::op::Where(high_out, high, low));
  const std::string message =
      c10::str(node.kind().toQualString(), ": index {} is out of range for dimension ", dim);
  if (extent.IsStatic()) {
    EmitCheck(ctx, in_range, "IndexError",
              c10::str(message, " with size ", extent.Static(), " (expected ", lowest.Static(),
                       " <= index < ", extent.Static(), ")"),
              {offending});
  } else {  // the size this call has
    EmitCheck(ctx, in_range, "IndexError", message + " with size {} (expected {} <= index < {})",
              {offending, end, start, end});
  }
  if (!wraps) return indices;
  Expr negative = ctx.EmitExpr(relax::op::Less(indices, ctx.Scalar(0, dtype)));
  return ctx.EmitExpr(
      relax::op::Where(negative, ctx.EmitExpr(relax::op::Add(indices, end)), indices));
}

void CheckNotNegative(ConversionContext& ctx, const torch::jit::Node& node, const Expr& x,
                      const std::string& what) {
  if (IsEmpty(ctx, x)) return;
  const std::string dtype = ctx.Info(x).dtype;
  Expr low = Extreme(ctx, "min", x);
  EmitCheck(ctx, ctx.EmitExpr(relax::op::GreaterEqual(low, ctx.Scalar(0, dtype))), "RuntimeError",
            c10::str(node.kind().toQualString(), ": got the negative value {}; ", what), {low});
}

void CheckIntegerDivision(ConversionContext& ctx, const torch::jit::Node& node,
                          const Expr& dividend, const Expr& divisor) {
  const std::string dtype = ctx.Info(divisor).dtype;
  const c10::ScalarType type = DtypeFromName(dtype);
  if (c10::isFloatingType(type) || IsEmpty(ctx, divisor) || IsEmpty(ctx, dividend)) return;
  const bool is_signed = c10::isSignedType(type);
  Expr zero = ctx.Scalar(0, dtype);
  Expr magnitude = is_signed ? ctx.EmitExpr(relax::op::Unary("abs", divisor)) : divisor;
  Expr smallest = Extreme(ctx, "min", magnitude);
  EmitCheck(
      ctx, ctx.EmitExpr(relax::op::NotEqual(smallest, zero)), "RuntimeError",
      c10::str(node.kind().toQualString(), ": ZeroDivisionError (an integer divisor is zero)"));
  if (!is_signed) return;
  // A check of its own, bound before the division: no fused kernel can divide first.
  const int64_t bits = static_cast<int64_t>(c10::elementSize(type)) * 8;
  const int64_t lowest =
      bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1));
  // `< lowest + 1`, an exact integer constant: TVM 0.27 folds `== INT32_MIN` to false.
  Expr above_lowest =
      TensorConstant(at::scalar_tensor(lowest + 1, at::TensorOptions().dtype(type)));
  Expr overflows = ctx.EmitExpr(
      relax::op::AsType(ctx.EmitExpr(relax::op::Binary(
                            "logical_and", ctx.EmitExpr(relax::op::Less(dividend, above_lowest)),
                            ctx.EmitExpr(relax::op::Equal(divisor, ctx.Scalar(-1, dtype))))),
                        "int32"));
  EmitCheck(ctx,
            ctx.EmitExpr(relax::op::Equal(Extreme(ctx, "max", overflows), ctx.Scalar(0, "int32"))),
            "RuntimeError",
            c10::str(node.kind().toQualString(), ": integer overflow (the lowest ", dtype,
                     " divided by -1)"));
}

}  // namespace tvmbridge::frontend
