// Kernels on oneDNN primitives made once per weight constant and call shape, then kept
// (onednn_primitives.h): float convolutions, the calls generated code makes where a region's
// convolutions run on oneDNN (bfloat16, or float32 where that was measured faster; see
// python/tvmbridge/pipeline.py), and the int8 convolutions and linear layers
// quantized_kernels.cc calls on AMX-INT8 CPUs (onednn_kernels.h). On an AMX Xeon ResNet-18's
// twenty bfloat16 convolutions take 1.1 ms of arithmetic, so the 25-35 us per call PyTorch's
// mkldnn::_convolution_pointwise spends making its primitive was most of their time. The same
// holds for PyTorch's linear kernel, so on AMX CPUs bfloat16 linear layers come here too
// (Bf16Linear); float32 ones stay on MKL's packed sgemm (aten_kernels.cc).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/FunctionRef.h>
#include <c10/util/accumulate.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <vector>

#include "runtime/aten_kernel_common.h"
#include "runtime/onednn_kernels.h"
#include "runtime/onednn_primitives.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// The names of the calls generated code makes: packed_conv2d_out and its _bias_, _bias_add_
// and _clamp_ forms, what pipeline.py emits now; packed_conv2d and conv2d_bf16 for libraries
// built before them (saved modules still hold them).
constexpr const char* kPackedConv2dFunction = "tvmbridge.aten.packed_conv2d";
constexpr const char* kPackedConv2dOutFunction = "tvmbridge.aten.packed_conv2d_out";
constexpr const char* kPackedConv2dBiasOutFunction = "tvmbridge.aten.packed_conv2d_bias_out";
constexpr const char* kPackedConv2dBiasAddOutFunction = "tvmbridge.aten.packed_conv2d_bias_add_out";
constexpr const char* kPackedConv2dClampOutFunction = "tvmbridge.aten.packed_conv2d_clamp_out";
constexpr const char* kPackedLinearBiasGeluFunction = "tvmbridge.aten.packed_linear_bias_gelu";
constexpr const char* kConv2dBf16Function = "tvmbridge.aten.conv2d_bf16";

using onednn::memory;
using onednn::PlanKey;
using onednn::WeightPlans;

// What PyTorch's profiler shows for each call (tests look for it too).
constexpr const char* kConvolutionEvent = "tvmbridge::onednn_conv2d";
constexpr const char* kInt8ConvolutionEvent = "tvmbridge::onednn_int8_conv2d";
constexpr const char* kInt8LinearEvent = "tvmbridge::onednn_int8_linear";
constexpr const char* kBf16LinearEvent = "tvmbridge::onednn_bf16_linear";
// A clamping convolution whose input could make NaN, clamped after oneDNN's kernel; a linear
// layer with GELU likewise.
constexpr const char* kClampAfterEvent = "tvmbridge::clamp_keeping_nan";
constexpr const char* kGeluAfterEvent = "tvmbridge::gelu_keeping_nan";

