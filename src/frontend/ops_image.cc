// Images: upsampling/interpolation (nearest, linear, bilinear, bicubic, trilinear), grid
// sampling, pixel (un)shuffle and torchvision's roi_align and deform_conv2d.
#include <cmath>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>

#include "frontend/converter.h"
#include "frontend/emit_math.h"
#include "frontend/value_checks.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

// The output size of an upsample: given, or floor(input size * scale factor).
IntList OutputSize(ConversionContext& ctx, const IntList& spatial_shape,
                   const torch::jit::Value* size, const std::vector<double>& scales) {
  if (size != nullptr && !ctx.IsNone(size)) {
    IntList given = ctx.Ints(size);
    if (given.size() == 1) given.assign(spatial_shape.size(), given[0]);
    TORCH_CHECK(given.size() == spatial_shape.size(), "interpolate: ", given.size(), " sizes for ",
                spatial_shape.size(), " spatial dims");
    return given;
  }
  TORCH_CHECK(scales.size() == spatial_shape.size(),
              "interpolate: give an output size or one scale factor per spatial dim");
  IntList out;
  for (size_t i = 0; i < scales.size(); ++i) {
    out.push_back(
        static_cast<int64_t>(std::floor(static_cast<double>(spatial_shape[i]) * scales[i])));
  }
  return out;
}

// Scale factors from a list argument (vec overloads) or from trailing scales_* arguments.
std::vector<double> ScaleFactors(ConversionContext& ctx, const Node& node, size_t spatial) {
  std::vector<double> scales;
  if (const torch::jit::Value* factors = NamedInput(node, "scale_factors")) {
    if (!ctx.IsNone(factors)) scales = ctx.Constant(factors).toDoubleVector();
  } else {
    for (const char* name : {"scales_d", "scales_h", "scales_w", "scales"}) {
      const torch::jit::Value* scale = NamedInput(node, name);
      if (scale != nullptr && !ctx.IsNone(scale)) scales.push_back(ctx.Double(scale));
    }
  }
  if (scales.size() == 1) scales.assign(spatial, scales[0]);
  return scales;
}

// Resizes an N, C, spatial... tensor (1, 2 or 3 spatial dims) as PyTorch's interpolate does.
// mode: "nearest", "linear" (linear, bilinear, trilinear) or "cubic".
Expr Interpolate(ConversionContext& ctx, Expr x, const IntList& size, const std::string& mode,
                 bool align_corners) {
  IntList shape = ctx.Shape(x);
  size_t spatial = shape.size() - 2;
  TORCH_CHECK(spatial >= 1 && spatial <= 3, "interpolate expects 3-d, 4-d or 5-d input");
  TORCH_CHECK(mode != "cubic" || spatial == 2, "bicubic interpolation is for 4-d input");
  IntList target = size;
  if (spatial == 1) {  // as an image of height 1
    x = ctx.EmitExpr(relax::op::ExpandDims(x, {2}));
    target.insert(target.begin(), 1);
  }
  // PyTorch's nearest takes floor(out_index * in / out): TVM's asymmetric mode, rounded down.
  std::string method = mode == "nearest" ? "nearest_neighbor" : mode;
  std::string coordinates = mode == "nearest" ? "asymmetric"
                            : align_corners   ? "align_corners"
                                              : "half_pixel";
  Expr resized = ctx.EmitExpr(relax::op::Resize(x, target, method, coordinates,
                                                mode == "nearest" ? "floor" : "round", -0.75));
  if (spatial == 1) resized = ctx.EmitExpr(relax::op::Squeeze(resized, {2}));
  return resized;
}

// upsample_nearest{1,2,3}d(input, output_size?, scales...?) and their .vec forms
// (input, output_size?, scale_factors?).
Value ConvertUpsampleNearest(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  IntList spatial(shape.begin() + 2, shape.end());
  IntList size = OutputSize(ctx, spatial, NamedInput(node, "output_size"),
                            ScaleFactors(ctx, node, spatial.size()));
  return Value::Tensor(Interpolate(ctx, x, size, "nearest", false));
}

// upsample_{linear1d,bilinear2d,trilinear3d,bicubic2d}(input, output_size?, align_corners,
// scales...?) and their .vec forms.
Converter UpsampleWith(std::string mode) {
  return [mode](ConversionContext& ctx, const Node& node) {
    Expr x = ctx.Tensor(node.input(0));
    IntList shape = ctx.Shape(x);
    IntList spatial(shape.begin() + 2, shape.end());
    IntList size = OutputSize(ctx, spatial, NamedInput(node, "output_size"),
                              ScaleFactors(ctx, node, spatial.size()));
    return Value::Tensor(
        Interpolate(ctx, x, size, mode, ctx.Bool(NamedInput(node, "align_corners"))));
  };
}

