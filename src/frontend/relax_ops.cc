// One function per Relax op the converters emit, each a call of TVM's registry function for
// it ("relax.op.nn.conv2d"); the names are listed here for the test that checks them against
// the wheel (test_tvm_globals.py).
#include <string>
#include <vector>

#include <tvm/ffi/string.h>

#include "frontend/relax_builder.h"
#include "frontend/relax_ffi.h"

namespace tvmbridge::relax {
namespace {

using tvm::ffi::Any;
using tvm::ffi::Array;
using tvm::ffi::String;

const char* const kOpGlobals[] = {
    "relax.op.add",
    "relax.op.nonzero",
    "relax.op.unique",
    "relax.op.subtract",
    "relax.op.multiply",
    "relax.op.divide",
    "relax.op.maximum",
    "relax.op.minimum",
    "relax.op.greater",
    "relax.op.greater_equal",
    "relax.op.less",
    "relax.op.less_equal",
    "relax.op.equal",
    "relax.op.not_equal",
    "relax.op.clip",
    "relax.op.nn.softmax",
    "relax.op.nn.log_softmax",
    "relax.op.nn.gelu",
    "relax.op.nn.gelu_tanh",
    "relax.op.nn.leakyrelu",
    "relax.op.nn.conv1d",
    "relax.op.nn.conv2d",
    "relax.op.nn.conv3d",
    "relax.op.nn.conv1d_transpose",
    "relax.op.nn.conv2d_transpose",
    "relax.op.nn.conv3d_transpose",
    "relax.op.nn.batch_norm",
    "relax.op.nn.layer_norm",
    "relax.op.nn.max_pool1d",
    "relax.op.nn.max_pool2d",
    "relax.op.nn.max_pool3d",
    "relax.op.nn.avg_pool1d",
    "relax.op.nn.avg_pool2d",
    "relax.op.nn.avg_pool3d",
    "relax.op.nn.adaptive_avg_pool1d",
    "relax.op.nn.adaptive_avg_pool2d",
    "relax.op.nn.adaptive_avg_pool3d",
    "relax.op.matmul",
    "relax.op.reshape",
    "relax.op.zeros",
    "relax.op.permute_dims",
    "relax.op.concat",
    "relax.op.mean",
    "relax.op.sum",
    "relax.op.astype",
    "relax.op.cumsum",
    "relax.op.sort",
    "relax.op.argsort",
    "relax.op.flip",
    "relax.op.tile",
    "relax.op.repeat",
    "relax.op.tril",
    "relax.op.triu",
    "relax.op.nn.pad",
    "relax.op.nn.group_norm",
    "relax.op.nn.instance_norm",
    "relax.op.image.resize2d",
    "relax.op.image.resize3d",
    "relax.op.image.grid_sample",
    "relax.op.scatter_elements",
    "relax.op.index_put",
    "relax.op.one_hot",
    "relax.op.bucketize",
    "relax.op.vision.roi_align",
    "relax.op.vision.non_max_suppression",
    "relax.op.tensor_to_shape",
    "ir.IntImm",
    "ir.PrimType",
    "relax.op.arange",
    "prim._OpAdd",
    "prim._OpSub",
    "prim._OpMul",
    "prim._OpFloorDiv",
    "prim._OpMin",
    "prim._OpMax",
    "sym.Analyzer",
    "sym.AnalyzerCanProveEqual",
    "sym.AnalyzerCanProve",
    "prim._OpLE",
    "sym.AnalyzerBind",
    "sym.AnalyzerSimplify",
    "ir.Range",
    "ffi.ReprPrint",
};
// Binary ops reached through op::Binary, named by their suffix after "relax.op.".
const char* const kBinaryOps[] = {
    "logical_and",  "logical_or", "logical_xor", "bitwise_and", "bitwise_or",  "bitwise_xor",
    "floor_divide", "floor_mod",  "mod",         "left_shift",  "right_shift",
};
// Reductions reached through op::Reduce (x, axes, keepdims).
const char* const kReductionOps[] = {"sum", "mean", "max", "min", "prod", "variance", "std"};
// Unary ops reached through op::Unary, named by their suffix after "relax.op.".
const char* const kUnaryOps[] = {
    "logical_not", "bitwise_not", "nn.relu", "nn.silu",  "sigmoid",  "tanh",  "exp",
    "log",         "sqrt",        "rsqrt",   "abs",      "negative", "erf",   "sin",
    "cos",         "floor",       "ceil",    "round",    "sign",     "tan",   "asin",
    "acos",        "atan",        "trunc",   "isfinite", "isinf",    "isnan",
};

const char* DataLayout(int spatial_dims) {
  static const char* const kLayouts[] = {"NCW", "NCHW", "NCDHW"};
  return kLayouts[spatial_dims - 1];
}
const char* KernelLayout(int spatial_dims, bool transposed) {
  static const char* const kLayouts[] = {"OIW", "OIHW", "OIDHW"};
  static const char* const kTransposedLayouts[] = {"IOW", "IOHW", "IODHW"};
  return (transposed ? kTransposedLayouts : kLayouts)[spatial_dims - 1];
}
std::string SpatialOp(const char* base, int spatial_dims) {
  return std::string("relax.op.nn.") + base + std::to_string(spatial_dims) + "d";
}

}  // namespace

const std::vector<std::string>& OpGlobalNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all(std::begin(kOpGlobals), std::end(kOpGlobals));
    for (const char* unary : kUnaryOps) all.push_back(std::string("relax.op.") + unary);
    for (const char* binary : kBinaryOps) all.push_back(std::string("relax.op.") + binary);
    for (const char* reduction : kReductionOps) all.push_back(std::string("relax.op.") + reduction);
    return all;
  }();
  return names;
}