// `kernel` names the caller in the error.
memory::data_type FloatType(at::ScalarType type, const char* kernel) {
  TORCH_CHECK(type == at::kBFloat16 || type == at::kFloat, "tvmbridge: ", kernel,
              " takes a bfloat16 or float32 weight, got ", type);
  return type == at::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// The plans of convolution weight `plain` (OIHW, or OIDHW for a 3-D one) in `groups`, of
// `type`: in groups, oneDNN's weight is [groups, outputs per group, inputs per group, window],
// the same memory.
std::shared_ptr<WeightPlans> ConvolutionPlans(const char* kernel, const at::Tensor& plain,
                                              int64_t groups, memory::data_type type) {
  TORCH_CHECK((plain.dim() == 4 || plain.dim() == 5) && groups > 0 && plain.size(0) % groups == 0,
              "tvmbridge: ", kernel, " takes an OIHW or OIDHW weight whose outputs divide into ",
              groups, " groups, got ", plain.sizes());
  const bool three_d = plain.dim() == 5;
  memory::dims dims(plain.sizes().begin(), plain.sizes().end());
  if (groups == 1) {
    return std::make_shared<WeightPlans>(
        plain,
        memory::desc(dims, type, three_d ? memory::format_tag::oidhw : memory::format_tag::oihw));
  }
  dims[0] /= groups;
  dims.insert(dims.begin(), groups);
  return std::make_shared<WeightPlans>(
      plain,
      memory::desc(dims, type, three_d ? memory::format_tag::goidhw : memory::format_tag::goihw));
}

// What a convolution kernel computes besides its weight: the dtypes of its input and result,
// whether it adds a bias (and its dtype), and the attributes of its primitive (made only for a
// new plan). `variant` tells plans with different attributes apart.
struct ConvolutionKind {
  const char* kernel;  // the name errors give
  memory::data_type source, destination;
  bool has_bias;
  std::array<int64_t, 3> variant;
  std::function<dnnl::primitive_attr()> attributes;
  memory::data_type bias = memory::data_type::f32;
  // The dtype of a tensor of the result's shape added after the bias, as the last post-op
  // (oneDNN's binary one; a residual connection); undef where none is.
  memory::data_type addend = memory::data_type::undef;
};

// Whether `descriptor` is oneDNN 3.2's AMX kernel on a convolution it computes wrongly in
// bfloat16: windows that tile the input (window = stride, no padding: ConvNeXt's stem and
// downsampling) over input channels per group that are not a multiple of 32. Measured on an
// AMX Xeon: 2x2 and 4x4 windows over 48, 80, 112 or 144 channels, off by up to 100x the
// bfloat16 tolerance (timm's ConvNeXt-atto: cosine 0.05 with float32); 32 and 64 channels, and
// overlapping windows, right, as are 1x1 windows (every pointwise convolution). oneDNN's next
// kernel takes those.
template <size_t Dims>
bool WrongOnAmx(const dnnl::convolution_forward::primitive_desc& descriptor,
                memory::data_type source, int64_t group_inputs, const int64_t* window,
                const ConvGeometryOf<Dims>& geometry) {
  bool tiling = true, single = true;
  for (size_t axis = 0; axis < Dims; ++axis) {
    tiling = tiling && window[axis] == geometry.stride[axis] && geometry.padding[axis] == 0 &&
             geometry.dilation[axis] == 1;
    single = single && window[axis] == 1;
  }
  return source == memory::data_type::bf16 && tiling && !single && group_inputs % 32 != 0 &&
         std::string_view(descriptor.impl_info_str()) == "brgconv:avx512_core_amx";
}

// oneDNN 3.2's older AMX kernel, which takes bfloat16 convolutions of up to 4 input channels
// (every network's stem). Its reduction blocks are padded with zero weights that meet input
// values outside the window, so a NaN or infinity there makes NaN (inf x 0) in outputs whose
// windows do not hold it: ResNet's 7x7 stem over an input with one infinity gave NaN at 44
// outputs where PyTorch has 36.
constexpr std::string_view kZeroPaddedAmxKernel = "jit:avx512_core_amx";

// Whether oneDNN's kernel `implementation` can turn a NaN or infinity of a bfloat16 `source`
// into NaN at outputs whose windows do not hold it, for `group_inputs` input channels per
// group. kZeroPaddedAmxKernel does; so do the AVX512-BF16 brgemm kernels over an odd channel
// count: their dot products take channels in pairs, the last one's partner a zero weight times
// a neighbouring input value (a Xeon without AMX: 1x1 windows over 1, 3 and 5 channels gave
// NaN at twice PyTorch's outputs, 3-D 3x3 ones over 3 and 17 channels too). Their next kernels
// keep PyTorch's NaN (288 cases probed there) but the AMX one's is 2.5-10x slower, so
// RunConvolution gives them only inputs holding NaN or infinity.
bool SpreadsNonFinite(std::string_view implementation, memory::data_type source,
                      int64_t group_inputs) {
  if (source != memory::data_type::bf16) return false;
  const bool brgemm_on_avx512_bf16 =
      implementation.substr(0, 7) == "brgconv" && implementation.size() >= 17 &&
      implementation.substr(implementation.size() - 17) == ":avx512_core_bf16";
  return implementation == kZeroPaddedAmxKernel || (brgemm_on_avx512_bf16 && group_inputs % 2 == 1);
}

// Reads whether each value at `data` has magnitude at most `limit` (defined below).
bool AllWithin(const void* data, int64_t count, memory::data_type type, float limit);

// The output channels of a convolution in `groups` whose oneDNN weight has `weight_dims`:
// [O, I, window], or in groups [g, O/g, I/g, window].
int64_t ConvolutionOutputs(const memory::dims& weight_dims, int64_t groups) {
  return groups == 1 ? weight_dims[0] : weight_dims[0] * weight_dims[1];
}

// Returns where a convolution's NHWC result of the given sizes goes (a fresh buffer, the
// caller's destination, or one holding what a sum post-op adds to), checked or made by the
// caller.
using OutputBuffer = c10::function_ref<void*(at::IntArrayRef)>;

// Runs the convolution `kind` of the channels-last input at `input` (NHWC, or NDHWC with
// Dims 3; contiguous, of kind.source's dtype, of `input_sizes`) with the weight of `plans`,
// adding the float32 `bias` (one per output) where the kind has one and the caller keeps it,
// reading `extra` runtime arguments, into the buffer `output` gives, adding the `addend` (of
// the result's sizes and layout) where the kind has one. Raw memory rather than tensors:
// generated code calls this once per convolution, and small models spent a third of their
// time outside the kernels. `input_finite`: the caller read the input and found no NaN or
// infinity (plans whose kernel SpreadsNonFinite need not read it again).
template <size_t Dims>
void RunConvolution(const ConvolutionKind& kind, WeightPlans& plans, const void* input,
                    at::IntArrayRef input_sizes, const ConvGeometryOf<Dims>& geometry,
                    OutputBuffer output, const void* bias, onednn::ExtraArguments extra,
                    bool input_finite = false, const void* addend = nullptr) {
  const memory::dims& weight_dims = plans.plain_dims();
  const int64_t groups = geometry.groups;
  // The layout was made for the first call's groups and spatial axes: one weight constant is
  // one convolution.
  const size_t expected_rank = Dims + 2 + (groups == 1 ? 0 : 1);  // [groups,] O, I, window
  TORCH_CHECK(weight_dims.size() == expected_rank && (groups == 1 || weight_dims[0] == groups),
              "tvmbridge: ", kind.kernel, "'s weight was first used as ",
              at::IntArrayRef(weight_dims), " ([groups,] outputs, inputs, window), now in a ", Dims,
              "-D convolution in ", groups, " groups");
  const int64_t outputs = ConvolutionOutputs(weight_dims, groups);
  const int64_t group_inputs = weight_dims[groups == 1 ? 1 : 2];
  const int64_t* window = weight_dims.data() + weight_dims.size() - Dims;
  TORCH_CHECK(input_sizes.size() == Dims + 2 && input_sizes.back() == group_inputs * groups,
              "tvmbridge: ", kind.kernel, " takes a channels-last input of rank ", Dims + 2,
              " with ", group_inputs * groups, " channels (its weight is ",
              at::IntArrayRef(weight_dims), " in ", groups, " groups), got ", input_sizes);
  const int64_t batch = input_sizes[0], channels = input_sizes.back();
  const at::IntArrayRef extents = input_sizes.slice(1, Dims);
  PlanKey key{batch};
  std::array<int64_t, Dims> out_extents;
  for (size_t axis = 0; axis < Dims; ++axis) {
    out_extents[axis] = ConvOutputExtent(extents[axis], window[axis], geometry, axis);
    TORCH_CHECK(out_extents[axis] > 0, "tvmbridge: ", kind.kernel, "'s input ", input_sizes,
                " is smaller than its window ", at::IntArrayRef(window, Dims));
    key[1 + axis] = extents[axis];
    key[4 + axis] = geometry.stride[axis];
    key[7 + axis] = geometry.padding[axis];
    key[10 + axis] = geometry.dilation[axis];
  }
  std::copy(kind.variant.begin(), kind.variant.end(), key.begin() + 13);
  bool input_not_finite = false;  // the plan's kernel must not be one that SpreadsNonFinite
  auto describe = [&](const memory::desc& weight_layout) {
    const auto channels_last = Dims == 2 ? memory::format_tag::nhwc : memory::format_tag::ndhwc;
    memory::dims source_dims{batch, channels}, destination_dims{batch, outputs};
    source_dims.insert(source_dims.end(), extents.begin(), extents.end());
    destination_dims.insert(destination_dims.end(), out_extents.begin(), out_extents.end());
    memory::desc source(source_dims, kind.source, channels_last);
    memory::desc destination(destination_dims, kind.destination, channels_last);
    const memory::dims strides(geometry.stride.begin(), geometry.stride.end());
    memory::dims gaps;  // oneDNN's dilation: the gap between window elements
    for (int64_t dilation : geometry.dilation) gaps.push_back(dilation - 1);
    const memory::dims padding(geometry.padding.begin(), geometry.padding.end());
    dnnl::primitive_attr attributes = kind.attributes();
    if (kind.addend != memory::data_type::undef) {
      dnnl::post_ops post_ops = attributes.get_post_ops();
      post_ops.append_binary(dnnl::algorithm::binary_add,
                             memory::desc(destination_dims, kind.addend, channels_last));
      attributes.set_post_ops(post_ops);
    }
    using Descriptor = dnnl::convolution_forward::primitive_desc;
    const auto inference = dnnl::prop_kind::forward_inference;
    const auto direct = dnnl::algorithm::convolution_direct;
    Descriptor descriptor =
        kind.has_bias ? Descriptor(onednn::CpuEngine(), inference, direct, source, weight_layout,
                                   memory::desc({outputs}, kind.bias, memory::format_tag::x),
                                   destination, strides, gaps, padding, padding, attributes)
                      : Descriptor(onednn::CpuEngine(), inference, direct, source, weight_layout,
                                   destination, strides, gaps, padding, padding, attributes);
    while ((WrongOnAmx(descriptor, kind.source, group_inputs, window, geometry) ||
            (input_not_finite &&
             SpreadsNonFinite(descriptor.impl_info_str(), kind.source, group_inputs))) &&
           descriptor.next_impl()) {
    }
    return onednn::Described{descriptor, source, destination};
  };
  std::array<int64_t, Dims + 2> output_sizes;
  output_sizes.front() = batch;
  std::copy(out_extents.begin(), out_extents.end(), output_sizes.begin() + 1);
  output_sizes.back() = outputs;
  void* destination = output(output_sizes);
  try {
    std::shared_ptr<const onednn::Plan> plan = plans.Get(key, describe);
    if (!input_finite && SpreadsNonFinite(plan->implementation, kind.source, group_inputs) &&
        !AllWithin(input, c10::multiply_integers(input_sizes), kind.source,
                   std::numeric_limits<float>::max())) {
      input_not_finite = true;
      key.back() = 1;
      plan = plans.Get(key, describe);
    }
    onednn::Execute(*plan, const_cast<void*>(input), destination, bias, extra, addend);
  } catch (const dnnl::error& error) {
    TORCH_CHECK(false, "tvmbridge: oneDNN cannot run ", kind.kernel, " on input ", input_sizes,
                " with weight ", at::IntArrayRef(weight_dims), " (stride ",
                at::IntArrayRef(geometry.stride), ", padding ", at::IntArrayRef(geometry.padding),
                ", dilation ", at::IntArrayRef(geometry.dilation), ", ", groups,
                " groups): ", error.what());
  }
}

// Bounds a convolution's result is clamped to inside oneDNN's kernel (ReLU: [0, inf], ReLU6:
// [0, 6]), where its input lets the kernel keep NaN as PyTorch does (ConvolveInto).
// `input_clamped`: the compiler saw that the input is the result of another clamping
// convolution, with nothing between them.
struct Clamp {
  float low, high;
  bool input_clamped;
};

// The result the calling thread's last clamping convolution wrote, where oneDNN clamped it with
// finite bounds (so it holds no NaN, and no magnitude above `magnitude`); empty otherwise. A
// convolution whose input it is (Clamp::input_clamped, and the same memory) need not read it
// again: MobileNet-V2's depthwise convolutions read the results of its expanding ones.
struct ClampedResult {
  const void* data = nullptr;
  size_t bytes = 0;
  float magnitude = 0.f;
};
thread_local ClampedResult last_clamped_result;

// What a float convolution's kernel keeps of its weight: its plans, and the largest input
// magnitude for which the convolution stays finite (inputs that large or smaller, and a bias
// within kFiniteLimit, give sums within 2 * kFiniteLimit < FLT_MAX). Negative where the weight
// holds NaN or infinity.
struct FloatConvolutionWeight {
  std::shared_ptr<WeightPlans> plans;
  float finite_input_limit;
};

constexpr float kFiniteLimit = 1e38f;

// The largest input magnitude for which a product with `plain` (each output the sum over its
// slice along `output_axis` of weights times inputs) stays within kFiniteLimit: kFiniteLimit
// over the largest sum of one output's weight magnitudes. Negative where the weight holds NaN
// or infinity.
float FiniteInputLimit(const at::Tensor& plain, int64_t output_axis) {
  if (plain.numel() == 0) return std::numeric_limits<float>::max();
  const double largest_sum =
      plain.abs().to(at::kDouble).transpose(0, output_axis).flatten(1).sum(1).max().item<double>();
  // In double: an all-zero weight's limit is every finite float.
  return std::isfinite(largest_sum)
             ? static_cast<float>(
                   std::min<double>(kFiniteLimit / largest_sum, std::numeric_limits<float>::max()))
             : -1.f;
}

// The float convolution weight of `weight`, made at its first call.
FloatConvolutionWeight FloatConvolutionOf(const char* kernel, const tvm::ffi::Tensor& weight,
                                          int64_t groups) {
  static PackedWeights<FloatConvolutionWeight> weights;
  return weights.Get(weight, [&](const at::Tensor& plain) {
    std::shared_ptr<WeightPlans> plans =
        ConvolutionPlans(kernel, plain, groups, FloatType(plain.scalar_type(), kernel));
    return FloatConvolutionWeight{std::move(plans), FiniteInputLimit(plain, /*output_axis=*/0)};
  });
}

ConvolutionKind FloatConvolution(const char* kernel, memory::data_type type) {
  return {kernel, type, type, /*has_bias=*/false, /*variant=*/{}, onednn::ScratchpadPerThread};
}

// A float convolution adding a bias of `bias` type (float32, or the convolution's own), one per
// output, in its kernel; then, with `clamp`, its result clamped there too (oneDNN's clip
// post-op, which turns NaN into a bound: ConvolveInto runs it only on inputs that make no NaN),
// or with `adds_addend` a tensor of the result's dtype and shape added there (a residual
// connection; addition keeps NaN, so nothing is read first).
ConvolutionKind FloatConvolutionWithBias(const char* kernel, memory::data_type type,
                                         memory::data_type bias = memory::data_type::f32,
                                         std::optional<Clamp> clamp = std::nullopt,
                                         bool adds_addend = false) {
  TORCH_INTERNAL_ASSERT(!(clamp && adds_addend), "a convolution clamps or adds after its bias");
  if (!clamp) {
    const int64_t bias_variant = bias == memory::data_type::f32 ? 1 : 2;
    return {kernel,
            type,
            type,
            /*has_bias=*/true,
            /*variant=*/{adds_addend ? bias_variant + 4 : bias_variant},
            onednn::ScratchpadPerThread,
            bias,
            adds_addend ? type : memory::data_type::undef};
  }
  const auto bits = [](float value) {
    uint32_t word;
    std::memcpy(&word, &value, sizeof word);
    return static_cast<int64_t>(word);
  };
  return {kernel,
          type,
          type,
          /*has_bias=*/true,
          /*variant=*/{bias == memory::data_type::f32 ? 3 : 4, bits(clamp->low), bits(clamp->high)},
          [clamp = *clamp] {
            dnnl::primitive_attr attributes = onednn::ScratchpadPerThread();
            dnnl::post_ops post_ops;
            if (clamp.low == 0.f && std::isinf(clamp.high)) {
              post_ops.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
            } else {
              post_ops.append_eltwise(dnnl::algorithm::eltwise_clip, clamp.low, clamp.high);
            }
            attributes.set_post_ops(post_ops);
            return attributes;
          },
          bias};
}

// Whether each of the `count` words at `words`, its sign bit cleared, is at most `largest`. In
// blocks of a fixed length, so that the compiler vectorises the comparisons; inlined into
// MagnitudesWithin's versions per instruction set.
template <typename Word>
__attribute__((always_inline)) inline bool WordMagnitudesWithin(const Word* words, int64_t count,
                                                                Word largest) {
  static_assert(std::is_signed_v<Word>, "the largest Word is the mask of a magnitude's bits");
  constexpr Word kMagnitude = std::numeric_limits<Word>::max();
  constexpr int64_t kBlock = 256;
  int64_t i = 0;
  for (; i + kBlock <= count; i += kBlock) {
    Word exceeds = 0;
    for (int64_t j = 0; j < kBlock; ++j) {
      exceeds |= static_cast<Word>((words[i + j] & kMagnitude) > largest);
    }
    if (exceeds) return false;
  }
  for (; i < count; ++i) {
    if ((words[i] & kMagnitude) > largest) return false;
  }
  return true;
}

// WordMagnitudesWithin for bfloat16 and float32 bits, compiled for AVX-512 and AVX2 besides the
// baseline (the CPU picks at load time): the read runs at the speed of the caches.
#define TVMBRIDGE_VECTOR_VERSIONS \
  __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
TVMBRIDGE_VECTOR_VERSIONS bool MagnitudesWithin(const int16_t* words, int64_t count,
                                                int16_t largest) {
  return WordMagnitudesWithin(words, count, largest);
}
TVMBRIDGE_VECTOR_VERSIONS bool MagnitudesWithin(const int32_t* words, int64_t count,
                                                int32_t largest) {
  return WordMagnitudesWithin(words, count, largest);
}
#undef TVMBRIDGE_VECTOR_VERSIONS

// Whether each of the `count` values at `data` (bfloat16 or float32) has magnitude at most
// `limit`: none is NaN or infinite. Compares the bits below the sign, which order magnitudes,
// NaN and infinity above every finite value.
bool AllWithin(const void* data, int64_t count, memory::data_type type, float limit) {
  if (!(limit >= 0.f)) return false;
  int32_t limit_bits;
  std::memcpy(&limit_bits, &limit, sizeof limit_bits);
  std::atomic<bool> within{true};
  const auto scan = [&](const auto* words, auto largest) {
    at::parallel_for(0, count, 1 << 16, [&](int64_t begin, int64_t end) {
      if (!MagnitudesWithin(words + begin, end - begin, largest)) {
        within.store(false, std::memory_order_relaxed);
      }
    });
  };
  if (type == memory::data_type::bf16) {
    // A bfloat16 is a float's upper half; truncating rounds the limit down.
    scan(static_cast<const int16_t*>(data), static_cast<int16_t>(limit_bits >> 16));
  } else {
    scan(static_cast<const int32_t*>(data), limit_bits);
  }
  return within.load();
}

// Clamps the `count` values at `data` (bfloat16 or float32) to `clamp`, keeping NaN, as
// PyTorch's clamp does: for results oneDNN's clip post-op would get wrong.
void ClampKeepingNan(void* data, int64_t count, memory::data_type type, Clamp clamp) {
  const auto apply = [&](auto* values) {
    at::parallel_for(0, count, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float value = values[i];
        if (!std::isnan(value)) values[i] = std::min(std::max(value, clamp.low), clamp.high);
      }
    });
  };
  if (type == memory::data_type::bf16) {
    apply(static_cast<c10::BFloat16*>(data));
  } else {
    apply(static_cast<float*>(data));
  }
}

