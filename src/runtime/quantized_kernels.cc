// PyTorch's int8 kernels, called from generated code for quantized models: eager-mode static
// quantization's convolutions (quantized::conv2d), PT2E's convolutions and linear layers on
// oneDNN (qconv2d_pointwise, its residual-adding .binary form, qlinear_pointwise), and dynamic
// quantization's linear layers (quantized::linear_dynamic). quantized.py rewrites a region's
// quantize/dequantize patterns into these calls; weights are packed once per constant.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/native/quantized/cpu/QuantUtils.h>
#include <ATen/quantized/Quantizer.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "runtime/aten_kernel_common.h"
#include "runtime/cpu_features.h"
#include "runtime/onednn_kernels.h"
#include "runtime/onednn_primitives.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// The names quantized.py emits the calls under.
constexpr const char* kQuantizedConv2dFunction = "tvmbridge.aten.quantized_conv2d";
constexpr const char* kQuantizedConv2dAddFunction = "tvmbridge.aten.quantized_conv2d_add";
constexpr const char* kQuantizedConv2dFloatFunction = "tvmbridge.aten.quantized_conv2d_float";
constexpr const char* kQuantizedLinearFloatFunction = "tvmbridge.aten.quantized_linear_float";
constexpr const char* kQuantizedLinearDynamicFunction = "tvmbridge.aten.quantized_linear_dynamic";

// `plain` (int8, [outputs, ...]) as the per-channel quantized weight PyTorch's prepacking takes,
// with `weight_scales` (one per output) and zero points 0; `kernel` names the caller in errors.
at::Tensor PerChannelInt8Weight(const char* kernel, const at::Tensor& plain,
                                const tvm::ffi::Tensor& weight_scales) {
  const at::Tensor scales = ToTorch(weight_scales);
  TORCH_CHECK(plain.scalar_type() == at::kChar && plain.dim() >= 2 && scales.dim() == 1 &&
                  scales.size(0) == plain.size(0),
              "tvmbridge: ", kernel, " takes an int8 weight and one scale per output, got ",
              plain.scalar_type(), " ", plain.sizes(), " and ", scales.sizes(), " scales");
  return at::_make_per_channel_quantized_tensor(plain, scales.to(at::kDouble),
                                                at::zeros({plain.size(0)}, at::kLong), 0);
}

// Sets PyTorch's quantized engine (which packs weights for its kernels) for its lifetime.
class QuantizedEngineGuard {
 public:
  explicit QuantizedEngineGuard(at::QEngine engine) : previous_(at::globalContext().qEngine()) {
    at::globalContext().setQEngine(engine);
  }
  ~QuantizedEngineGuard() { at::globalContext().setQEngine(previous_); }
  QuantizedEngineGuard(const QuantizedEngineGuard&) = delete;
  QuantizedEngineGuard& operator=(const QuantizedEngineGuard&) = delete;

 private:
  at::QEngine previous_;
};

// uint8 NHWC `x` as an NCHW view of its memory; `kernel` names the caller in errors.
at::Tensor IntegerNchwView(const char* kernel, const tvm::ffi::Tensor& x) {
  const at::Tensor nhwc = ToTorch(x);
  TORCH_CHECK(nhwc.scalar_type() == at::kByte && nhwc.dim() == 4, "tvmbridge: ", kernel,
              " takes uint8 NHWC tensors, got ", nhwc.scalar_type(), " ", nhwc.sizes());
  return nhwc.permute({0, 3, 1, 2});
}

// The quantized NCHW tensor that uint8 NHWC `x` stands for, on x's memory (kept alive by the
// view).
at::Tensor QuantizedNchwView(const char* kernel, const tvm::ffi::Tensor& x, double scale,
                             int64_t zero_point) {
  const at::Tensor nchw = IntegerNchwView(kernel, x);
  return at::from_blob_quantized_per_tensor_affine(
      nchw.data_ptr(), nchw.sizes(), nchw.strides(), [nchw](void*) {}, static_cast<float>(scale),
      zero_point, at::TensorOptions(at::kQUInt8));
}

// The NCHW shape of conv2d(input, weight) with `geometry`.
std::vector<int64_t> ConvolutionShape(const at::Tensor& input, const at::Tensor& weight,
                                      const ConvGeometry& geometry) {
  std::vector<int64_t> shape{input.size(0), weight.size(0)};
  for (int axis = 0; axis < 2; ++axis) {
    shape.push_back(ConvOutputExtent(input.size(axis + 2), weight.size(axis + 2), geometry, axis));
  }
  return shape;
}

