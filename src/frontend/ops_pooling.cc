// Pooling: max (with the indices of the maxima when they are used), average, and their
// adaptive forms, over 1 to 3 spatial dims of an NC... tensor.
#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "frontend/emit_nn.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

// The input positions each output cell of one spatial axis reads, in order, only those inside
// the input (padding is not read). Every cell reads at least one.
using PoolingTaps = std::vector<IntList>;

// max_pool's windows: cell i reads i * stride - padding + k * dilation for k < kernel; the
// output extent is PyTorch's (pooling_output_shape), ceil_mode included.
PoolingTaps SlidingTaps(int64_t extent, int64_t kernel, int64_t stride, int64_t padding,
                        int64_t dilation, bool ceil_mode) {
  TORCH_CHECK(kernel > 0 && stride > 0 && dilation > 0 && padding >= 0,
              "max_pool: kernel_size, stride and dilation must be positive and padding not "
              "negative, got ",
              kernel, ", ", stride, ", ", dilation, " and ", padding);
  TORCH_CHECK(padding <= kernel / 2, "max_pool: padding ", padding,
              " should be at most half the kernel size ", kernel);
  const int64_t span = extent + 2 * padding - dilation * (kernel - 1) - 1;
  TORCH_CHECK(span >= 0, "max_pool: the input extent ", extent,
              " is too small for the kernel (output size would be below 1)");
  int64_t cells = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // The last window must start inside the input or its left padding.
  if (ceil_mode && (cells - 1) * stride >= extent + padding) --cells;
  PoolingTaps taps(static_cast<size_t>(cells));
  for (int64_t cell = 0; cell < cells; ++cell) {
    for (int64_t k = 0; k < kernel; ++k) {
      int64_t position = cell * stride - padding + k * dilation;
      if (position >= 0 && position < extent) taps[cell].push_back(position);
    }
  }
  return taps;
}

// adaptive_max_pool's windows: cell i of `cells` reads [floor(i * n / o), ceil((i + 1) * n / o)).
PoolingTaps AdaptiveTaps(int64_t extent, int64_t cells) {
  TORCH_CHECK(cells > 0, "adaptive_max_pool: output size ", cells, " must be positive");
  PoolingTaps taps(static_cast<size_t>(cells));
  for (int64_t cell = 0; cell < cells; ++cell) {
    for (int64_t p = cell * extent / cells; p < ((cell + 1) * extent + cells - 1) / cells; ++p) {
      taps[cell].push_back(p);
    }
  }
  return taps;
}

// One window's worth of taps above this, per axis, is refused: every tap is a gather and a
// select over the whole output (a global pooling of a 56 x 56 map would be 112 of them).
constexpr size_t kMaxTapsPerAxis = 64;

// The maxima of the windows, and where each was read: one int64 position per spatial axis
// already reduced, each of the values' shape.
struct Maxima {
  Expr values;
  std::vector<Expr> positions;
};

// An int64 column of one number per output cell, laid along `axis` of a rank-`rank` tensor so
// that it broadcasts against the values.
Expr CellColumn(const IntList& per_cell, int64_t axis, int64_t rank) {
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(axis)] = static_cast<int64_t>(per_cell.size());
  return TensorConstant(at::tensor(per_cell, at::kLong).reshape(shape));
}

Expr Gather(ConversionContext& ctx, const Expr& x, const IntList& positions, int64_t axis) {
  return ctx.EmitExpr(relax::op::Take(x, TensorConstant(at::tensor(positions, at::kLong)), axis));
}

// Reduces `axis` window by window, reading taps in order and keeping a tap when it is greater
// than the maximum so far or NaN, as PyTorch's CPU kernels do: the result is the last NaN of a
// window if it has one, else its first maximum. Reducing the innermost axis first and the
// others after it keeps that row-major order's answer, values and positions alike.
Maxima ReduceAxis(ConversionContext& ctx, const Maxima& in, int64_t axis, const PoolingTaps& taps) {
  const int64_t rank = ctx.Rank(in.values);
  size_t most = 0;
  for (const IntList& cell : taps) {
    TORCH_CHECK(!cell.empty(), "max_pool: a window lies wholly in the padding");
    most = std::max(most, cell.size());
  }
  TORCH_CHECK(most <= kMaxTapsPerAxis, "max_pool with indices: a window of ", most,
              " positions along one axis is not supported (at most ", kMaxTapsPerAxis, ")");
  auto tap_or_first = [&](size_t k) {
    IntList positions;
    for (const IntList& cell : taps) positions.push_back(k < cell.size() ? cell[k] : cell[0]);
    return positions;
  };
  IntList first = tap_or_first(0);
  Maxima out{Gather(ctx, in.values, first, axis), {}};
  for (const Expr& position : in.positions)
    out.positions.push_back(Gather(ctx, position, first, axis));
  // Of the values' full shape, like the positions before it: the next axis gathers from it.
  Expr here =
      ctx.EmitExpr(relax::op::BroadcastTo(CellColumn(first, axis, rank), ctx.Dims(out.values)));
  for (size_t k = 1; k < most; ++k) {
    IntList read = tap_or_first(k);
    Expr value = Gather(ctx, in.values, read, axis);
    Expr better = ctx.EmitExpr(
        relax::op::Binary("logical_or", ctx.EmitExpr(relax::op::Greater(value, out.values)),
                          ctx.EmitExpr(relax::op::Unary("isnan", value))));
    IntList has_tap;
    for (const IntList& cell : taps) has_tap.push_back(k < cell.size());
    if (std::find(has_tap.begin(), has_tap.end(), 0) != has_tap.end()) {
      Expr in_window = ctx.EmitExpr(relax::op::AsType(CellColumn(has_tap, axis, rank), "bool"));
      better = ctx.EmitExpr(relax::op::Binary("logical_and", better, in_window));
    }
    out.values = ctx.EmitExpr(relax::op::Where(better, value, out.values));
    here = ctx.EmitExpr(relax::op::Where(better, CellColumn(read, axis, rank), here));
    for (size_t i = 0; i < in.positions.size(); ++i) {
      out.positions[i] = ctx.EmitExpr(
          relax::op::Where(better, Gather(ctx, in.positions[i], read, axis), out.positions[i]));
    }
  }
  out.positions.push_back(here);
  return out;
}