// conv2d(x, weight) in the weight's dtype (bfloat16 with float32 accumulation, or float32): x
// NHWC, cast to the weight's dtype; weight an OIHW constant of the module. Returns the NHWC
// result, a fresh tensor.
at::Tensor Convolve(const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                    const tvm::ffi::Shape& geometry_values) {
  RECORD_FUNCTION(kConvolutionEvent, std::vector<c10::IValue>());
  const char* kernel = "packed_conv2d";
  const ConvGeometry geometry = ReadGeometry(geometry_values);
  const std::shared_ptr<WeightPlans> plans =
      FloatConvolutionOf(kernel, weight, geometry.groups).plans;
  const memory::data_type type = plans->plain_layout().get_data_type();
  const at::Tensor input =
      ToTorch(x).to(type == memory::data_type::bf16 ? at::kBFloat16 : at::kFloat).contiguous();
  at::Tensor result;
  RunConvolution(FloatConvolution(kernel, type), *plans, input.data_ptr(), input.sizes(), geometry,
                 [&](at::IntArrayRef sizes) {
                   result = at::empty(sizes, input.options());
                   return result.data_ptr();
                 },
                 /*bias=*/nullptr, {});
  return result;
}

// The start of a tensor's elements (a view's data pointer with its byte offset).
void* Elements(const tvm::ffi::Tensor& tensor) {
  return static_cast<char*>(tensor.data_ptr()) + tensor.byte_offset();
}