// `weight` (a constant OIHW int8 tensor quantized per output channel with `weight_scales`, zero
// points 0) and `bias` packed for PyTorch's quantized convolutions, once per weight: for oneDNN
// where the CPU has VNNI, else for the engine in use.
c10::IValue PackedQuantizedConvWeight(const char* kernel, const tvm::ffi::Tensor& weight,
                                      const tvm::ffi::Tensor& weight_scales,
                                      const tvm::ffi::Tensor& bias,
                                      const tvm::ffi::Shape& geometry_values) {
  static PackedWeights<c10::IValue> packed_weights;
  static const c10::OperatorHandle prepack =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_prepack", "");
  return packed_weights.Get(weight, [&](const at::Tensor& plain) {
    TORCH_CHECK(plain.dim() == 4, "tvmbridge: ", kernel, " takes an OIHW weight, got ",
                plain.sizes());
    const at::Tensor quantized_weight = PerChannelInt8Weight(kernel, plain, weight_scales);
    const ConvGeometry geometry = ReadGeometry(geometry_values);
    const QuantizedEngineGuard engine(CpuHasFeature("avx512vnni") ? at::QEngine::ONEDNN
                                                                  : at::globalContext().qEngine());
    torch::jit::Stack stack{quantized_weight, ToTorch(bias).clone(), geometry.stride,
                            geometry.padding, geometry.dilation,     geometry.groups};
    prepack.callBoxed(&stack);
    return stack.at(0);
  });
}

// A quantized convolution's NCHW result (channels-last memory) as the uint8 NHWC tensor TVM
// takes: the kernel's own buffer, no copy.
tvm::ffi::Tensor NhwcIntegers(const at::Tensor& result) {
  // Dense NHWC already; contiguous() copies only where the strides fit both layouts.
  const at::Tensor nhwc = result.permute({0, 2, 3, 1}).contiguous();
  return ToTvm(at::from_blob(
      nhwc.data_ptr(), nhwc.sizes(), [nhwc](void*) {}, at::TensorOptions(at::kByte)));
}

// Returns quantize(conv2d(dequantize(x), dequantize(weight)) + bias [relu]) for uint8 NHWC x
// and result. `weight` is a constant OIHW int8 tensor quantized per output channel with
// `weight_scales` (zero points 0), `bias` float32, both constants of the module; they are packed
// once. Where oneDNN has AMX-INT8 on this CPU, computed by Int8Convolution (onednn_kernels.cc):
// our own primitives, made once per weight and input shape, with the grids folded into the
// kernel's scales and bias (a 64-channel 56x56 convolution 142 against PyTorch's 214 us on a
// 2-core AMX Xeon; see docs/architecture.md). Elsewhere computed by
// PyTorch's quantized convolution (quantized::conv2d[_relu], the kernel of its own int8 models,
// requantizing in the kernel), packed for oneDNN where the CPU has VNNI, for every convolution:
// PyTorch's x86 engine gives convolutions of more than 100 groups to fbgemm, 40x slower on
// depthwise ones (ShuffleNet-V2: 2.2 ms against 55 us each). Without VNNI PyTorch's engine
// chooses. x is read in place and the kernel's own result handed to TVM: no copies. (oneDNN's
// qconv2d_pointwise, Inductor's entry to the same kernels, costs about 30 us more per call:
// quantized ResNet-18 6.13 against 5.57 ms, interleaved, on a 2-core AMX Xeon.)
tvm::ffi::Tensor QuantizedConv2d(tvm::ffi::Tensor x, tvm::ffi::Tensor weight,
                                 tvm::ffi::Tensor weight_scales, tvm::ffi::Tensor bias,
                                 tvm::ffi::Shape geometry, double input_scale,
                                 int64_t input_zero_point, double output_scale,
                                 int64_t output_zero_point, bool relu) {
  c10::InferenceMode no_autograd;
  TORCH_CHECK(input_scale > 0 && output_scale > 0 && input_zero_point >= 0 &&
                  input_zero_point <= 255 && output_zero_point >= 0 && output_zero_point <= 255,
              "tvmbridge: ", kQuantizedConv2dFunction,
              " takes positive scales and uint8 zero points, got input (", input_scale, ", ",
              input_zero_point, ") and output (", output_scale, ", ", output_zero_point, ")");
  if (onednn::HasAmx()) {
    Int8ConvolutionOutput output{kQuantizedConv2dFunction};
    output.grid = QuantizationGrid{output_scale, output_zero_point};
    output.relu = relu;
    return ToTvm(Int8Convolution(x, weight, weight_scales, bias, geometry,
                                 {input_scale, input_zero_point}, output));
  }
  static const c10::OperatorHandle convolution =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d", "new");
  static const c10::OperatorHandle convolution_relu =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_relu", "new");
  torch::jit::Stack stack{
      QuantizedNchwView(kQuantizedConv2dFunction, x, input_scale, input_zero_point),
      PackedQuantizedConvWeight(kQuantizedConv2dFunction, weight, weight_scales, bias, geometry),
      output_scale, output_zero_point};
  (relu ? convolution_relu : convolution).callBoxed(&stack);
  return NhwcIntegers(stack.at(0).toTensor());
}

