// The one place that knows TVM's global function names for building Relax.
//
// TVM ships no compiler headers; its Relax IR is reached through tvm-ffi's global registry
// ("relax.BlockBuilderEmit", "relax.op.nn.conv2d", ...). Converters call the typed functions
// below and never a registry name, so a TVM upgrade that renames something touches this file
// only. tests/python/test_tvm_globals.py checks every name listed here against the wheel.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/object.h>

namespace tvmbridge::relax {

using Expr = tvm::ffi::ObjectRef;  // any Relax expression
using IntList = std::vector<int64_t>;

// Every registry name this module calls, for the test that checks them against the wheel.
const std::vector<std::string>& RequiredGlobalNames();

// One extent of a shape: a number, or an int64 expression over the input symbols (a TVM
// PrimExpr such as `batch * 128`) where compile is asked for one program for many sizes.
class Dim {
 public:
  Dim(int64_t extent) : extent_(extent) {}  // NOLINT(runtime/explicit): numbers are dims
  // An IntImm becomes the number it holds.
  explicit Dim(const Expr& expression);
  bool IsStatic() const { return !symbolic_.defined(); }
  int64_t Static() const;  // throws ConversionError-like std::runtime_error when symbolic
  Expr ToExpr() const;     // an int64 IntImm or the expression
  std::string ToString() const;

 private:
  int64_t extent_ = 0;
  Expr symbolic_;
};
using Dims = std::vector<Dim>;

Dim operator+(const Dim& a, const Dim& b);
Dim operator-(const Dim& a, const Dim& b);
Dim operator*(const Dim& a, const Dim& b);
Dim FloorDivide(const Dim& a, const Dim& b);
Dim Minimum(const Dim& a, const Dim& b);
Dim Maximum(const Dim& a, const Dim& b);
Dims ToDims(const IntList& extents);
std::string ToString(const Dims& dims);  // "[batch, 3, 224, 224]"
// The numbers, when every dim is one.
std::optional<IntList> StaticExtents(const Dims& dims);

// The symbolic extents of a function's inputs, one int64 variable per name ("batch", "seq"),
// and TVM's arithmetic analyzer told their ranges: with seq in [1, 512], `min(seq, 512)`
// simplifies to `seq`, which is what lets a slice of a 512-row table meet a seq-long tensor.
class Symbols {
 public:
  Symbols();
  // The variable named `name`, made on first use (with extents in [min, max], when given, and
  // `opt` the one to optimise for).
  Dim Get(const std::string& name);
  Dim Get(const std::string& name, int64_t min, int64_t opt, int64_t max);
  Dim Simplify(const Dim& dim) const;
  // Whether the analyzer proves a == b (numbers: equal; `n * 2` and `n + n`: yes).
  bool ProvablyEqual(const Dim& a, const Dim& b) const;
  bool ProvablyAtMost(const Dim& a, const Dim& b) const;  // a <= b for every value in range
  // A new variable for an extent that tensor values decide (how many elements are nonzero),
  // named `stem`_N, known to lie in [0, most].
  Dim DataDependent(const std::string& stem, const Dim& most);
  int DataDependentCount() const { return data_dependent_; }  // how many were made
  // The extent to optimise for, per symbol that has a range.
  const std::map<std::string, int64_t>& OptExtents() const { return opt_extents_; }