// The dtype a float convolution's operands have, as TVM names it.
const char* TvmDtypeName(memory::data_type type) {
  return type == memory::data_type::bf16 ? "bfloat16" : "float32";
}

// What a tensor is, for errors: "bfloat16 [1, 4, 4, 8]", and where it is not contiguous.
std::string Describe(const tvm::ffi::Tensor& t) {
  std::ostringstream text;
  text << t.dtype() << " " << at::IntArrayRef(t.shape().data(), t.shape().size())
       << (t.IsContiguous() ? "" : ", not contiguous");
  return text.str();
}

// Whether `t` is a contiguous CPU tensor of `dtype`.
bool IsContiguousCpu(const tvm::ffi::Tensor& t, DLDataType dtype) {
  return t.device().device_type == kDLCPU && t.dtype().code == dtype.code &&
         t.dtype().bits == dtype.bits && t.dtype().lanes == dtype.lanes && t.IsContiguous();
}

// A 2-D or 3-D convolution (by `geometry_values`' count) as Convolve computes it, plus `bias`
// where given (float32 or the weight's dtype, one per output), then clamped to `clamp` or plus
// `addend` (of out's dtype and shape) where given, written into `out`; x and out channels-last and
// contiguous, of the weight's dtype (pipeline.py casts them in TVM's kernels around the call).
// Works on TVM's tensors directly: no tensor is made per call.
//
// oneDNN 3.2's clip and ReLU post-ops turn NaN into a bound, so the clamp runs inside oneDNN's
// kernel only where the result can hold no NaN: the input's magnitudes within the weight's
// finite_input_limit and the bias's within kFiniteLimit (one read of each, cheaper than a pass
// over the result; NaN and infinity fail it). Other calls clamp the result afterwards, keeping
// NaN as PyTorch does.
template <size_t Dims>
void ConvolveInto(const char* kernel, const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                  const tvm::ffi::Shape& geometry_values, const tvm::ffi::Tensor& out,
                  const tvm::ffi::Tensor* bias, std::optional<Clamp> clamp,
                  const tvm::ffi::Tensor* addend) {
  RECORD_FUNCTION(kConvolutionEvent, std::vector<c10::IValue>());
  const ConvGeometryOf<Dims> geometry = ReadGeometry<Dims>(geometry_values);
  const FloatConvolutionWeight convolution = FloatConvolutionOf(kernel, weight, geometry.groups);
  WeightPlans& plans = *convolution.plans;
  const memory::data_type type = plans.plain_layout().get_data_type();
  const DLDataType expected =
      type == memory::data_type::bf16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 32, 1};
  const at::IntArrayRef input_sizes(x.shape().data(), x.shape().size());
  TORCH_CHECK(IsContiguousCpu(x, expected), "tvmbridge: ", kernel, " takes a contiguous ",
              TvmDtypeName(type), " channels-last input on the CPU (its weight's dtype), got ",
              Describe(x));
  memory::data_type bias_type = memory::data_type::f32;
  const int64_t outputs = ConvolutionOutputs(plans.plain_dims(), geometry.groups);
  if (bias) {
    const bool own_dtype = IsContiguousCpu(*bias, expected);
    TORCH_CHECK((own_dtype || IsContiguousCpu(*bias, DLDataType{kDLFloat, 32, 1})) &&
                    bias->ndim() == 1 && bias->shape()[0] == outputs,
                "tvmbridge: ", kernel, " adds a contiguous ",
                type == memory::data_type::f32 ? "float32" : "float32 or bfloat16", " bias of ",
                outputs, " values (one per output) on the CPU, got ", Describe(*bias));
    bias_type = own_dtype ? type : memory::data_type::f32;
  }
  bool clamp_in_kernel = false, input_finite = false;
  if (clamp) {
    const ClampedResult& made = last_clamped_result;
    const bool input_checked = clamp->input_clamped && made.data == Elements(x) &&
                               made.bytes == tvm::ffi::GetDataSize(x.numel(), x.dtype()) &&
                               made.magnitude <= convolution.finite_input_limit;
    input_finite =
        input_checked || AllWithin(Elements(x), x.numel(), type, convolution.finite_input_limit);
    clamp_in_kernel =
        input_finite && (!bias || AllWithin(Elements(*bias), outputs, bias_type, kFiniteLimit));
  }
  TORCH_INTERNAL_ASSERT(!addend || bias, kernel, " adds its addend after a bias");
  const ConvolutionKind kind =
      bias ? FloatConvolutionWithBias(kernel, type, bias_type,
                                      clamp_in_kernel ? clamp : std::nullopt, addend != nullptr)
           : FloatConvolution(kernel, type);
  const auto has_result_sizes = [&](const tvm::ffi::Tensor& t, at::IntArrayRef sizes) {
    return IsContiguousCpu(t, expected) &&
           at::IntArrayRef(t.shape().data(), t.shape().size()) == sizes;
  };
  RunConvolution(
      kind, plans, Elements(x), input_sizes, geometry,
      [&](at::IntArrayRef sizes) {
        TORCH_CHECK(has_result_sizes(out, sizes), "tvmbridge: ", kernel, " writes a contiguous ",
                    TvmDtypeName(type), " channels-last result of ", sizes,
                    " on the CPU, got a destination of ", Describe(out));
        if (addend) {
          TORCH_CHECK(has_result_sizes(*addend, sizes), "tvmbridge: ", kernel,
                      " adds a contiguous ", TvmDtypeName(type), " channels-last tensor of ", sizes,
                      " (its result's) on the CPU, got ", Describe(*addend));
          // oneDNN may accumulate in the destination before its post-ops read the addend.
          const char* added = static_cast<const char*>(Elements(*addend));
          const char* result = static_cast<const char*>(Elements(out));
          const size_t bytes = tvm::ffi::GetDataSize(out.numel(), out.dtype());
          TORCH_CHECK(added + bytes <= result || result + bytes <= added, "tvmbridge: ", kernel,
                      " adds a tensor that does not share memory with its result; the two "
                      "given overlap");
        }
        return Elements(out);
      },
      bias ? Elements(*bias) : nullptr, {}, input_finite, addend ? Elements(*addend) : nullptr);
  if (!clamp) return;
  if (!clamp_in_kernel) {
    RECORD_FUNCTION(kClampAfterEvent, std::vector<c10::IValue>());
    ClampKeepingNan(Elements(out), out.numel(), type, *clamp);
  }
  const float magnitude = std::max(std::abs(clamp->low), std::abs(clamp->high));
  last_clamped_result =
      clamp_in_kernel && std::isfinite(magnitude)
          ? ClampedResult{Elements(out), tvm::ffi::GetDataSize(out.numel(), out.dtype()), magnitude}
          : ClampedResult{};
}

