// Quantized models (PyTorch's eager-mode and FX static quantization, and dynamic quantized
// linear layers): aten::quantize_per_tensor / dequantize and the quantized:: ops.
//
// A quantized tensor converts to the float32 tensor of the values it stands for,
// (q - zero_point) * scale, tagged with its quantization (Value::quantization). Every op
// computes in float32 and rounds its result onto the output's quantization grid the way
// PyTorch's kernels do (round half to even, clamp to the integer range), so results agree
// with PyTorch's int8 kernels to within one quantization step where their integer
// accumulation rounds differently. For 8-bit tensors the rounding is Relax's quantize then
// dequantize, and weights are dequantize(int8 constant), the form in which TVM's build finds
// the convolutions it runs on integer kernels (python/tvmbridge/quantized.py); elsewhere it
// computes exactly the float32 form. Quantized tensors never cross a region boundary: the
// partitioner keeps their producers and users together (see partitioner.cc).
#include <ATen/native/quantized/PackedParams.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <unordered_set>

#include "frontend/converter.h"
#include "frontend/emit_math.h"
#include "frontend/emit_nn.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge::frontend {
namespace {

using relax::Expr;
using relax::IntList;
using torch::jit::Node;

std::pair<double, double> IntegerRange(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::QUInt8:
      return {0, 255};
    case c10::ScalarType::QInt8:
      return {-128, 127};
    case c10::ScalarType::QInt32:
      return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    default:
      TORCH_CHECK(false, "quantized dtype ", c10::toString(dtype),
                  " is not supported; expected quint8, qint8 or qint32");
  }
}

// x rounded onto the grid of (scale, zero_point), as float32 values: what quantizing then
// dequantizing gives. `scale` and `zero_point` are 0-d float32 tensors.
Expr RoundTrip(ConversionContext& ctx, const Expr& x, const Expr& scale, const Expr& zero_point,
               c10::ScalarType dtype) {
  auto [low, high] = IntegerRange(dtype);
  EmitMath m{ctx, "float32"};
  Expr q = m.Add(m.Unary("round", ctx.EmitExpr(relax::op::Divide(x, scale))), zero_point);
  q = ctx.EmitExpr(relax::op::Clip(q, low, high));
  return m.Mul(m.Sub(q, zero_point), scale);
}

bool IsEightBit(c10::ScalarType dtype) {
  return dtype == c10::ScalarType::QUInt8 || dtype == c10::ScalarType::QInt8;
}

Value Quantized(ConversionContext& ctx, const Expr& x, const QuantParams& params) {
  Expr values;
  if (IsEightBit(params.dtype) && ctx.Rank(x) > 0) {
    Expr scale = ctx.Scalar(params.scale, "float32");
    Expr zero_point = ctx.Scalar(static_cast<double>(params.zero_point), "int32");
    const char* dtype = params.dtype == c10::ScalarType::QUInt8 ? "uint8" : "int8";
    Expr q = ctx.EmitExpr(relax::op::Quantize(x, scale, zero_point, -1, dtype));
    values = ctx.EmitExpr(relax::op::Dequantize(q, scale, zero_point, -1));
  } else {
    values = RoundTrip(ctx, x, ctx.Scalar(params.scale, "float32"),
                       ctx.Scalar(static_cast<double>(params.zero_point), "float32"), params.dtype);
  }
  Value result = Value::Tensor(values);
  result.quantization = params;
  return result;
}

const QuantParams& QuantizationOf(ConversionContext& ctx, const torch::jit::Value* value) {
  const Value& converted = ctx.Get(value);
  TORCH_CHECK(converted.quantization.has_value(), "input %", value->debugName(),
              " is not a quantized tensor made in this region");
  return *converted.quantization;
}

// The output quantization of ops given as (scale, zero_point) arguments; its dtype is the
// input's (quint8 activations stay quint8).
QuantParams OutputQuantization(ConversionContext& ctx, const Node& node, size_t scale_index) {
  return QuantParams{ctx.Double(node.input(scale_index)), ctx.Int(node.input(scale_index + 1)),
                     QuantizationOf(ctx, node.input(0)).dtype};
}

Expr Relu(ConversionContext& ctx, const Expr& x) {
  return ctx.EmitExpr(relax::op::Unary("nn.relu", x));
}

Expr FloatConstant(const at::Tensor& tensor) { return TensorConstant(tensor.to(at::kFloat)); }