// A quantized convolution's weight as oneDNN's qconv2d_pointwise takes it: packed (by
// onednn::qconv_prepack, once per weight constant), with its scales and zero points.
struct OneDnnQuantizedWeight {
  at::Tensor packed, scales, zero_points;

  // A weight a oneDNN prepack op packed, quantized per output with `scales`, zero points 0.
  static OneDnnQuantizedWeight Of(at::Tensor packed, const at::Tensor& scales) {
    return {std::move(packed), scales.to(at::kFloat), at::zeros({scales.size(0)}, at::kInt)};
  }
};

// `weight` (a constant OIHW int8 tensor quantized per output channel with `weight_scales`, zero
// points 0) packed for convolutions of uint8 `input` (an NCHW view) on the grid (input_scale,
// input_zero_point); checks the shapes, naming `kernel` in errors.
OneDnnQuantizedWeight OneDnnPackedQuantizedWeight(const char* kernel,
                                                  const tvm::ffi::Tensor& weight,
                                                  const tvm::ffi::Tensor& weight_scales,
                                                  const at::Tensor& input,
                                                  const ConvGeometry& geometry, double input_scale,
                                                  int64_t input_zero_point) {
  static PackedWeights<OneDnnQuantizedWeight> packed_weights;
  static const c10::OperatorHandle prepack =
      c10::Dispatcher::singleton().findSchemaOrThrow("onednn::qconv_prepack", "");
  const at::Tensor plain_weight = ToTorch(weight);
  const at::Tensor scales = ToTorch(weight_scales);
  TORCH_CHECK(plain_weight.scalar_type() == at::kChar && plain_weight.dim() == 4 &&
                  scales.dim() == 1 && scales.size(0) == plain_weight.size(0),
              "tvmbridge: ", kernel, " takes an int8 OIHW weight and one scale per output, got ",
              plain_weight.scalar_type(), " ", plain_weight.sizes(), " and ", scales.sizes(),
              " scales");
  TORCH_CHECK(input.size(1) == plain_weight.size(1) * geometry.groups, "tvmbridge: ", kernel, ": ",
              input.size(1), " input channels for a weight of ", plain_weight.sizes(), " in ",
              geometry.groups, " groups");
  return packed_weights.Get(weight, [&](const at::Tensor& plain) {
    const at::Tensor float_scales = scales.to(at::kFloat);
    torch::jit::Stack stack{plain,
                            float_scales,
                            input_scale,
                            input_zero_point,
                            geometry.stride,
                            geometry.padding,
                            geometry.dilation,
                            geometry.groups,
                            input.sizes().vec()};
    prepack.callBoxed(&stack);
    return OneDnnQuantizedWeight::Of(stack.at(0).toTensor(), float_scales);
  });
}

// The arguments qconv2d_pointwise and its .binary form take first: the input on its grid, the
// packed weight, `operands` (binary: the residual, then the bias; plain: the bias), then the
// geometry.
torch::jit::Stack QconvArguments(const at::Tensor& input, double input_scale,
                                 int64_t input_zero_point, const OneDnnQuantizedWeight& weight,
                                 std::initializer_list<c10::IValue> operands,
                                 const ConvGeometry& geometry) {
  torch::jit::Stack stack{input,         input_scale,   input_zero_point,
                          weight.packed, weight.scales, weight.zero_points};
  stack.insert(stack.end(), operands);
  stack.insert(stack.end(),
               {geometry.stride, geometry.padding, geometry.dilation, geometry.groups});
  return stack;
}