void ConvolveInto(const char* kernel, const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                  const tvm::ffi::Shape& geometry, const tvm::ffi::Tensor& out,
                  const tvm::ffi::Tensor* bias, std::optional<Clamp> clamp = std::nullopt,
                  const tvm::ffi::Tensor* addend = nullptr) {
  if (geometry.size() == Conv3dGeometry::kValues) {
    ConvolveInto<3>(kernel, x, weight, geometry, out, bias, clamp, addend);
  } else {
    TORCH_CHECK(
        geometry.size() == ConvGeometry::kValues, "tvmbridge: ", kernel, " takes ",
        ConvGeometry::kValues, " geometry values (a 2-D convolution) or ", Conv3dGeometry::kValues,
        " (3-D): stride, padding and dilation per axis, then groups; got ", geometry.size());
    ConvolveInto<2>(kernel, x, weight, geometry, out, bias, clamp, addend);
  }
}

// An int8 layer's weight as its plans keep it, with what requantizing needs per output: its
// scales, its bias, and the sum of its integers (what a zero point on the input adds to each
// product, per unit of the zero point).
struct Int8Weight {
  std::shared_ptr<WeightPlans> plans;
  std::vector<double> scales, bias, sums;
};

// `plain`'s plans with its `weight_scales` and `bias` (zeros without one); `kernel` names the
// caller in errors.
Int8Weight WithScalesAndBias(const char* kernel, std::shared_ptr<WeightPlans> plans,
                             const at::Tensor& plain, const tvm::ffi::Tensor& weight_scales,
                             const std::optional<tvm::ffi::Tensor>& bias) {
  const int64_t outputs = plain.size(0);
  const at::Tensor scales = ToTorch(weight_scales).to(at::kDouble).contiguous();
  const at::Tensor double_bias =
      bias ? ToTorch(*bias).to(at::kDouble).contiguous() : at::zeros({outputs}, at::kDouble);
  TORCH_CHECK(scales.dim() == 1 && scales.size(0) == outputs && double_bias.dim() == 1 &&
                  double_bias.size(0) == outputs,
              "tvmbridge: ", kernel, " takes one weight scale and one bias per output (", outputs,
              "), got ", scales.sizes(), " scales and a bias of ", double_bias.sizes());
  const at::Tensor sums =
      plain.reshape({outputs, -1}).sum(1, /*keepdim=*/false, at::kDouble).contiguous();
  auto values = [](const at::Tensor& t) {
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  };
  return {std::move(plans), values(scales), values(double_bias), values(sums)};
}

// A product's requantization folded into per-output float32 scales and bias, the form oneDNN's
// fastest int8 kernels take (see Int8Convolution): the result is scales * products + bias for
// products of the input's integers (on the grid input_scale, input_zero_point) with the
// weight's, and float results are divided by output_scale and shifted by output_shift.
struct FoldedGrid {
  std::vector<float> scales, bias;