// The maxima of `x`'s windows (`taps` per spatial axis, the last `taps.size()` axes) with the
// flat index of each within its spatial plane (d * H * W + h * W + w), as PyTorch's
// max_pool*_with_indices and adaptive_max_pool* give them.
Value MaximaWithIndices(ConversionContext& ctx, const Node& node, const Expr& x,
                        const std::vector<PoolingTaps>& taps) {
  TORCH_CHECK(ctx.IsFloating(x), node.kind().toQualString(),
              ": the indices of the maxima are computed for floating inputs only, got ",
              ctx.Info(x).dtype);
  const IntList shape = ctx.Shape(x);
  const auto spatial = static_cast<int64_t>(taps.size());
  const auto rank = static_cast<int64_t>(shape.size());
  Maxima maxima{x, {}};
  for (int64_t i = spatial - 1; i >= 0; --i) {
    maxima = ReduceAxis(ctx, maxima, rank - spatial + i, taps[static_cast<size_t>(i)]);
  }
  // positions[0] is the innermost axis's; each is of the values' shape already.
  Expr index = maxima.positions[0];
  int64_t stride = 1;
  for (int64_t i = 1; i < spatial; ++i) {
    stride *= shape[static_cast<size_t>(rank - i)];
    Expr scaled =
        ctx.EmitExpr(relax::op::Multiply(maxima.positions[static_cast<size_t>(i)],
                                         ctx.Scalar(static_cast<double>(stride), "int64")));
    index = ctx.EmitExpr(relax::op::Add(index, scaled));
  }
  return Value::List({Value::Tensor(maxima.values), Value::Tensor(index)});
}

struct MaxPoolArgs {
  size_t spatial = 0;
  IntList kernel, stride, padding, dilation;  // one per spatial dim
  bool ceil_mode = false;
};

// (input, kernel_size, stride, padding, dilation, ceil_mode), as max_pool*d and its
// _with_indices form take them; an empty stride is the kernel size.
MaxPoolArgs ReadMaxPoolArgs(ConversionContext& ctx, const Node& node, const Expr& x) {
  MaxPoolArgs args;
  args.spatial = static_cast<size_t>(ctx.Rank(x)) - 2;
  args.kernel = PerSpatialDim(ctx.Ints(node.input(1)), args.spatial, "kernel_size");
  IntList stride = ctx.Ints(node.input(2));
  args.stride = stride.empty() ? args.kernel : PerSpatialDim(stride, args.spatial, "stride");
  args.padding = PerSpatialDim(ctx.Ints(node.input(3)), args.spatial, "padding");
  args.dilation = PerSpatialDim(ctx.Ints(node.input(4)), args.spatial, "dilation");
  args.ceil_mode = ctx.Bool(node.input(5));
  return args;
}

// aten::max_pool{1,2,3}d(input, kernel_size, stride, padding, dilation, ceil_mode)
Value ConvertMaxPool(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  MaxPoolArgs args = ReadMaxPoolArgs(ctx, node, x);
  return ctx.Emit(relax::op::MaxPool(static_cast<int>(args.spatial), x, args.kernel, args.stride,
                                     SymmetricPadding(args.padding, args.spatial), args.dilation,
                                     args.ceil_mode));
}

// aten::max_pool{1,2,3}d_with_indices(...) -> (values, indices). Most models (torchvision's)
// read only the values: one pooling op. Indices, for max_unpool and the like, are computed
// window tap by window tap.
Value ConvertMaxPoolWithIndices(ConversionContext& ctx, const Node& node) {
  if (!node.output(1)->hasUses()) {
    return Value::List({ConvertMaxPool(ctx, node), Value::Constant(c10::IValue())});
  }
  Expr x = ctx.Tensor(node.input(0));
  MaxPoolArgs args = ReadMaxPoolArgs(ctx, node, x);
  const IntList shape = ctx.Shape(x);
  std::vector<PoolingTaps> taps;
  for (size_t i = 0; i < args.spatial; ++i) {
    taps.push_back(SlidingTaps(shape[2 + i], args.kernel[i], args.stride[i], args.padding[i],
                               args.dilation[i], args.ceil_mode));
  }
  return MaximaWithIndices(ctx, node, x, taps);
}