// QuantizedConv2d with a residual connection: quantize(conv2d(...) + bias + dequantize(residual)
// [relu]), residual a uint8 NHWC tensor of the result's shape on its own grid, added in the
// kernel before it requantizes (the form PT2E's X86InductorQuantizer gives residual blocks), so
// no float32 sum is written out. oneDNN's qconv2d_pointwise.binary (Inductor's kernel for such
// models; quantized::conv2d_add would need PyTorch's global quantized engine switched to oneDNN
// around each call, which other threads see, and its relu clamps at 0 whatever the output's zero
// point, torch 2.14). It writes the sum into its residual operand, so that is a copy of
// `residual`, which other kernels may still read.
tvm::ffi::Tensor QuantizedConv2dAdd(tvm::ffi::Tensor x, tvm::ffi::Tensor residual,
                                    tvm::ffi::Tensor weight, tvm::ffi::Tensor weight_scales,
                                    tvm::ffi::Tensor bias, tvm::ffi::Shape geometry_values,
                                    double input_scale, int64_t input_zero_point,
                                    double residual_scale, int64_t residual_zero_point,
                                    double output_scale, int64_t output_zero_point, bool relu) {
  c10::InferenceMode no_autograd;
  const char* kernel = kQuantizedConv2dAddFunction;
  if (onednn::HasAmx()) {
    Int8ConvolutionOutput output{kernel};
    output.grid = QuantizationGrid{output_scale, output_zero_point};
    output.relu = relu;
    output.residual = ToTorch(residual);
    output.residual_grid = {residual_scale, residual_zero_point};
    return ToTvm(Int8Convolution(x, weight, weight_scales, bias, geometry_values,
                                 {input_scale, input_zero_point}, output));
  }
  static const c10::OperatorHandle convolution_add =
      c10::Dispatcher::singleton().findSchemaOrThrow("onednn::qconv2d_pointwise", "binary");
  // uint8 NCHW views of NHWC memory, the layout oneDNN computes in.
  const at::Tensor input = IntegerNchwView(kernel, x);
  const at::Tensor accumulated = IntegerNchwView(kernel, residual);
  const ConvGeometry geometry = ReadGeometry(geometry_values);
  const OneDnnQuantizedWeight packed = OneDnnPackedQuantizedWeight(
      kernel, weight, weight_scales, input, geometry, input_scale, input_zero_point);
  const std::vector<int64_t> result_shape = ConvolutionShape(input, ToTorch(weight), geometry);
  TORCH_CHECK(accumulated.sizes() == c10::IntArrayRef(result_shape), "tvmbridge: ", kernel,
              ": the residual's shape ", accumulated.sizes(), " is not the convolution's ",
              result_shape);
  torch::jit::Stack stack =
      QconvArguments(input, input_scale, input_zero_point, packed,
                     {accumulated.clone(at::MemoryFormat::ChannelsLast), ToTorch(bias)}, geometry);
  stack.insert(stack.end(), {output_scale, output_zero_point,
                             c10::IValue(),  // output dtype: uint8, the input's
                             residual_scale, residual_zero_point, std::string("sum"),
                             at::Scalar(1.0), relu ? std::string("relu") : std::string("none"),
                             c10::List<std::optional<at::Scalar>>(), std::string("")});
  convolution_add.callBoxed(&stack);
  return NhwcIntegers(stack.at(0).toTensor());
}