  FoldedGrid(const Int8Weight& weight, double input_scale, int64_t input_zero_point,
             double output_scale, double output_shift)
      : scales(weight.scales.size()), bias(weight.scales.size()) {
    for (size_t i = 0; i < scales.size(); ++i) {
      const double product_scale = input_scale * weight.scales[i];
      scales[i] = static_cast<float>(product_scale / output_scale);
      bias[i] = static_cast<float>((weight.bias[i] - product_scale * weight.sums[i] *
                                                         static_cast<double>(input_zero_point)) /
                                       output_scale +
                                   output_shift);
    }
  }

  // The scales as oneDNN's runtime argument (the bias goes by its address: Execute).
  memory ScalesMemory() {
    const memory::desc layout({static_cast<int64_t>(scales.size())}, memory::data_type::f32,
                              memory::format_tag::x);
    return memory(layout, onednn::CpuEngine(), scales.data());
  }
};

}  // namespace

at::Tensor Int8Convolution(const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                           const tvm::ffi::Tensor& weight_scales,
                           const std::optional<tvm::ffi::Tensor>& bias,
                           const tvm::ffi::Shape& geometry_values, QuantizationGrid input_grid,
                           const Int8ConvolutionOutput& output) {
  RECORD_FUNCTION(kInt8ConvolutionEvent, std::vector<c10::IValue>());
  static PackedWeights<Int8Weight> weights;
  const char* kernel = output.kernel;
  ConvGeometry geometry = ReadGeometry(geometry_values);
  const Int8Weight packed = weights.Get(weight, [&](const at::Tensor& plain) {
    TORCH_CHECK(plain.scalar_type() == at::kChar, "tvmbridge: ", kernel,
                " takes an int8 weight, got ", plain.scalar_type());
    return WithScalesAndBias(
        kernel, ConvolutionPlans(kernel, plain, geometry.groups, memory::data_type::s8), plain,
        weight_scales, bias);
  });
  at::Tensor input = ToTorch(x);
  TORCH_CHECK(input.scalar_type() == at::kByte && input.dim() == 4, "tvmbridge: ", kernel,
              " takes a uint8 NHWC input, got ", input.scalar_type(), " ", input.sizes());
  const bool quantized = output.grid.has_value();
  TORCH_CHECK(quantized || (!output.relu && !output.residual), "tvmbridge: ", kernel,
              ": a ReLU or a residual needs a quantized result");
  input = input.contiguous();
  // oneDNN 3.2 runs int8 convolutions with zero points or input and output scales on older
  // kernels, at half the speed of its brgemm ones on AMX (ResNet-18's 64-channel 56x56
  // convolution: 400 against 200 us). So the kernel gets none: requantizing is folded into its
  // per-output scales and bias, q_out = round(s * products + b) saturated to uint8, with
  //   s = input_scale * weight_scale / output_scale,
  //   b = (bias - input_scale * weight_scale * input_zero_point * weight_sum) / output_scale
  //       + output_zero_point,
  // which is quantize(conv2d(dequantize(x), dequantize(weight)) + bias) exactly where the input
  // is not padded. Padding stands for real zeros, the input's zero point: where that is not 0
  // the input is padded with it here and the kernel pads nothing.
  if (input_grid.zero_point != 0 && (geometry.padding[0] > 0 || geometry.padding[1] > 0)) {
    const int64_t pad_h = geometry.padding[0], pad_w = geometry.padding[1];
    at::Tensor padded = at::full(
        {input.size(0), input.size(1) + 2 * pad_h, input.size(2) + 2 * pad_w, input.size(3)},
        input_grid.zero_point, input.options());
    padded.narrow(1, pad_h, input.size(1)).narrow(2, pad_w, input.size(2)).copy_(input);
    input = std::move(padded);
    geometry.padding = {0, 0};
  }
  const QuantizationGrid output_grid = quantized ? *output.grid : QuantizationGrid{1.0, 0};
  // A residual is added in output steps, by a sum post-op on the result buffer, which holds it.
  const float sum_scale =
      output.residual ? static_cast<float>(output.residual_grid.scale / output_grid.scale) : 0.f;
  const int64_t sum_zero_point = output.residual ? output.residual_grid.zero_point : -1;
  // ReLU clamps at the output's zero point: saturating to uint8 does that where it is 0, and a
  // clip does it elsewhere (a variant of its own, as are the sum's scale and zero point).
  const int64_t clip_at = output.relu ? output_grid.zero_point : 0;
  const int64_t groups = geometry.groups;
  auto attributes = [groups, clip_at, sum_scale, sum_zero_point] {
    dnnl::primitive_attr attributes = onednn::ScratchpadPerThread();
    // Per output: oneDNN's weight dimension 0, or 0 and 1 in groups.
    attributes.set_scales_mask(DNNL_ARG_WEIGHTS, groups == 1 ? 1 : 3);
    dnnl::post_ops post_ops;
    if (sum_zero_point >= 0) {
      post_ops.append_sum(sum_scale, static_cast<int32_t>(sum_zero_point), memory::data_type::u8);
    }
    if (clip_at > 0) {
      post_ops.append_eltwise(dnnl::algorithm::eltwise_clip, static_cast<float>(clip_at), 255.f);
    }
    attributes.set_post_ops(post_ops);
    return attributes;
  };
  int32_t sum_scale_bits;
  std::memcpy(&sum_scale_bits, &sum_scale, sizeof(sum_scale_bits));
  const ConvolutionKind kind{kernel,
                             memory::data_type::u8,
                             quantized ? memory::data_type::u8 : memory::data_type::f32,
                             /*has_bias=*/true,
                             {clip_at, sum_zero_point, sum_scale_bits},
                             attributes};
  at::Tensor result;
  auto make_result = [&](at::IntArrayRef sizes) {
    if (!output.residual) {
      result = at::empty(sizes, input.options().dtype(quantized ? at::kByte : at::kFloat));
      return result.data_ptr();
    }
    const at::Tensor& residual = *output.residual;
    TORCH_CHECK(residual.scalar_type() == at::kByte && residual.sizes() == sizes,
                "tvmbridge: ", kernel, " adds a uint8 NHWC residual of its result's shape ", sizes,
                ", got ", residual.scalar_type(), " ", residual.sizes());
    result = residual.clone(at::MemoryFormat::Contiguous);  // the sum writes over it
    return result.data_ptr();
  };
  FoldedGrid grid(packed, input_grid.scale, input_grid.zero_point, output_grid.scale,
                  static_cast<double>(output_grid.zero_point));
  RunConvolution(kind, *packed.plans, input.data_ptr(), input.sizes(), geometry, make_result,
                 grid.bias.data(),
                 {{DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, grid.ScalesMemory()}});
  return result;
}

