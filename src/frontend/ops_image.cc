// Images: upsampling/interpolation (nearest, linear, bilinear, bicubic, trilinear), grid
// sampling, pixel (un)shuffle and torchvision's roi_align.
#include <cmath>

#include <c10/util/Exception.h>

#include "frontend/converter.h"

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
  TORCH_CHECK(ctx.Shape(x).size() == 4, "grid_sample is supported for 4-d input");
  static const char* const kModes[] = {"bilinear", "nearest", "bicubic"};
  static const char* const kPadding[] = {"zeros", "border", "reflection"};
  int64_t mode = ctx.Int(node.input(2));
  int64_t padding = ctx.Int(node.input(3));
  TORCH_CHECK(mode >= 0 && mode < 3 && padding >= 0 && padding < 3,
              "grid_sample: unknown interpolation or padding mode");
  // PyTorch's grid is [N, H, W, 2]; TVM's is [N, 2, H, W].
  Expr grid = ctx.EmitExpr(relax::op::PermuteDims(ctx.Tensor(node.input(1)), {0, 3, 1, 2}));
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
  return ctx.Emit(relax::op::RoiAlign(ctx.Tensor(node.input(0)), ctx.Tensor(node.input(1)),
                                      {ctx.Int(node.input(3)), ctx.Int(node.input(4))},
                                      ctx.Double(node.input(2)), ctx.Int(node.input(5)),
                                      ctx.Bool(node.input(6))));
}

}  // namespace

void RegisterImageOps(ConverterTable& table) {
  RegisterAll(table,
              {"aten::upsample_nearest1d", "aten::upsample_nearest2d", "aten::upsample_nearest3d"},
              ConvertUpsampleNearest);
  RegisterAll(
      table, {"aten::upsample_linear1d", "aten::upsample_bilinear2d", "aten::upsample_trilinear3d"},
      UpsampleWith("linear"));
  table["aten::upsample_bicubic2d"] = UpsampleWith("cubic");
  table["aten::__interpolate"] = ConvertInterpolate;
  table["aten::grid_sampler"] = ConvertGridSampler;
  table["aten::pixel_shuffle"] = ConvertPixelShuffle;
  table["aten::pixel_unshuffle"] = ConvertPixelUnshuffle;
  table["torchvision::roi_align"] = ConvertRoiAlign;
}

}  // namespace tvmbridge::frontend