// Returns conv2d(dequantize(x), dequantize(weight)) in float32 NHWC for uint8 NHWC x: a quantized
// convolution whose output is not quantized (PT2E leaves the last of ResNet-18 so), computed by
// oneDNN's qconv2d_pointwise on the integers (u8 x s8 -> s32, scaled to float32 in the kernel)
// instead of in float32 on dequantized values. The bias and what follows stay TVM's.
tvm::ffi::Tensor QuantizedConv2dFloat(tvm::ffi::Tensor x, tvm::ffi::Tensor weight,
                                      tvm::ffi::Tensor weight_scales,
                                      tvm::ffi::Shape geometry_values, double input_scale,
                                      int64_t input_zero_point) {
  c10::InferenceMode no_autograd;
  const char* kernel = kQuantizedConv2dFloatFunction;
  if (onednn::HasAmx()) {
    const Int8ConvolutionOutput float_output{kernel};  // no grid: float32 values
    return ToTvm(Int8Convolution(x, weight, weight_scales, /*bias=*/std::nullopt, geometry_values,
                                 {input_scale, input_zero_point}, float_output));
  }
  static const c10::OperatorHandle convolution =
      c10::Dispatcher::singleton().findSchemaOrThrow("onednn::qconv2d_pointwise", "");
  const at::Tensor input = IntegerNchwView(kernel, x);
  const ConvGeometry geometry = ReadGeometry(geometry_values);
  const OneDnnQuantizedWeight packed = OneDnnPackedQuantizedWeight(
      kernel, weight, weight_scales, input, geometry, input_scale, input_zero_point);
  torch::jit::Stack stack =
      QconvArguments(input, input_scale, input_zero_point, packed,
                     {c10::IValue()},  // bias: TVM adds it, fused with what follows
                     geometry);
  stack.insert(stack.end(), {1.0, int64_t{0},  // the output's grid: float32 is on none
                             at::ScalarType::Float, std::string("none"),
                             c10::List<std::optional<at::Scalar>>(), std::string("")});
  convolution.callBoxed(&stack);
  // Dense NHWC already (channels-last); contiguous() copies only where strides fit both.
  return ToTvm(stack.at(0).toTensor().permute({0, 2, 3, 1}).contiguous());
}

// Returns dequantize(x) @ dequantize(weight).T in float32 for uint8 x [M, K] on the grid
// (input_scale, input_zero_point) and a constant int8 weight [N, K] quantized per output
// (`weight_scales`, zero points 0): a linear layer of a PT2E-quantized model, computed by oneDNN's
// qlinear_pointwise on the integers (u8 x s8 -> s32, scaled to float32 in the kernel) on the
// weight packed once (onednn::qlinear_prepack). The bias, activation and any quantize of the
// result stay TVM's, fused into one elementwise kernel.
tvm::ffi::Tensor QuantizedLinearFloat(tvm::ffi::Tensor x, tvm::ffi::Tensor weight,
                                      tvm::ffi::Tensor weight_scales, double input_scale,
                                      int64_t input_zero_point) {
  c10::InferenceMode no_autograd;
  static PackedWeights<OneDnnQuantizedWeight> packed_weights;
  static const c10::OperatorHandle prepack =
      c10::Dispatcher::singleton().findSchemaOrThrow("onednn::qlinear_prepack", "");
  static const c10::OperatorHandle linear =
      c10::Dispatcher::singleton().findSchemaOrThrow("onednn::qlinear_pointwise", "");
  const char* kernel = kQuantizedLinearFloatFunction;
  const at::Tensor input = ToTorch(x);
  const at::Tensor plain_weight = ToTorch(weight);
  const at::Tensor scales = ToTorch(weight_scales);
  TORCH_CHECK(input.scalar_type() == at::kByte && input.dim() == 2, "tvmbridge: ", kernel,
              " takes uint8 x [rows, K], got ", input.scalar_type(), " ", input.sizes());
  TORCH_CHECK(plain_weight.scalar_type() == at::kChar && plain_weight.dim() == 2 &&
                  plain_weight.size(1) == input.size(1) && scales.dim() == 1 &&
                  scales.size(0) == plain_weight.size(0),
              "tvmbridge: ", kernel, " takes an int8 weight [N, ", input.size(1),
              "] and one scale per output, got ", plain_weight.scalar_type(), " ",
              plain_weight.sizes(), " and ", scales.sizes(), " scales");
  if (onednn::HasAmx()) {
    return ToTvm(Int8Linear(kernel, input.contiguous(), {input_scale, input_zero_point}, weight,
                            weight_scales, /*bias=*/std::nullopt));
  }
  const OneDnnQuantizedWeight packed = packed_weights.Get(weight, [&](const at::Tensor& plain) {
    torch::jit::Stack stack{plain, input.sizes().vec()};
    prepack.callBoxed(&stack);
    return OneDnnQuantizedWeight::Of(stack.at(0).toTensor(), scales);
  });
  torch::jit::Stack stack{input,
                          input_scale,
                          input_zero_point,
                          packed.packed,
                          packed.scales,
                          packed.zero_points,
                          c10::IValue(),  // bias: TVM adds it, fused with what follows
                          1.0,            // the output's grid: float32 is on none
                          int64_t{0},
                          at::ScalarType::Float,
                          std::string("none"),
                          c10::List<std::optional<at::Scalar>>(),
                          std::string("")};
  linear.callBoxed(&stack);
  return ToTvm(stack.at(0).toTensor().contiguous());
}