// The float32 values of a quantized weight, as dequantize(its int8 values): per tensor, or per
// channel along the weight's axis (or `transposed` for a [K, N] matrix from an [N, K] one).
Expr DequantizedWeight(ConversionContext& ctx, const at::Tensor& weight, bool transposed = false) {
  at::Tensor values = weight.int_repr();
  if (transposed) values = values.t();
  Expr integers = TensorConstant(values);
  switch (weight.qscheme()) {
    case at::kPerTensorAffine:
    case at::kPerTensorSymmetric:
      return ctx.EmitExpr(relax::op::Dequantize(
          integers, ctx.Scalar(weight.q_scale(), "float32"),
          ctx.Scalar(static_cast<double>(weight.q_zero_point()), "int32"), 0));
    case at::kPerChannelAffine:
    case at::kPerChannelSymmetric: {
      int64_t axis = weight.q_per_channel_axis();
      if (transposed) axis = 1 - axis;
      return ctx.EmitExpr(relax::op::Dequantize(
          integers, FloatConstant(weight.q_per_channel_scales()),
          TensorConstant(weight.q_per_channel_zero_points().to(at::kInt)), axis));
    }
    default:
      return FloatConstant(transposed ? weight.dequantize().t() : weight.dequantize());
  }
}

// aten::quantize_per_tensor(self, scale, zero_point, dtype)
Value ConvertQuantizePerTensor(ConversionContext& ctx, const Node& node) {
  auto dtype = static_cast<c10::ScalarType>(ctx.Int(node.input(3)));
  IntegerRange(dtype);  // checks the dtype
  Expr x = ctx.Tensor(node.input(0));
  TORCH_CHECK(ctx.Info(x).dtype == "float32", "quantize_per_tensor: expected a float32 input, got ",
              ctx.Info(x).dtype);
  return Quantized(ctx, x, {ctx.Double(node.input(1)), ctx.Int(node.input(2)), dtype});
}

// aten::dequantize(self): the values are already the float32 ones.
Value ConvertDequantize(ConversionContext& ctx, const Node& node) {
  QuantizationOf(ctx, node.input(0));
  return Value::Tensor(ctx.Tensor(node.input(0)));
}

// quantized::conv2d[_relu](qx, packed_weight, output_scale, output_zero_point), also the
// older form with (stride, padding, dilation, groups) before the scale (the packed weight
// holds them too), and quantized::conv_transpose2d.
Value ConvertQuantizedConv(ConversionContext& ctx, const Node& node, bool relu) {
  auto packed = ctx.Constant(node.input(1)).toCustomClass<ConvPackedParamsBase<2>>();
  auto [weight, bias] = packed->unpack();
  ConvGeometry geometry =
      ConvGeometry::Symmetric(2, packed->stride().vec(), packed->padding().vec(),
                              packed->dilation().vec(), packed->groups());
  if (packed->transpose()) {
    geometry.transposed = true;
    geometry.output_padding = packed->output_padding().vec();
  }
  std::optional<Expr> bias_expr;
  if (bias) bias_expr = FloatConstant(*bias);
  Expr out =
      EmitConv(ctx, ctx.Tensor(node.input(0)), DequantizedWeight(ctx, weight), bias_expr, geometry);
  if (relu) out = Relu(ctx, out);
  return Quantized(ctx, out, OutputQuantization(ctx, node, node.inputs().size() - 2));
}

Expr DequantizedLinear(ConversionContext& ctx, const Expr& x, const torch::jit::Value* packed) {
  auto params = ctx.Constant(packed).toCustomClass<LinearPackedParamsBase>();
  auto [weight, bias] = params->unpack();
  Expr out = ctx.EmitExpr(relax::op::Matmul(x, DequantizedWeight(ctx, weight, true)));
  if (bias) out = ctx.EmitExpr(relax::op::Add(out, FloatConstant(*bias)));
  return out;
}

// quantized::linear[_relu](X, W_prepack, Y_scale_i, Y_zero_point_i)
Value ConvertQuantizedLinear(ConversionContext& ctx, const Node& node, bool relu) {
  Expr out = DequantizedLinear(ctx, ctx.Tensor(node.input(0)), node.input(1));
  if (relu) out = Relu(ctx, out);
  return Quantized(ctx, out, OutputQuantization(ctx, node, 2));
}