// aten::__interpolate(input, size?, scale_factor?, mode, align_corners?, ...): what scripted
// code calling F.interpolate records in older TorchScript.
Value ConvertInterpolate(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  IntList spatial(shape.begin() + 2, shape.end());
  std::vector<double> scales;
  const torch::jit::Value* factor = NamedInput(node, "scale_factor");
  if (factor != nullptr && !ctx.IsNone(factor)) {
    c10::IValue value = ctx.Constant(factor);
    scales = value.isDouble() ? std::vector<double>(spatial.size(), value.toDouble())
                              : value.toDoubleVector();
  }
  IntList size = OutputSize(ctx, spatial, NamedInput(node, "size"), scales);
  std::string mode = ctx.String(NamedInput(node, "mode"));
  const torch::jit::Value* align = NamedInput(node, "align_corners");
  bool align_corners = align != nullptr && !ctx.IsNone(align) && ctx.Bool(align);
  std::string method = mode == "nearest"                                               ? "nearest"
                       : mode == "bicubic"                                             ? "cubic"
                       : mode == "linear" || mode == "bilinear" || mode == "trilinear" ? "linear"
                                                                                       : "";
  TORCH_CHECK(!method.empty(), "interpolate: mode '", mode, "' is not supported");
  return Value::Tensor(Interpolate(ctx, x, size, method, align_corners));
}

// aten::grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners) with
// PyTorch's enums: modes bilinear/nearest/bicubic, padding zeros/border/reflection.
Value ConvertGridSampler(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  const size_t rank = static_cast<size_t>(ctx.Rank(x));
  TORCH_CHECK(rank == 4 || rank == 5, "grid_sample takes 4-d or 5-d input, got ", rank, "-d");
  static const char* const kModes[] = {"bilinear", "nearest", "bicubic"};
  static const char* const kPadding[] = {"zeros", "border", "reflection"};
  int64_t mode = ctx.Int(node.input(2));
  int64_t padding = ctx.Int(node.input(3));
  TORCH_CHECK(mode >= 0 && mode < 3 && padding >= 0 && padding < 3,
              "grid_sample: unknown interpolation or padding mode");
  // PyTorch's grid is [N, H, W, 2] ([N, D, H, W, 3]); TVM's has the coordinates second.
  Expr grid = ctx.EmitExpr(
      relax::op::PermuteDims(ctx.Tensor(node.input(1)), rank == 4 ? relax::IntList{0, 3, 1, 2}
                                                                  : relax::IntList{0, 4, 1, 2, 3}));
  return ctx.Emit(
      relax::op::GridSample(x, grid, kModes[mode], kPadding[padding], ctx.Bool(node.input(4))));
}

// aten::pixel_shuffle(self, upscale_factor): [N, C*r*r, H, W] -> [N, C, H*r, W*r], as
// reshape and transpose (TVM 0.27's legalisation of relax.nn.pixel_shuffle calls a TOPI
// function that no longer exists).
Value ConvertPixelShuffle(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  TORCH_CHECK(shape.size() == 4, "pixel_shuffle expects 4-d input");
  int64_t r = ctx.Int(node.input(1));
  int64_t n = shape[0], c = shape[1] / (r * r), h = shape[2], w = shape[3];
  Expr split = ctx.EmitExpr(relax::op::Reshape(x, {n, c, r, r, h, w}));
  Expr moved = ctx.EmitExpr(relax::op::PermuteDims(split, {0, 1, 4, 2, 5, 3}));
  return ctx.Emit(relax::op::Reshape(moved, {n, c, h * r, w * r}));
}

// aten::pixel_unshuffle(self, downscale_factor): [N, C, H*r, W*r] -> [N, C*r*r, H, W].
Value ConvertPixelUnshuffle(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  IntList shape = ctx.Shape(x);
  TORCH_CHECK(shape.size() == 4, "pixel_unshuffle expects 4-d input");
  int64_t r = ctx.Int(node.input(1));
  int64_t n = shape[0], c = shape[1], h = shape[2] / r, w = shape[3] / r;
  Expr split = ctx.EmitExpr(relax::op::Reshape(x, {n, c, h, r, w, r}));
  Expr moved = ctx.EmitExpr(relax::op::PermuteDims(split, {0, 1, 3, 5, 2, 4}));
  return ctx.Emit(relax::op::Reshape(moved, {n, c * r * r, h, w}));
}