at::Tensor Int8Linear(const char* kernel, const at::Tensor& rows, QuantizationGrid input_grid,
                      const tvm::ffi::Tensor& weight, const tvm::ffi::Tensor& weight_scales,
                      const std::optional<tvm::ffi::Tensor>& bias) {
  RECORD_FUNCTION(kInt8LinearEvent, std::vector<c10::IValue>());
  static PackedWeights<Int8Weight> weights;
  const Int8Weight packed = weights.Get(weight, [&](const at::Tensor& plain) {
    TORCH_CHECK(plain.scalar_type() == at::kChar && plain.dim() == 2, "tvmbridge: ", kernel,
                " takes an int8 weight [N, K], got ", plain.scalar_type(), " ", plain.sizes());
    // [N, K] row-major is oneDNN's [K, N] in `ba` order: the same memory.
    memory::desc layout({plain.size(1), plain.size(0)}, memory::data_type::s8,
                        memory::format_tag::ba);
    return WithScalesAndBias(kernel, std::make_shared<WeightPlans>(plain, std::move(layout)), plain,
                             weight_scales, bias);
  });
  const memory::dims& weight_dims = packed.plans->plain_dims();
  const int64_t inputs = weight_dims[0], outputs = weight_dims[1], count = rows.size(0);
  TORCH_CHECK(rows.scalar_type() == at::kByte && rows.dim() == 2 && rows.size(1) == inputs &&
                  rows.is_contiguous(),
              "tvmbridge: ", kernel, " multiplies contiguous uint8 rows of ", inputs,
              " values, got ", rows.scalar_type(), " ", rows.sizes());
  at::Tensor output = at::empty({count, outputs}, rows.options().dtype(at::kFloat));
  if (count == 0) return output;
  auto describe = [&](const memory::desc& weight_layout) {
    memory::desc source({count, inputs}, memory::data_type::u8, memory::format_tag::ab);
    memory::desc destination({count, outputs}, memory::data_type::f32, memory::format_tag::ab);
    dnnl::primitive_attr attributes = onednn::ScratchpadPerThread();
    attributes.set_scales_mask(DNNL_ARG_WEIGHTS, 1 << 1);  // per output: weight dimension 1
    dnnl::matmul::primitive_desc descriptor(
        onednn::CpuEngine(), source, weight_layout,
        memory::desc({1, outputs}, memory::data_type::f32, memory::format_tag::ab), destination,
        attributes);
    return onednn::Described{descriptor, source, destination};
  };
  // The input's grid folded into the per-output scales and bias, as Int8Convolution does (and
  // for the same reason: oneDNN's kernels are faster without zero points); float32 out.
  FoldedGrid grid(packed, input_grid.scale, input_grid.zero_point, /*output_scale=*/1.0,
                  /*output_shift=*/0.0);
  try {
    onednn::Execute(*packed.plans->Get({count}, describe), rows.data_ptr(), output.data_ptr(),
                    grid.bias.data(),
                    {{DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, grid.ScalesMemory()}});
  } catch (const dnnl::error& error) {
    TORCH_CHECK(false, "tvmbridge: oneDNN cannot run ", kernel, " on ", rows.sizes(),
                " rows with weight [", outputs, ", ", inputs, "]: ", error.what());
  }
  return output;
}

bool PrefersOwnBf16Linear(int64_t rows, bool symbolic_rows) {
  return (!symbolic_rows || rows == 1) && onednn::HasAmx();
}

// A bfloat16 linear layer's weight as Bf16Linear keeps it: its plans, and the largest input
// magnitude its products keep finite (FiniteInputLimit).
struct Bf16LinearWeight {
  std::shared_ptr<WeightPlans> plans;
  float finite_input_limit;
};