// Whether PyTorch's int8 kernels for x86 run in this process (its quantized engine is x86,
// fbgemm or onednn), which generated code then calls for dynamically quantized linear layers.
bool PyTorchInt8KernelsRun() {
  const at::QEngine engine = at::globalContext().qEngine();
  return engine == at::QEngine::X86 || engine == at::QEngine::FBGEMM ||
         engine == at::QEngine::ONEDNN;
}

// A call of a dynamically quantized linear kernel (tvmbridge.aten.quantized_linear_dynamic,
// src/runtime/quantized_kernels.cc: PyTorch's own, or ours on AMX-INT8): it quantizes x from
// its range on every call, multiplies in int8 and dequantizes with the bias. None for weights it
// does not take (zero points not 0).
std::optional<Expr> Int8DynamicLinear(ConversionContext& ctx, const Expr& x,
                                      LinearPackedParamsBase& params, bool reduce_range) {
  auto [weight, bias] = params.unpack();
  const bool per_channel =
      weight.qscheme() == at::kPerChannelAffine || weight.qscheme() == at::kPerChannelSymmetric;
  const bool per_tensor =
      weight.qscheme() == at::kPerTensorAffine || weight.qscheme() == at::kPerTensorSymmetric;
  if (weight.dim() != 2 || !(per_channel || per_tensor)) return std::nullopt;
  if (per_channel ? weight.q_per_channel_zero_points().any().item<bool>()
                  : weight.q_zero_point() != 0) {
    return std::nullopt;
  }
  const int64_t outputs = weight.size(0);
  at::Tensor scales = per_channel ? weight.q_per_channel_scales().to(at::kFloat)
                                  : at::full({outputs}, weight.q_scale(), at::kFloat);
  at::Tensor bias_values = bias ? bias->to(at::kFloat) : at::zeros({outputs}, at::kFloat);
  IntList shape = ctx.Shape(x);
  shape.back() = outputs;
  Expr call = relax::CallPurePacked("tvmbridge.aten.quantized_linear_dynamic",
                                    {x, TensorConstant(weight.int_repr()), TensorConstant(scales),
                                     TensorConstant(bias_values), relax::MakeBool(reduce_range)},
                                    {{shape, "float32"}});
  return ctx.EmitExpr(relax::TupleGetItem(ctx.EmitExpr(call), 0));
}

// quantized::linear_dynamic(X, W_prepack, reduce_range): float in and out; X is quantized to
// quint8 on the fly with the scale and zero point its range gives (0 always representable),
// as PyTorch's dynamic quantization chooses them. Where PyTorch's int8 kernels run, a call
// of its own (BERT-base, dynamically quantized: 166 ms in TVM's float32 form against 50 ms);
// elsewhere that computation in float32 on the grids.
Value ConvertQuantizedLinearDynamic(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  TORCH_CHECK(ctx.Info(x).dtype == "float32", "linear_dynamic: expected a float32 input");
  const bool reduce_range = ctx.Bool(node.input(2));
  if (PyTorchInt8KernelsRun() && ctx.Rank(x) >= 1) {
    auto params = ctx.Constant(node.input(1)).toCustomClass<LinearPackedParamsBase>();
    if (std::optional<Expr> out = Int8DynamicLinear(ctx, x, *params, reduce_range)) {
      return Value::Tensor(*out);
    }
  }
  double levels = reduce_range ? 127 : 255;
  EmitMath m{ctx, "float32"};
  IntList all_axes(ctx.Rank(x));
  std::iota(all_axes.begin(), all_axes.end(), 0);
  Expr low = m.Min(ctx.EmitExpr(relax::op::Reduce("min", x, all_axes, false)), m.Number(0));
  Expr high = m.Max(ctx.EmitExpr(relax::op::Reduce("max", x, all_axes, false)), m.Number(0));
  Expr scale = ctx.EmitExpr(relax::op::Divide(m.Sub(high, low), m.Number(levels)));
  // An all-zero input gives scale 0; PyTorch then uses 0.1.
  scale = ctx.EmitExpr(
      relax::op::Where(ctx.EmitExpr(relax::op::Equal(scale, m.Number(0))), m.Number(0.1), scale));
  Expr zero_point = m.Unary("round", m.Neg(ctx.EmitExpr(relax::op::Divide(low, scale))));
  zero_point = ctx.EmitExpr(relax::op::Clip(zero_point, 0, levels));
  Expr quantized_x = RoundTrip(ctx, x, scale, zero_point, c10::ScalarType::QUInt8);
  return Value::Tensor(DequantizedLinear(ctx, quantized_x, node.input(1)));
}