// torchvision::roi_align(input, rois [K, 5], spatial_scale, pooled_height, pooled_width,
// sampling_ratio, aligned)
Value ConvertRoiAlign(ConversionContext& ctx, const Node& node) {
  Expr input = ctx.Tensor(node.input(0));
  Expr rois = ctx.Tensor(node.input(1));
  IntList rois_shape = ctx.Shape(rois);
  TORCH_CHECK(rois_shape.size() == 2 && rois_shape[1] == 5,
              "roi_align: rois must be [K, 5] (batch index, x1, y1, x2, y2), got ",
              c10::IntArrayRef(rois_shape));
  // Column 0 picks the image: TVM reads that image whatever the number says.
  Expr batch_index = ctx.EmitExpr(
      relax::op::AsType(ctx.EmitExpr(relax::op::StridedSlice(rois, {1}, {0}, {1}, {1})), "int64"));
  CheckedIndices(ctx, node, batch_index, ctx.Shape(input).at(0), 0, NegativeIndices::kRejected);
  return ctx.Emit(relax::op::RoiAlign(input, rois, {ctx.Int(node.input(3)), ctx.Int(node.input(4))},
                                      ctx.Double(node.input(2)), ctx.Int(node.input(5)),
                                      ctx.Bool(node.input(6))));
}