namespace op {

Expr Add(const Expr& a, const Expr& b) { return Call("relax.op.add", a, b); }
Expr Subtract(const Expr& a, const Expr& b) { return Call("relax.op.subtract", a, b); }
Expr Multiply(const Expr& a, const Expr& b) { return Call("relax.op.multiply", a, b); }
Expr Divide(const Expr& a, const Expr& b) { return Call("relax.op.divide", a, b); }
Expr Maximum(const Expr& a, const Expr& b) { return Call("relax.op.maximum", a, b); }
Expr Minimum(const Expr& a, const Expr& b) { return Call("relax.op.minimum", a, b); }
Expr Binary(const std::string& relax_name, const Expr& a, const Expr& b) {
  return Call("relax.op." + relax_name, a, b);
}
Expr Greater(const Expr& a, const Expr& b) { return Call("relax.op.greater", a, b); }
Expr GreaterEqual(const Expr& a, const Expr& b) { return Call("relax.op.greater_equal", a, b); }
Expr Less(const Expr& a, const Expr& b) { return Call("relax.op.less", a, b); }
Expr LessEqual(const Expr& a, const Expr& b) { return Call("relax.op.less_equal", a, b); }
Expr Equal(const Expr& a, const Expr& b) { return Call("relax.op.equal", a, b); }
// TVM lowers not_equal to LLVM's ordered comparison, false for NaN (and simplifies a negated
// equality back to it); PyTorch's != is IEEE's, true for NaN.
Expr NotEqual(const Expr& a, const Expr& b) {
  Expr different = Call("relax.op.not_equal", a, b);
  for (const Expr* side : {&a, &b}) {
    const std::string dtype = InfoOf(*side).dtype;
    if (dtype.rfind("float", 0) == 0 || dtype == "bfloat16") {
      different = Call("relax.op.logical_or", different, Unary("isnan", *side));
    }
  }
  return different;
}

Expr Unary(const std::string& relax_name, const Expr& x) {
  // TVM lowers no finiteness test of bfloat16; its float32 image has the same class.
  if ((relax_name == "isnan" || relax_name == "isinf" || relax_name == "isfinite") &&
      InfoOf(x).dtype == "bfloat16") {
    return Call("relax.op." + relax_name, AsType(x, "float32"));
  }
  return Call("relax.op." + relax_name, x);
}
Expr Clip(const Expr& x, double low, double high) {
  return Call("relax.op.clip", x, FloatImm(low), FloatImm(high));
}
Expr Softmax(const Expr& x, int axis) { return Call("relax.op.nn.softmax", x, axis); }
Expr LogSoftmax(const Expr& x, int axis) { return Call("relax.op.nn.log_softmax", x, axis); }
Expr Gelu(const Expr& x, bool tanh_approximation) {
  return Call(tanh_approximation ? "relax.op.nn.gelu_tanh" : "relax.op.nn.gelu", x);
}
Expr LeakyRelu(const Expr& x, double alpha) { return Call("relax.op.nn.leakyrelu", x, alpha); }

Expr Conv(int spatial_dims, const Expr& data, const Expr& weight, const IntList& strides,
          const IntList& padding, const IntList& dilation, int64_t groups) {
  return Call(SpatialOp("conv", spatial_dims), data, weight, ToArray(strides), ToArray(padding),
              ToArray(dilation), groups, String(DataLayout(spatial_dims)),
              String(KernelLayout(spatial_dims, false)), Any(), Any());
}

Expr ConvTranspose(int spatial_dims, const Expr& data, const Expr& weight, const IntList& strides,
                   const IntList& padding, const IntList& output_padding, const IntList& dilation,
                   int64_t groups) {
  return Call(SpatialOp("conv", spatial_dims) + "_transpose", data, weight, ToArray(strides),
              ToArray(padding), ToArray(output_padding), ToArray(dilation), groups,
              String(DataLayout(spatial_dims)), String(KernelLayout(spatial_dims, true)), Any(),
              Any());
}

Expr BatchNorm(const Expr& data, const Expr& gamma, const Expr& beta, const Expr& mean,
               const Expr& var, int axis, double epsilon) {
  // center/scale on, momentum unused in inference, training off.
  return Call("relax.op.nn.batch_norm", data, gamma, beta, mean, var, axis, epsilon, true, true,
              0.1, false);
}

Expr LayerNorm(const Expr& data, const Expr& gamma, const Expr& beta, const IntList& axes,
               double epsilon) {
  return Call("relax.op.nn.layer_norm", data, gamma, beta, ToArray(axes), epsilon, true, true);
}

Expr MaxPool(int spatial_dims, const Expr& data, const IntList& kernel, const IntList& strides,
             const IntList& padding, const IntList& dilation, bool ceil_mode) {
  return Call(SpatialOp("max_pool", spatial_dims), data, ToArray(kernel), ToArray(strides),
              ToArray(padding), ToArray(dilation), ceil_mode, false,
              String(DataLayout(spatial_dims)), Any());
}

Expr AvgPool(int spatial_dims, const Expr& data, const IntList& kernel, const IntList& strides,
             const IntList& padding, bool ceil_mode, bool count_include_pad) {
  IntList no_dilation(kernel.size(), 1);
  return Call(SpatialOp("avg_pool", spatial_dims), data, ToArray(kernel), ToArray(strides),
              ToArray(padding), ToArray(no_dilation), ceil_mode, count_include_pad,
              String(DataLayout(spatial_dims)), Any());
}

Expr AdaptiveAvgPool(int spatial_dims, const Expr& data, const IntList& output_size) {
  return Call(SpatialOp("adaptive_avg_pool", spatial_dims), data, ToArray(output_size),
              String(DataLayout(spatial_dims)), Any());
}

Expr Matmul(const Expr& a, const Expr& b) { return Call("relax.op.matmul", a, b, Any()); }
Expr Reshape(const Expr& x, const Dims& shape) {
  // TVM's reshape reads an extent of 0 in the new shape as "the input's extent there", so
  // [3, 0] flattened would become [3]. A result without elements holds nothing of x: it is
  // made new.
  const bool empty = std::any_of(shape.begin(), shape.end(), [](const Dim& extent) {
    return extent.IsStatic() && extent.Static() == 0;
  });
  const std::string dtype = InfoOf(x).dtype;
  if (empty && !dtype.empty()) {
    return Call("relax.op.zeros", Global("relax.ShapeExpr")(ToArray(shape), Any()), String(dtype));
  }
  return Call("relax.op.reshape", x, ToArray(shape));
}
Expr PermuteDims(const Expr& x, const IntList& axes) {
  return Call("relax.op.permute_dims", x, ToArray(axes));
}
Expr Concat(const std::vector<Expr>& tensors, int64_t axis) {
  return Call("relax.op.concat", MakeTuple(tensors), axis);
}
Expr Mean(const Expr& x, const IntList& axes, bool keepdims) {
  return Call("relax.op.mean", x, ToArray(axes), keepdims);
}
Expr Sum(const Expr& x, const IntList& axes, bool keepdims) {
  return Call("relax.op.sum", x, ToArray(axes), keepdims);
}
Expr Reduce(const std::string& relax_name, const Expr& x, const IntList& axes, bool keepdims) {
  return Call("relax.op." + relax_name, x, ToArray(axes), keepdims);
}
Expr AsType(const Expr& x, const std::string& dtype) {
  return Call("relax.op.astype", x, String(dtype));
}

Expr Quantize(const Expr& x, const Expr& scale, const Expr& zero_point, int64_t axis,
              const std::string& dtype) {
  return Call("relax.op.quantize", x, scale, zero_point, axis, String(dtype));
}
Expr Dequantize(const Expr& q, const Expr& scale, const Expr& zero_point, int64_t axis) {
  return Call("relax.op.dequantize", q, scale, zero_point, axis, String("float32"));
}

Expr Power(const Expr& a, const Expr& b) { return Call("relax.op.power", a, b); }
Expr Where(const Expr& condition, const Expr& a, const Expr& b) {
  return Call("relax.op.where", condition, a, b);
}
Expr ExpandDims(const Expr& x, const IntList& axes) {
  return Call("relax.op.expand_dims", x, ToArray(axes));
}
Expr Squeeze(const Expr& x, const IntList& axes) {
  return Call("relax.op.squeeze", x, ToArray(axes));
}
Expr BroadcastTo(const Expr& x, const Dims& shape) {
  return Call("relax.op.broadcast_to", x, Global("relax.ShapeExpr")(ToArray(shape), Any()));
}
Expr Split(const Expr& x, const IntList& indices, int64_t axis) {
  return Call("relax.op.split", x, ToArray(indices), axis);
}
Expr StridedSlice(const Expr& x, const IntList& axes, const Dims& begin, const Dims& end,
                  const IntList& strides, SliceBounds bounds) {
  auto tuple = [](const Dims& dims) { return Global("relax.Tuple")(ToArray(dims), Any()); };
  return Call("relax.op.strided_slice", x, IntTuple(axes), tuple(begin), tuple(end),
              IntTuple(strides), bounds == SliceBounds::kInRange);
}
Expr Take(const Expr& x, const Expr& indices, int64_t axis) {
  return Call("relax.op.take", x, indices, axis, String("fast"));
}
Expr GatherElements(const Expr& x, const Expr& indices, int64_t axis) {
  return Call("relax.op.gather_elements", x, indices, axis);
}
Expr Full(const Dims& shape, const Expr& value, const std::string& dtype) {
  // Not relax.op.full: TVM 0.27 legalizes a NaN or infinite fill value by testing
  // `"float" in dtype` on a DataType object, which raises TypeError.
  return BroadcastTo(AsType(value, dtype), shape);
}
Expr Arange(const Dim& start, const Dim& end, const Dim& step, const std::string& dtype) {
  return Call("relax.op.arange", start.ToExpr(), end.ToExpr(), step.ToExpr(), DLDataTypeOf(dtype));
}
Expr ArgMax(const Expr& x, std::optional<int64_t> axis, bool keepdims) {
  return Call("relax.op.argmax", x, axis ? Any(*axis) : Any(), keepdims);
}
Expr ArgMin(const Expr& x, std::optional<int64_t> axis, bool keepdims) {
  return Call("relax.op.argmin", x, axis ? Any(*axis) : Any(), keepdims);
}
Expr TopK(const Expr& x, int64_t k, int64_t axis, bool largest) {
  return Call("relax.op.topk", x, k, axis, String("both"), largest, String("int64"));
}
Expr Einsum(const std::vector<Expr>& operands, const std::string& equation) {
  return Call("relax.op.einsum", MakeTuple(operands), String(equation));
}

Expr CumSum(const Expr& x, int64_t axis, const std::string& dtype) {
  return Call("relax.op.cumsum", x, axis, DLDataTypeOf(dtype), false);
}
Expr Sort(const Expr& x, int64_t axis, bool descending) {
  return Call("relax.op.sort", x, axis, descending);
}
Expr ArgSort(const Expr& x, int64_t axis, bool descending) {
  return Call("relax.op.argsort", x, axis, descending, DLDataTypeOf("int64"));
}
Expr Nonzero(const Expr& condition) { return Call("relax.op.nonzero", condition); }
Expr Unique(const Expr& x, bool return_inverse, bool return_counts) {
  return Call("relax.op.unique", x, MakeBool(true), MakeBool(false), MakeBool(return_inverse),
              MakeBool(return_counts), Any());
}
Expr Flip(const Expr& x, int64_t axis) { return Call("relax.op.flip", x, axis); }
Expr Tile(const Expr& x, const IntList& repeats) {
  return Call("relax.op.tile", x, ToArray(repeats));
}
Expr Repeat(const Expr& x, int64_t repeats, int64_t axis) {
  return Call("relax.op.repeat", x, repeats, axis);
}
Expr Triangle(bool upper, const Expr& x, int64_t diagonal) {
  return Call(upper ? "relax.op.triu" : "relax.op.tril", x,
              Global("ir.IntImm")(String("int64"), diagonal, Any()));
}
// As concat of expanded tensors: TVM 0.27's ConvertLayout fails on relax.op.stack ("Index -1
// out of bounds").
Expr Stack(const std::vector<Expr>& tensors, int64_t axis) {
  std::vector<Expr> expanded;
  for (const Expr& tensor : tensors) expanded.push_back(ExpandDims(tensor, {axis}));
  return Concat(expanded, axis);
}
Expr Pad(const Expr& x, const IntList& widths, const std::string& mode, double value) {
  return Call("relax.op.nn.pad", x, ToArray(widths), String(mode), value);
}
Expr GroupNorm(const Expr& x, const Expr& gamma, const Expr& beta, int64_t groups,
               const IntList& axes, double epsilon) {
  return Call("relax.op.nn.group_norm", x, gamma, beta, groups, 1, ToArray(axes), epsilon, true,
              true);
}
Expr InstanceNorm(const Expr& x, const Expr& gamma, const Expr& beta, const IntList& axes,
                  double epsilon) {
  return Call("relax.op.nn.instance_norm", x, gamma, beta, 1, ToArray(axes), epsilon, true, true);
}
Expr Resize(const Expr& x, const IntList& size, const std::string& method,
            const std::string& coordinates, const std::string& rounding, double cubic_alpha) {
  Any shape = Global("relax.ShapeExpr")(ToArray(size), Any());
  if (size.size() == 3) {
    return Call("relax.op.image.resize3d", x, shape, Array<Any>{0.0, 0.0, 0.0, 0.0, 0.0, 0.0},
                String("NCDHW"), String(method), String(coordinates), String(rounding), cubic_alpha,
                0, 0.0, Any());
  }
  return Call("relax.op.image.resize2d", x, shape, Array<Any>{0.0, 0.0, 0.0, 0.0}, String("NCHW"),
              String(method), String(coordinates), String(rounding), cubic_alpha, 0, 0.0, Any());
}
Expr GridSample(const Expr& x, const Expr& grid, const std::string& method,
                const std::string& padding_mode, bool align_corners) {
  const char* layout = InfoOf(x).ndim == 5 ? "NCDHW" : "NCHW";
  return Call("relax.op.image.grid_sample", x, grid, String(method), String(layout),
              String(padding_mode), align_corners);
}
Expr ScatterElements(const Expr& x, const Expr& indices, const Expr& updates, int64_t axis,
                     const std::string& reduction) {
  return Call("relax.op.scatter_elements", x, indices, updates, axis, String(reduction));
}
Expr IndexPut(const Expr& x, const std::vector<Expr>& indices, const Expr& values,
              bool accumulate) {
  return Call("relax.op.index_put", x, MakeTuple(indices), values, accumulate);
}
Expr OneHot(const Expr& indices, int64_t depth) {
  return Call("relax.op.one_hot", indices, Global("ir.IntImm")(String("int64"), 1, Any()),
              Global("ir.IntImm")(String("int64"), 0, Any()), depth, -1);
}
Expr Bucketize(const Expr& x, const Expr& boundaries, bool out_int32, bool right) {
  return Call("relax.op.bucketize", x, boundaries, out_int32, right);
}
Expr RoiAlign(const Expr& x, const Expr& rois, const IntList& pooled_size, double spatial_scale,
              int64_t sampling_ratio, bool aligned) {
  return Call("relax.op.vision.roi_align", x, rois, ToArray(pooled_size), spatial_scale,
              sampling_ratio, aligned, String("NCHW"), String("avg"));
}

Expr NonMaxSuppression(const Expr& data, const Expr& valid_count, const Expr& indices,
                       double iou_threshold) {
  // Rows [score, x1, y1, x2, y2]: scores at 0, corners from 1, no class column (-1), so
  // every pair may suppress; indices returned, no top-k, no soft suppression.
  return Call("relax.op.vision.non_max_suppression", data, valid_count, indices, -1, iou_threshold,
              true, -1, 1, 0, -1, true, false, 0.0, 0.0);
}
Expr TensorToShape(const Expr& x) { return Call("relax.op.tensor_to_shape", x); }

}  // namespace op

}  // namespace tvmbridge::relax