// aten::adaptive_max_pool{1,2,3}d(input, output_size) -> (values, indices). Output cell i of
// an axis of n inputs and o outputs covers [floor(i * n / o), ceil((i + 1) * n / o)): a plain
// max pool when o divides n; otherwise, since a maximum over a box is the maximum over each of
// its axes in turn, one reduction per output cell and axis. Used indices are computed window
// tap by window tap.
Value ConvertAdaptiveMaxPool(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  size_t spatial = shape.size() - 2;
  IntList output_size = PerSpatialDim(ctx.Ints(node.input(1)), spatial, "output_size");
  if (node.output(1)->hasUses()) {
    std::vector<PoolingTaps> taps;
    for (size_t i = 0; i < spatial; ++i) taps.push_back(AdaptiveTaps(shape[2 + i], output_size[i]));
    return MaximaWithIndices(ctx, node, x, taps);
  }
  bool even = true;
  for (size_t i = 0; i < spatial; ++i) {
    TORCH_CHECK(output_size[i] > 0, "adaptive_max_pool: output size ", output_size[i],
                " must be positive");
    even = even && shape[2 + i] % output_size[i] == 0;
  }
  if (even) {
    IntList kernel;
    for (size_t i = 0; i < spatial; ++i) kernel.push_back(shape[2 + i] / output_size[i]);
    IntList no_padding(2 * spatial, 0), no_dilation(spatial, 1);
    Value values = ctx.Emit(relax::op::MaxPool(static_cast<int>(spatial), x, kernel, kernel,
                                               no_padding, no_dilation, false));
    return Value::List({values, Value::Constant(c10::IValue())});
  }
  for (size_t i = 0; i < spatial; ++i) {
    auto axis = static_cast<int64_t>(2 + i);
    int64_t n = shape[axis], o = output_size[i];
    std::vector<Expr> cells;
    for (int64_t cell = 0; cell < o; ++cell) {
      int64_t begin = cell * n / o, end = ((cell + 1) * n + o - 1) / o;
      Expr window = ctx.EmitExpr(relax::op::StridedSlice(x, {axis}, {begin}, {end}, {1}));
      cells.push_back(ctx.EmitExpr(relax::op::Reduce("max", window, {axis}, true)));
    }
    x = ctx.EmitExpr(relax::op::Concat(cells, axis));
  }
  return Value::List({Value::Tensor(x), Value::Constant(c10::IValue())});
}

// aten::avg_pool{1,2,3}d(input, kernel_size, stride, padding, ceil_mode, count_include_pad
//                        [, divisor_override])
Value ConvertAvgPool(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  size_t spatial = static_cast<size_t>(ctx.Rank(x)) - 2;
  TORCH_CHECK(node.inputs().size() < 7 || ctx.IsNone(node.input(6)),
              "avg_pool with divisor_override is not supported yet");
  IntList kernel = PerSpatialDim(ctx.Ints(node.input(1)), spatial, "kernel_size");
  IntList stride = ctx.Ints(node.input(2));
  stride = stride.empty() ? kernel : PerSpatialDim(stride, spatial, "stride");
  IntList padding = SymmetricPadding(ctx.Ints(node.input(3)), spatial);
  return ctx.Emit(relax::op::AvgPool(static_cast<int>(spatial), x, kernel, stride, padding,
                                     ctx.Bool(node.input(4)), ctx.Bool(node.input(5))));
}

// aten::adaptive_avg_pool{1,2,3}d(input, output_size)
Value ConvertAdaptiveAvgPool(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  auto spatial = static_cast<size_t>(ctx.Rank(x) - 2);
  IntList output_size = PerSpatialDim(ctx.Ints(node.input(1)), spatial, "output_size");
  return ctx.Emit(relax::op::AdaptiveAvgPool(static_cast<int>(spatial), x, output_size));
}

}  // namespace

void RegisterPoolingOps(ConverterTable& table) {
  RegisterAll(table, {"aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d"}, ConvertMaxPool,
              kOnInputGrid);
  RegisterAll(table, {"aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d"}, ConvertAvgPool,
              kOnInputGrid);
  RegisterAll(
      table,
      {"aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d"},
      ConvertAdaptiveAvgPool, kOnInputGrid);
  RegisterAll(table,
              {"aten::max_pool1d_with_indices", "aten::max_pool2d_with_indices",
               "aten::max_pool3d_with_indices"},
              ConvertMaxPoolWithIndices);
  RegisterAll(
      table,
      {"aten::adaptive_max_pool1d", "aten::adaptive_max_pool2d", "aten::adaptive_max_pool3d"},
      ConvertAdaptiveMaxPool, kOnInputGrid);
}

}  // namespace tvmbridge::frontend