// quantized::{add,mul}[_relu](qa, qb, scale, zero_point) and their Scalar overloads
// (qa, b): adding a scalar shifts the zero point by round(b / scale) steps (the values move by
// exactly that many steps, clamped to the range); multiplying scales the scale by |b|.
Value ConvertQuantizedBinary(ConversionContext& ctx, const Node& node, bool multiply, bool relu) {
  if (node.inputs().size() == 4) {
    Expr a = ctx.Tensor(node.input(0)), b = ctx.Tensor(node.input(1));
    Expr out = ctx.EmitExpr(multiply ? relax::op::Multiply(a, b) : relax::op::Add(a, b));
    if (relu) out = Relu(ctx, out);
    return Quantized(ctx, out, OutputQuantization(ctx, node, 2));
  }
  TORCH_CHECK(node.inputs().size() == 2 && ctx.Constant(node.input(1)).isScalar(), "quantized ",
              multiply ? "mul" : "add", ": expected (qa, qb, scale, zero_point) or (qa, scalar)");
  QuantParams params = QuantizationOf(ctx, node.input(0));
  double b = ctx.Constant(node.input(1)).toScalar().toDouble();
  Expr a = ctx.Tensor(node.input(0));
  EmitMath m{ctx, "float32"};
  if (multiply) {
    TORCH_CHECK(!relu, "quantized mul_relu with a scalar is not supported");
    Value result = Value::Tensor(m.Mul(a, m.Number(b)));
    auto [low, high] = IntegerRange(params.dtype);
    if (b == 0) {
      params = {1.0, 0, params.dtype};
    } else {
      if (b < 0) params.zero_point = static_cast<int64_t>(low + high) - params.zero_point;
      params.scale *= std::abs(b);
    }
    result.quantization = params;
    return result;
  }
  auto [low, high] = IntegerRange(params.dtype);
  double steps = std::nearbyint(b / params.scale);
  Expr out = m.Add(a, m.Number(steps * params.scale));
  if (relu) out = Relu(ctx, out);
  double shifted = std::min(std::max(static_cast<double>(params.zero_point) - steps, low), high);
  return Quantized(ctx, out, {params.scale, static_cast<int64_t>(shifted), params.dtype});
}

// quantized::cat(qx, dim, scale?, zero_point?): without a scale, the first input's.
Value ConvertQuantizedCat(ConversionContext& ctx, const Node& node) {
  std::vector<Expr> parts = ctx.Tensors(node.input(0));
  TORCH_CHECK(!parts.empty(), "quantized cat of no tensors");
  int64_t axis = NormalizeAxis(ctx.Int(node.input(1)), ctx.Rank(parts[0]));
  Expr out = ctx.EmitExpr(relax::op::Concat(parts, axis));
  const Value& list = ctx.Get(node.input(0));
  TORCH_CHECK(list.kind == Value::Kind::kList && !list.items.empty() &&
                  list.items[0].quantization.has_value(),
              "quantized cat: expected a list of quantized tensors made in this region");
  QuantParams params = *list.items[0].quantization;
  if (!ctx.IsNone(node.input(2))) {
    params.scale = ctx.Double(node.input(2));
    params.zero_point = ctx.Int(node.input(3));
  }
  return Quantized(ctx, out, params);
}

// quantized::relu6(qx, inplace): min(max(x, 0), 6) on the input's grid.
Value ConvertQuantizedRelu6(ConversionContext& ctx, const Node& node) {
  Expr out = ctx.EmitExpr(relax::op::Clip(ctx.Tensor(node.input(0)), 0, 6));
  return Quantized(ctx, out, QuantizationOf(ctx, node.input(0)));
}

// quantized::leaky_relu(qx, negative_slope, inplace, output_scale, output_zero_point)
Value ConvertQuantizedLeakyRelu(ConversionContext& ctx, const Node& node) {
  Expr out = ctx.EmitExpr(relax::op::LeakyRelu(ctx.Tensor(node.input(0)),
                                               ctx.Constant(node.input(1)).toScalar().toDouble()));
  return Quantized(ctx, out, OutputQuantization(ctx, node, 3));
}