at::Tensor Bf16Linear(const char* kernel, const at::Tensor& input, const tvm::ffi::Tensor& weight,
                      const tvm::ffi::Tensor* gelu_bias) {
  RECORD_FUNCTION(kBf16LinearEvent, std::vector<c10::IValue>());
  static PackedWeights<Bf16LinearWeight> weights;
  const Bf16LinearWeight linear = weights.Get(weight, [&](const at::Tensor& plain) {
    TORCH_CHECK(plain.scalar_type() == at::kBFloat16 && plain.dim() == 2, "tvmbridge: ", kernel,
                " takes a bfloat16 weight [K, N], got ", plain.scalar_type(), " ", plain.sizes());
    memory::desc layout({plain.size(0), plain.size(1)}, memory::data_type::bf16,
                        memory::format_tag::ab);
    return Bf16LinearWeight{std::make_shared<WeightPlans>(plain, std::move(layout)),
                            FiniteInputLimit(plain, /*output_axis=*/1)};
  });
  WeightPlans& plans = *linear.plans;
  const memory::dims& weight_dims = plans.plain_dims();
  const int64_t inputs = weight_dims[0], outputs = weight_dims[1];
  TORCH_CHECK(input.scalar_type() == at::kBFloat16 && input.dim() >= 1 &&
                  input.size(-1) == inputs && input.is_contiguous(),
              "tvmbridge: ", kernel, " multiplies contiguous bfloat16 x [..., ", inputs,
              "] by its weight, got ", input.scalar_type(), " ", input.sizes());
  if (gelu_bias) {
    TORCH_CHECK(IsContiguousCpu(*gelu_bias, DLDataType{kDLFloat, 32, 1}) &&
                    gelu_bias->ndim() == 1 && gelu_bias->shape()[0] == outputs,
                "tvmbridge: ", kernel, " adds a contiguous float32 bias of ", outputs,
                " values (one per output) on the CPU, got ", Describe(*gelu_bias));
  }
  std::vector<int64_t> sizes = input.sizes().vec();
  sizes.back() = outputs;
  at::Tensor output = at::empty(sizes, input.options());
  const int64_t rows = input.numel() / inputs;
  if (rows == 0) return output;
  // oneDNN's GELU post-op, like its clip, is not PyTorch's for NaN and infinities: it runs only
  // where the input makes neither (as ConvolveInto's clamp); otherwise ATen's GELU follows.
  const bool gelu_in_kernel =
      gelu_bias &&
      AllWithin(input.data_ptr(), input.numel(), memory::data_type::bf16,
                linear.finite_input_limit) &&
      AllWithin(Elements(*gelu_bias), outputs, memory::data_type::f32, kFiniteLimit);
  auto describe = [&](const memory::desc& weight_layout) {
    memory::desc source({rows, inputs}, memory::data_type::bf16, memory::format_tag::ab);
    memory::desc destination({rows, outputs}, memory::data_type::bf16, memory::format_tag::ab);
    dnnl::primitive_attr attributes = onednn::ScratchpadPerThread();
    if (gelu_in_kernel) {
      dnnl::post_ops post_ops;
      post_ops.append_eltwise(dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
      attributes.set_post_ops(post_ops);
    }
    auto make = [&] {
      return gelu_bias
                 ? dnnl::matmul::primitive_desc(
                       onednn::CpuEngine(), source, weight_layout,
                       memory::desc({1, outputs}, memory::data_type::f32, memory::format_tag::ab),
                       destination, attributes)
                 : dnnl::matmul::primitive_desc(onednn::CpuEngine(), source, weight_layout,
                                                destination, attributes);
    };
    auto name = [](const dnnl::matmul::primitive_desc& d) {
      return std::string_view(d.impl_info_str());
    };
    dnnl::matmul::primitive_desc descriptor = make();
    // One row: past the AMX kernel (see onednn_kernels.h).
    while (rows == 1 && name(descriptor).find("amx") != std::string_view::npos &&
           descriptor.next_impl()) {
    }
    // Only the reference kernel besides AMX's (no AVX512-BF16 one for this layout): AMX's.
    if (name(descriptor).substr(0, 3) == "ref") descriptor = make();
    return onednn::Described{descriptor, source, destination};
  };
  // The plan's variant: 0 the product alone, 1 with the bias, 2 with the bias and GELU.
  const PlanKey key{rows, gelu_bias ? (gelu_in_kernel ? 2 : 1) : 0};
  try {
    onednn::Execute(*plans.Get(key, describe), input.data_ptr(), output.data_ptr(),
                    gelu_bias ? Elements(*gelu_bias) : nullptr);
  } catch (const dnnl::error& error) {
    TORCH_CHECK(false, "tvmbridge: oneDNN cannot run ", kernel, " on ", rows, " rows with weight [",
                inputs, ", ", outputs, "]: ", error.what());
  }
  if (gelu_bias && !gelu_in_kernel) {
    RECORD_FUNCTION(kGeluAfterEvent, std::vector<c10::IValue>());
    at::gelu_(output);
  }
  return output;
}

namespace {

// Returns conv2d(x, weight) as Convolve computes it: x and the result NHWC, weight an OIHW
// constant, all bfloat16 or all float32. Libraries built before packed_conv2d_out call this with
// call_pure_packed: the result is a fresh buffer TVM takes without a copy.
tvm::ffi::Tensor PackedConv2d(tvm::ffi::Tensor x, tvm::ffi::Tensor weight,
                              tvm::ffi::Shape geometry) {
  c10::InferenceMode no_autograd;
  return ToTvm(Convolve(x, weight, geometry));
}

// PackedConv2d writing into `out`, which TVM allocates (and reuses across calls by its memory
// plan); pipeline.py calls this with call_dps_packed. Despite the name (saved libraries call
// it by it), 3-D convolutions too: x and out NDHWC, weight OIDHW, 10 geometry values.
void PackedConv2dOut(tvm::ffi::Tensor x, tvm::ffi::Tensor weight, tvm::ffi::Shape geometry,
                     tvm::ffi::Tensor out) {
  ConvolveInto("packed_conv2d_out", x, weight, geometry, out, /*bias=*/nullptr);
}

// conv2d(x, weight) + bias into `out`, as PackedConv2dOut computes the convolution: the bias
// (float32, one per output) added in oneDNN's kernel, to its accumulators, instead of by a pass
// of TVM's over the result.
void PackedConv2dBiasOut(tvm::ffi::Tensor x, tvm::ffi::Tensor weight, tvm::ffi::Tensor bias,
                         tvm::ffi::Shape geometry, tvm::ffi::Tensor out) {
  ConvolveInto("packed_conv2d_bias_out", x, weight, geometry, out, &bias);
}

// conv2d(x, weight) + bias + addend into `out`, as PackedConv2dBiasOut computes the convolution
// and its bias: the addend (of out's dtype and shape: a residual connection's other branch)
// added in oneDNN's kernel too, where TVM's pass over the result did it (MobileNet-V2's
// projections).
void PackedConv2dBiasAddOut(tvm::ffi::Tensor x, tvm::ffi::Tensor weight, tvm::ffi::Tensor addend,
                            tvm::ffi::Tensor bias, tvm::ffi::Shape geometry, tvm::ffi::Tensor out) {
  ConvolveInto("packed_conv2d_bias_add_out", x, weight, geometry, out, &bias, std::nullopt,
               &addend);
}

// conv2d(x, weight) + bias clamped to [bounds[0], bounds[1]] (a float32 pair; ReLU: [0, inf]),
// into `out`, keeping NaN: the clamp in oneDNN's kernel where the input allows (ConvolveInto),
// instead of a pass of TVM's over the result. The bias is float32 or the weight's dtype
// (bfloat16 depthwise convolutions keep oneDNN's fast kernel with a bfloat16 bias only).
// `input_clamped` (0 or 1): the compiler saw that x is the result of another such call, with
// nothing between them (ClampedResult).
void PackedConv2dClampOut(tvm::ffi::Tensor x, tvm::ffi::Tensor weight, tvm::ffi::Tensor bias,
                          tvm::ffi::Shape geometry, tvm::ffi::Tensor bounds, int64_t input_clamped,
                          tvm::ffi::Tensor out) {
  const char* kernel = "packed_conv2d_clamp_out";
  TORCH_CHECK(IsContiguousCpu(bounds, DLDataType{kDLFloat, 32, 1}) && bounds.ndim() == 1 &&
                  bounds.shape()[0] == 2,
              "tvmbridge: ", kernel, " takes its clamp's bounds as a contiguous float32 pair, got ",
              Describe(bounds));
  const float* pair = static_cast<const float*>(Elements(bounds));
  TORCH_CHECK(pair[0] <= pair[1], "tvmbridge: ", kernel,
              " clamps to [low, high] with low <= high, got [", pair[0], ", ", pair[1], "]");
  ConvolveInto(kernel, x, weight, geometry, out, &bias,
               Clamp{pair[0], pair[1], input_clamped != 0});
}

// Returns GELU(x @ weight + bias) for bfloat16 x [..., K], a constant bfloat16 weight [K, N] and
// a float32 bias [N]: GELU and the bias in oneDNN's kernel where it can (Bf16Linear), instead of
// a pass of TVM's over the result (BERT-base's feed-forward layers). pipeline.py calls this with
// call_pure_packed on AMX CPUs, for a fixed row count (one primitive per row count).
tvm::ffi::Tensor PackedLinearBiasGelu(tvm::ffi::Tensor x, tvm::ffi::Tensor weight,
                                      tvm::ffi::Tensor bias) {
  c10::InferenceMode no_autograd;
  return ToTvm(Bf16Linear("packed_linear_bias_gelu", ToTorch(x), weight, &bias));
}

// Destination-passing form of PackedConv2d with a bfloat16 weight (float32 x and out are cast
// here), for libraries built before it.
void Conv2dBf16(tvm::ffi::Tensor x, tvm::ffi::Tensor weight, tvm::ffi::Shape geometry,
                tvm::ffi::Tensor out) {
  c10::InferenceMode no_autograd;
  ToTorch(out).copy_(Convolve(x, weight, geometry));
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef()
      .def(kPackedConv2dFunction, PackedConv2d)
      .def(kPackedConv2dOutFunction, PackedConv2dOut)
      .def(kPackedConv2dBiasOutFunction, PackedConv2dBiasOut)
      .def(kPackedConv2dBiasAddOutFunction, PackedConv2dBiasAddOut)
      .def(kPackedConv2dClampOutFunction, PackedConv2dClampOut)
      .def(kPackedLinearBiasGeluFunction, PackedLinearBiasGelu)
      .def(kConv2dBf16Function, Conv2dBf16);
}

}  // namespace tvmbridge