 private:
  std::unordered_map<std::string, Dim> variables_;
  std::map<std::string, int64_t> opt_extents_;
  tvm::ffi::Any analyzer_;
  int data_dependent_ = 0;
};

struct TensorInfo {
  std::optional<IntList> shape;  // absent when the rank or an extent is not static
  std::string dtype;             // "float32", ...
  int ndim = -1;                 // -1: unknown rank
  std::optional<Dims> dims;      // the shape with symbolic extents; absent when unknown
};

// The type of an emitted or parameter expression, as TVM inferred it.
TensorInfo InfoOf(const Expr& expr);

Expr MakeParam(const std::string& name, const Dims& shape, const std::string& dtype);
Expr MakeParam(const std::string& name, const IntList& shape, const std::string& dtype);
Expr MakeConstant(const tvm::ffi::Tensor& value);
Expr MakeTuple(const std::vector<Expr>& fields);
// A call of `function`, a packed function found in tvm-ffi's registry when the program runs,
// declared pure; it returns a tuple of tensors described by `outputs` (a shape may be
// unknown: then `ndim` gives the rank).
Expr CallPurePacked(const std::string& function, const std::vector<Expr>& args,
                    const std::vector<TensorInfo>& outputs);
Expr TupleGetItem(const Expr& tuple, int index);
Expr MakeString(const std::string& text);  // a string argument of a packed call
Expr MakeBool(bool value);                 // a bool argument of a packed call

// The Relax function attribute mapping each symbolic extent to the one schedules optimise
// for (build.py reads it).
inline constexpr const char* kOptExtentsAttribute = "tvmbridge.opt_extents";

// Builds one Relax function, mirroring Python's `with bb.function(...):`. Bindings go into
// plain binding blocks, which can hold control flow and checks (impure); Finish turns each run
// of pure bindings into a dataflow block, which is what TVM fuses.
class FunctionBuilder {
 public:
  explicit FunctionBuilder(std::vector<Expr> params);
  // Closes the scopes of a function that was never finished (a trial conversion).
  ~FunctionBuilder();
  FunctionBuilder(const FunctionBuilder&) = delete;
  FunctionBuilder& operator=(const FunctionBuilder&) = delete;
  // Binds `value` to a fresh variable (TVM infers its type) and returns the variable.
  Expr Emit(const Expr& value, const std::string& name_hint = "");
  // Binds `value`, whose shape TVM cannot infer, with the type `type`: its symbolic extents
  // are defined from the value when the program runs (Relax's match_cast).
  Expr EmitMatchCast(const Expr& value, const TensorInfo& type);
  // The same for a shape value (tensor_to_shape's), whose extents `shape` names.
  Expr EmitShapeMatchCast(const Expr& value, const Dims& shape);
  // Binds `if cond: then_branch() else: else_branch()` (cond: a 0-d bool tensor); each
  // branch emits its bindings into its own scope and returns its result.
  Expr EmitIf(const Expr& cond, const std::function<Expr()>& then_branch,
              const std::function<Expr()>& else_branch);
  // Calls the packed function `function` (found in tvm-ffi's registry when the program runs)
  // for its effect, which may be to raise: bindings after it run only when it returns.
  void EmitEffect(const std::string& function, const std::vector<Expr>& args);
  // Ends the function with `output`, adds it as `name` and returns the IRModule. The extents
  // of `symbols` to optimise for go with the function (attribute kOptExtentsAttribute).
  tvm::ffi::ObjectRef Finish(const Expr& output, const std::string& name, const Symbols& symbols);