// quantized::hardswish(input, output_scale, output_zero_point)
Value ConvertQuantizedHardswish(ConversionContext& ctx, const Node& node) {
  Expr x = ctx.Tensor(node.input(0));
  EmitMath m{ctx, "float32"};
  Expr gate = ctx.EmitExpr(relax::op::Clip(m.Add(x, m.Number(3)), 0, 6));
  Expr out = m.Mul(x, m.Mul(gate, m.Number(1.0 / 6.0)));
  return Quantized(ctx, out, OutputQuantization(ctx, node, 1));
}

Value WithQuantization(ConversionContext& ctx, Value value, const QuantParams& params) {
  if (value.kind == Value::Kind::kList) {
    for (Value& item : value.items) item = WithQuantization(ctx, std::move(item), params);
    return value;
  }
  if (value.kind != Value::Kind::kTensor) return value;
  // Values already on the grid (`round` false) round onto it exactly; the rounding makes them
  // dequantize(integers) again, the form integer kernels take.
  return Quantized(ctx, value.tensor, params);
}

}  // namespace

Value AdjustForQuantizedInputs(ConversionContext& ctx, const Node& node, const OpTraits& traits,
                               Value converted) {
  static const c10::Symbol kQuantize = c10::Symbol::fromQualString("aten::quantize_per_tensor");
  if (!node.kind().is_aten() || node.kind() == kQuantize || node.kind() == c10::aten::dequantize) {
    return converted;
  }
  std::optional<QuantParams> input_quantization;
  for (const torch::jit::Value* input : node.inputs()) {
    const Value& value = ctx.Get(input);
    if (value.quantization) {
      input_quantization = value.quantization;
      break;
    }
  }
  if (!input_quantization) return converted;
  bool tensor_result = std::any_of(
      node.outputs().begin(), node.outputs().end(), [](const torch::jit::Value* output) {
        const c10::TypePtr& type = output->type();
        auto list = type->cast<c10::ListType>();
        return type->kind() == c10::TypeKind::TensorType ||
               (list && list->getElementType()->kind() == c10::TypeKind::TensorType);
      });
  if (!tensor_result) return converted;  // sizes and other metadata
  switch (traits.quantized_result) {
    case QuantizedResult::kInputGrid:
      return WithQuantization(ctx, std::move(converted), *input_quantization);
    case QuantizedResult::kUnitGrid:
      if (input_quantization->dtype != c10::ScalarType::QUInt8) break;
      return WithQuantization(ctx, std::move(converted), {1.0 / 256.0, 0, c10::ScalarType::QUInt8});
    case QuantizedResult::kNotSupported:
      break;
  }
  throw std::runtime_error(std::string(node.kind().toQualString()) +
                           " of a quantized tensor is not supported");
}

void RegisterQuantizedOps(ConverterTable& table) {
  table.Register("aten::quantize_per_tensor", ConvertQuantizePerTensor);
  table.Register("aten::dequantize", ConvertDequantize);
  auto conv = [](bool relu) {
    return [relu](ConversionContext& ctx, const Node& node) {
      return ConvertQuantizedConv(ctx, node, relu);
    };
  };
  RegisterAll(table, {"quantized::conv2d", "quantized::conv_transpose2d"}, conv(false));
  table.Register("quantized::conv2d_relu", conv(true));
  auto linear = [](bool relu) {
    return [relu](ConversionContext& ctx, const Node& node) {
      return ConvertQuantizedLinear(ctx, node, relu);
    };
  };
  table.Register("quantized::linear", linear(false));
  table.Register("quantized::linear_relu", linear(true));
  table.Register("quantized::linear_dynamic", ConvertQuantizedLinearDynamic);
  auto binary = [](bool multiply, bool relu) {
    return [multiply, relu](ConversionContext& ctx, const Node& node) {
      return ConvertQuantizedBinary(ctx, node, multiply, relu);
    };
  };
  RegisterAll(table, {"quantized::add", "quantized::add_scalar"}, binary(false, false));
  table.Register("quantized::add_relu", binary(false, true));
  RegisterAll(table, {"quantized::mul", "quantized::mul_scalar"}, binary(true, false));
  table.Register("quantized::mul_relu", binary(true, true));
  table.Register("quantized::cat", ConvertQuantizedCat);
  table.Register("quantized::relu6", ConvertQuantizedRelu6);
  table.Register("quantized::leaky_relu", ConvertQuantizedLeakyRelu);
  table.Register("quantized::hardswish", ConvertQuantizedHardswish);
}

}  // namespace tvmbridge::frontend