// Returns x @ dequantize(weight).T + bias with x quantized on this call (PyTorch's dynamic
// quantization: uint8 with the scale and zero point x's range gives, over half the range with
// `reduce_range`). Where oneDNN has AMX-INT8 on this CPU, x is quantized here on the grid
// PyTorch's kernel would choose and multiplied by Int8Linear (onednn_kernels.cc; 2x PyTorch's
// kernel at BERT-base's 128 rows on a 2-core AMX Xeon); inputs holding NaN or infinity, which
// have no grid, and other CPUs get PyTorch's quantized::linear_dynamic, the kernel of its own
// dynamically quantized models, on weights packed once by the engine in use at the first call.
// `weight` is a constant [N, K] int8 tensor quantized per output channel with `weight_scales`
// (zero points 0), `bias` float32 [N], both constants of the module; x is [..., K] float32.
// The result, the kernel's own buffer, comes as a one-tensor tuple, the form the frontend's
// packed calls return.
tvm::ffi::Array<tvm::ffi::Tensor> QuantizedLinearDynamic(tvm::ffi::Tensor x,
                                                         tvm::ffi::Tensor weight,
                                                         tvm::ffi::Tensor weight_scales,
                                                         tvm::ffi::Tensor bias, bool reduce_range) {
  c10::InferenceMode no_autograd;
  static PackedWeights<c10::IValue> packed_weights;
  static const c10::OperatorHandle linear =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_dynamic", "");
  static const c10::OperatorHandle prepack =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
  const at::Tensor input = ToTorch(x);
  TORCH_CHECK(input.scalar_type() == at::kFloat && input.dim() >= 1 && weight.ndim() == 2 &&
                  input.size(-1) == weight.size(1),
              "tvmbridge: quantized_linear_dynamic takes float32 x [..., K] and an int8 weight ",
              "[N, K], got ", input.scalar_type(), " ", input.sizes(), " and [",
              weight.ndim() == 2 ? weight.size(0) : -1, ", ",
              weight.ndim() == 2 ? weight.size(1) : -1, "]");
  if (onednn::HasAmx()) {
    const at::Tensor rows = input.reshape({-1, input.size(-1)}).contiguous();
    float min = 0, max = 0;  // no rows: any grid
    if (rows.numel() > 0) {
      const auto [low, high] = at::aminmax(rows);
      min = low.item<float>();
      max = high.item<float>();
    }
    // NaN or infinity has no grid: those calls go to PyTorch's kernel, whose result they get.
    if (std::isfinite(min) && std::isfinite(max)) {
      // The grid PyTorch's kernel picks (fbgemm's rule), and its rounding.
      const auto grid = quant_utils::ChooseQuantizationParams(
          min, max, /*qmin=*/0, /*qmax=*/255, /*preserve_sparsity=*/false,
          /*force_scale_power_of_two=*/false, reduce_range);
      const at::Tensor quantized =
          at::quantize_per_tensor(rows, grid.scale, grid.zero_point, at::kQUInt8);
      const at::Tensor integers = at::from_blob(
          quantized.data_ptr(), rows.sizes(), [quantized](void*) {}, at::kByte);
      std::vector<int64_t> shape = input.sizes().vec();
      shape.back() = weight.size(0);
      return {ToTvm(Int8Linear(kQuantizedLinearDynamicFunction, integers,
                               {grid.scale, grid.zero_point}, weight, weight_scales, bias)
                        .view(shape))};
    }
  }
  const c10::IValue packed = packed_weights.Get(weight, [&](const at::Tensor& plain) {
    const at::Tensor quantized_weight =
        PerChannelInt8Weight("quantized_linear_dynamic", plain, weight_scales);
    torch::jit::Stack stack{quantized_weight, ToTorch(bias).clone()};
    prepack.callBoxed(&stack);
    return stack.at(0);
  });
  torch::jit::Stack stack{input, packed, reduce_range};
  linear.callBoxed(&stack);
  return {ToTvm(stack.at(0).toTensor().contiguous())};
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef()
      .def(kQuantizedConv2dFunction, QuantizedConv2d)
      .def(kQuantizedConv2dAddFunction, QuantizedConv2dAdd)
      .def(kQuantizedConv2dFloatFunction, QuantizedConv2dFloat)
      .def(kQuantizedLinearFloatFunction, QuantizedLinearFloat)
      .def(kQuantizedLinearDynamicFunction, QuantizedLinearDynamic);
}

}  // namespace tvmbridge