 private:
  tvm::ffi::ObjectRef builder_;
  tvm::ffi::Array<Expr> params_;
  bool finished_ = false;
};

// Relax operators, one function per op we emit. Integer lists are NCHW/OIHW-style attributes.
namespace op {
Expr Add(const Expr& a, const Expr& b);
Expr Subtract(const Expr& a, const Expr& b);
Expr Multiply(const Expr& a, const Expr& b);
Expr Divide(const Expr& a, const Expr& b);
Expr Maximum(const Expr& a, const Expr& b);
Expr Minimum(const Expr& a, const Expr& b);
// Broadcasting binary ops named by their Relax suffix: "logical_and", "bitwise_or",
// "floor_divide", "floor_mod", "mod", "left_shift", ... (kBinaryOps in the .cc).
Expr Binary(const std::string& relax_name, const Expr& a, const Expr& b);
// Comparisons give bool tensors.
Expr Greater(const Expr& a, const Expr& b);
Expr GreaterEqual(const Expr& a, const Expr& b);
Expr Less(const Expr& a, const Expr& b);
Expr LessEqual(const Expr& a, const Expr& b);
Expr Equal(const Expr& a, const Expr& b);
Expr NotEqual(const Expr& a, const Expr& b);

Expr Unary(const std::string& relax_name, const Expr& x);  // "relu", "sigmoid", "exp", ...
Expr Clip(const Expr& x, double low, double high);
Expr Softmax(const Expr& x, int axis);
Expr LogSoftmax(const Expr& x, int axis);
Expr Gelu(const Expr& x, bool tanh_approximation);
Expr LeakyRelu(const Expr& x, double alpha);

Expr Conv(int spatial_dims, const Expr& data, const Expr& weight, const IntList& strides,
          const IntList& padding, const IntList& dilation, int64_t groups);
Expr ConvTranspose(int spatial_dims, const Expr& data, const Expr& weight, const IntList& strides,
                   const IntList& padding, const IntList& output_padding, const IntList& dilation,
                   int64_t groups);
Expr BatchNorm(const Expr& data, const Expr& gamma, const Expr& beta, const Expr& mean,
               const Expr& var, int axis, double epsilon);
Expr LayerNorm(const Expr& data, const Expr& gamma, const Expr& beta, const IntList& axes,
               double epsilon);
Expr MaxPool(int spatial_dims, const Expr& data, const IntList& kernel, const IntList& strides,
             const IntList& padding, const IntList& dilation, bool ceil_mode);
Expr AvgPool(int spatial_dims, const Expr& data, const IntList& kernel, const IntList& strides,
             const IntList& padding, bool ceil_mode, bool count_include_pad);
Expr AdaptiveAvgPool(int spatial_dims, const Expr& data, const IntList& output_size);

Expr Matmul(const Expr& a, const Expr& b);
Expr Reshape(const Expr& x, const Dims& shape);
Expr PermuteDims(const Expr& x, const IntList& axes);
Expr Concat(const std::vector<Expr>& tensors, int64_t axis);
Expr Mean(const Expr& x, const IntList& axes, bool keepdims);
Expr Sum(const Expr& x, const IntList& axes, bool keepdims);
Expr AsType(const Expr& x, const std::string& dtype);
// round(x / scale) + zero_point clamped to `dtype`'s range, and back: (q - zero_point) * scale,
// in float32. `scale` and `zero_point` are 0-d, or 1-D along `axis`.
Expr Quantize(const Expr& x, const Expr& scale, const Expr& zero_point, int64_t axis,
              const std::string& dtype);
Expr Dequantize(const Expr& q, const Expr& scale, const Expr& zero_point, int64_t axis);
// "sum", "mean", "max", "min", "prod", "variance" (population), "std" over `axes`.
Expr Reduce(const std::string& relax_name, const Expr& x, const IntList& axes, bool keepdims);
Expr CumSum(const Expr& x, int64_t axis, const std::string& dtype);
Expr Sort(const Expr& x, int64_t axis, bool descending);
Expr ArgSort(const Expr& x, int64_t axis, bool descending);  // int64 indices
// The indices of the nonzero elements: int64 [rank, count], count decided by the values.
Expr Nonzero(const Expr& condition);
// The sorted distinct values of flattened `x`; with the flags, a tuple that also holds the
// index of each element's value (inverse, x's element count) and each value's count.
Expr Unique(const Expr& x, bool return_inverse, bool return_counts);
Expr Flip(const Expr& x, int64_t axis);
Expr Tile(const Expr& x, const IntList& repeats);
Expr Repeat(const Expr& x, int64_t repeats, int64_t axis);
// triu (upper) or tril of the last two axes, keeping the diagonals from `diagonal` on.
Expr Triangle(bool upper, const Expr& x, int64_t diagonal);
Expr Stack(const std::vector<Expr>& tensors, int64_t axis);
// widths: (before, after) per axis, flattened; mode "constant", "reflect", "replicate",
// "circular".
Expr Pad(const Expr& x, const IntList& widths, const std::string& mode, double value);
// Channel axis 1 (NC...); `axes` are the normalised axes other than the group axis.
Expr GroupNorm(const Expr& x, const Expr& gamma, const Expr& beta, int64_t groups,
               const IntList& axes, double epsilon);
Expr InstanceNorm(const Expr& x, const Expr& gamma, const Expr& beta, const IntList& axes,
                  double epsilon);
// NCHW (2 sizes) or NCDHW (3 sizes) resize; method "nearest_neighbor", "linear", "cubic".
Expr Resize(const Expr& x, const IntList& size, const std::string& method,
            const std::string& coordinates, const std::string& rounding, double cubic_alpha);
Expr GridSample(const Expr& x, const Expr& grid, const std::string& method,
                const std::string& padding_mode, bool align_corners);
// reduction: "update", "add", "mul", "mean", "max", "min".
Expr ScatterElements(const Expr& x, const Expr& indices, const Expr& updates, int64_t axis,
                     const std::string& reduction);
Expr IndexPut(const Expr& x, const std::vector<Expr>& indices, const Expr& values, bool accumulate);
Expr OneHot(const Expr& indices, int64_t depth);  // int64 ones and zeros, new last axis
Expr Bucketize(const Expr& x, const Expr& boundaries, bool out_int32, bool right);
Expr RoiAlign(const Expr& x, const Expr& rois, const IntList& pooled_size, double spatial_scale,
              int64_t sampling_ratio, bool aligned);

Expr Power(const Expr& a, const Expr& b);
Expr Where(const Expr& condition, const Expr& a, const Expr& b);
Expr ExpandDims(const Expr& x, const IntList& axes);
Expr Squeeze(const Expr& x, const IntList& axes);
Expr BroadcastTo(const Expr& x, const Dims& shape);
// Splits at the given indices along `axis`; returns a tuple.
Expr Split(const Expr& x, const IntList& indices, int64_t axis);
// Who keeps a strided slice's bounds inside the tensor: TVM clamps them, or the caller has
// (then symbolic bounds give the plain extent `end - begin`, not TVM's clamp of it).
enum class SliceBounds { kClampedByTvm, kInRange };
Expr StridedSlice(const Expr& x, const IntList& axes, const Dims& begin, const Dims& end,
                  const IntList& strides, SliceBounds bounds = SliceBounds::kClampedByTvm);
Expr Take(const Expr& x, const Expr& indices, int64_t axis);
Expr GatherElements(const Expr& x, const Expr& indices, int64_t axis);
// A tensor of `shape` filled with the 0-d tensor `value`, as `dtype`.
Expr Full(const Dims& shape, const Expr& value, const std::string& dtype);
// 0, step, 2 * step, ... below `end`, from `start` (int64 or float32 etc., as `dtype`).
Expr Arange(const Dim& start, const Dim& end, const Dim& step, const std::string& dtype);
Expr ArgMax(const Expr& x, std::optional<int64_t> axis, bool keepdims);
Expr ArgMin(const Expr& x, std::optional<int64_t> axis, bool keepdims);
// (values, int64 indices) of the k largest (or smallest) along `axis`.
Expr TopK(const Expr& x, int64_t k, int64_t axis, bool largest);
Expr Einsum(const std::vector<Expr>& operands, const std::string& equation);
// Greedy non-maximum suppression of data [batch, boxes, 5], rows [score, x1, y1, x2, y2], every
// box against every other: a tuple of the kept boxes' `indices` entries ([batch, boxes] int32,
// by decreasing score, then -1) and their count ([batch, 1]). TVM's kernel orders each box's
// corners, drops boxes scoring at or below 0, and suppresses at IoU >= `iou_threshold`.
Expr NonMaxSuppression(const Expr& data, const Expr& valid_count, const Expr& indices,
                       double iou_threshold);
// The values of a 1-D int64 tensor as a shape (to match_cast into named extents).
Expr TensorToShape(const Expr& x);
}  // namespace op

}  // namespace tvmbridge::relax