// torchvision::deform_conv2d(input, weight, offset, mask, bias, stride_h, stride_w, pad_h,
// pad_w, dilation_h, dilation_w, groups, offset_groups, use_mask): every kernel tap of every
// output position samples the input bilinearly at its place plus its learned offset (zero
// outside the image; corners outside count as zero, as torchvision's kernel does), times the
// mask when use_mask; then the samples ([N, C * taps, positions]) meet the weight in a matmul
// per weight group. Written out of gathers, there being no Relax operator for it.
Value ConvertDeformConv2d(ConversionContext& ctx, const Node& node) {
  Expr input = ctx.Tensor(node.input(0));
  Expr weight = ctx.Tensor(node.input(1));
  IntList in_shape = ctx.Shape(input), w_shape = ctx.Shape(weight);
  TORCH_CHECK(in_shape.size() == 4 && w_shape.size() == 4,
              "deform_conv2d expects 4-d input and weight");
  int64_t n = in_shape[0], channels = in_shape[1], height = in_shape[2], width = in_shape[3];
  int64_t out_channels = w_shape[0], kernel_h = w_shape[2], kernel_w = w_shape[3];
  int64_t taps = kernel_h * kernel_w;
  int64_t stride_h = ctx.Int(node.input(5)), stride_w = ctx.Int(node.input(6));
  int64_t pad_h = ctx.Int(node.input(7)), pad_w = ctx.Int(node.input(8));
  int64_t dilation_h = ctx.Int(node.input(9)), dilation_w = ctx.Int(node.input(10));
  int64_t groups = ctx.Int(node.input(11)), offset_groups = ctx.Int(node.input(12));
  bool use_mask = ctx.Bool(node.input(13));
  int64_t out_h = (height + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
  int64_t out_w = (width + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
  TORCH_CHECK(channels % offset_groups == 0 && channels % groups == 0 && out_channels % groups == 0,
              "deform_conv2d: channels not divisible by the groups");
  int64_t group_channels = channels / offset_groups;
  std::string dtype = ctx.Info(input).dtype;
  EmitMath m{ctx, dtype};

  // Sampling places [N, G, taps, out_h, out_w]: the kernel grid plus the offsets (dy, dx).
  Expr offsets = ctx.EmitExpr(
      relax::op::Reshape(ctx.Tensor(node.input(2)), {n, offset_groups, taps, 2, out_h, out_w}));
  Expr split = ctx.EmitExpr(relax::op::Split(offsets, {1}, 3));
  auto offset = [&](int i) {
    return ctx.EmitExpr(relax::op::Squeeze(ctx.EmitExpr(relax::TupleGetItem(split, i)), {3}));
  };
  at::Tensor grid_y = at::empty({taps, out_h, 1}, at::kFloat);
  at::Tensor grid_x = at::empty({taps, 1, out_w}, at::kFloat);
  for (int64_t i = 0; i < kernel_h; ++i) {
    for (int64_t j = 0; j < kernel_w; ++j) {
      for (int64_t y = 0; y < out_h; ++y) {
        grid_y[i * kernel_w + j][y][0] = y * stride_h - pad_h + i * dilation_h;
      }
      for (int64_t x = 0; x < out_w; ++x) {
        grid_x[i * kernel_w + j][0][x] = x * stride_w - pad_w + j * dilation_w;
      }
    }
  }
  auto grid = [&](const at::Tensor& values) {
    Expr constant = TensorConstant(values);
    return dtype == "float32" ? constant : ctx.EmitExpr(relax::op::AsType(constant, dtype));
  };
  Expr ys = m.Add(offset(0), grid(grid_y));
  Expr xs = m.Add(offset(1), grid(grid_x));
  Expr y0 = m.Unary("floor", ys), x0 = m.Unary("floor", xs);
  Expr ly = m.Sub(ys, y0), lx = m.Sub(xs, x0);
  Expr hy = m.Sub(m.Number(1), ly), hx = m.Sub(m.Number(1), lx);

  // input as [N, G, C/G, H * W]; each corner gathers [N, G, C/G, taps * out_h * out_w].
  int64_t places = taps * out_h * out_w;
  Expr flat_input =
      ctx.EmitExpr(relax::op::Reshape(input, {n, offset_groups, group_channels, height * width}));
  IntList gathered_shape{n, offset_groups, group_channels, places};
  auto corner = [&](const Expr& cy, const Expr& cx, const Expr& weight_y, const Expr& weight_x) {
    auto both = [&](const Expr& a, const Expr& b) {
      return ctx.EmitExpr(relax::op::Binary("logical_and", a, b));
    };
    auto within = [&](const Expr& v, int64_t extent) {
      return both(ctx.EmitExpr(relax::op::GreaterEqual(v, m.Number(0))),
                  ctx.EmitExpr(relax::op::LessEqual(v, m.Number(static_cast<double>(extent - 1)))));
    };
    Expr inside = both(within(cy, height), within(cx, width));
    // Clamped as integers: a NaN or infinite offset converts to some integer, which the clamp
    // then keeps inside the image (its sample is weighted 0 anyway, being outside).
    auto clamped = [&](const Expr& v, int64_t extent) {
      return ctx.EmitExpr(relax::op::Clip(ctx.EmitExpr(relax::op::AsType(v, "int64")), 0,
                                          static_cast<double>(extent - 1)));
    };
    Expr index = ctx.EmitExpr(
        relax::op::Add(ctx.EmitExpr(relax::op::Multiply(
                           clamped(cy, height), ctx.Scalar(static_cast<double>(width), "int64"))),
                       clamped(cx, width)));
    index = ctx.EmitExpr(relax::op::Reshape(index, {n, offset_groups, 1, places}));
    Expr values = ctx.EmitExpr(relax::op::GatherElements(
        flat_input, ctx.EmitExpr(relax::op::BroadcastTo(index, relax::ToDims(gathered_shape))), 3));
    Expr factor = m.Where(inside, m.Mul(weight_y, weight_x), m.Number(0));
    return m.Mul(values, ctx.EmitExpr(relax::op::Reshape(factor, {n, offset_groups, 1, places})));
  };
  Expr y1 = m.Add(y0, m.Number(1)), x1 = m.Add(x0, m.Number(1));
  Expr samples = m.Add(m.Add(corner(y0, x0, hy, hx), corner(y0, x1, hy, lx)),
                       m.Add(corner(y1, x0, ly, hx), corner(y1, x1, ly, lx)));
  if (use_mask) {
    Expr mask =
        ctx.EmitExpr(relax::op::Reshape(ctx.Tensor(node.input(3)), {n, offset_groups, 1, places}));
    samples = m.Mul(samples, mask);
  }
  // [N, C, taps, positions] -> per weight group [N, groups, C/groups * taps, positions].
  int64_t weight_channels = channels / groups;
  Expr columns =
      ctx.EmitExpr(relax::op::Reshape(samples, {n, groups, weight_channels * taps, out_h * out_w}));
  Expr grouped_weight = ctx.EmitExpr(
      relax::op::Reshape(weight, {groups, out_channels / groups, weight_channels * taps}));
  Expr out = ctx.EmitExpr(relax::op::Matmul(grouped_weight, columns));
  out = ctx.EmitExpr(relax::op::Reshape(out, {n, out_channels, out_h, out_w}));
  Expr bias = ctx.EmitExpr(relax::op::Reshape(ctx.Tensor(node.input(4)), {1, out_channels, 1, 1}));
  return ctx.Emit(relax::op::Add(out, bias));
}

}  // namespace

void RegisterImageOps(ConverterTable& table) {
  RegisterAll(table,
              {"aten::upsample_nearest1d", "aten::upsample_nearest2d", "aten::upsample_nearest3d"},
              ConvertUpsampleNearest, kOnInputGrid);
  RegisterAll(
      table, {"aten::upsample_linear1d", "aten::upsample_bilinear2d", "aten::upsample_trilinear3d"},
      UpsampleWith("linear"), kOnInputGrid);
  table.Register("aten::upsample_bicubic2d", UpsampleWith("cubic"));
  table.Register("aten::__interpolate", ConvertInterpolate);
  table.Register("aten::grid_sampler", ConvertGridSampler);
  table.Register("aten::pixel_shuffle", ConvertPixelShuffle);
  table.Register("aten::pixel_unshuffle", ConvertPixelUnshuffle);
  table.Register("torchvision::roi_align", ConvertRoiAlign);
  table.Register("torchvision::deform_conv2d", ConvertDeformConv2d);
}

}  // namespace tvmbridge::frontend
