// Convolutions on oneDNN primitives made once per weight constant and input shape, then kept:
// the calls generated code makes where a region's convolutions run on oneDNN (bfloat16, or
// float32 where that was measured faster; see python/tvmbridge/pipeline.py).
//
// PyTorch reaches the same kernels through mkldnn::_convolution_pointwise, but builds oneDNN's
// primitive descriptor on every call: 25-35 us per convolution before any arithmetic (measured
// on a Zen 4). On an AMX Xeon ResNet-18's twenty bfloat16 convolutions take 1.1 ms of
// arithmetic, so that overhead was most of the time. The oneDNN here is the onednn-cpu-gomp
// wheel's (3.2; the torch wheel hides its copy's symbols); its OpenMP is the libgomp libtorch
// has loaded, so it runs on PyTorch's threads. Linear layers stay on PyTorch's oneDNN
// (aten_kernels.cc): its newer matmul kernels ran BERT-base's products at 128 rows 10% faster
// than this one's, which outweighs the per-call saving there.
#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/aten_kernel_common.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// The names build.py emits the calls under (conv2d_bf16 only in libraries built before the
// packed kernels returned their results: saved modules still hold it).
constexpr const char* kPackedConv2dFunction = "tvmbridge.aten.packed_conv2d";
constexpr const char* kConv2dBf16Function = "tvmbridge.aten.conv2d_bf16";

using dnnl::memory;

// What PyTorch's profiler shows for each call (tests look for it too).
constexpr const char* kConvolutionEvent = "tvmbridge::onednn_conv2d";

const dnnl::engine& CpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// `kernel` names the caller in the error.
memory::data_type OneDnnType(at::ScalarType type, const char* kernel) {
  TORCH_CHECK(type == at::kBFloat16 || type == at::kFloat, "tvmbridge: ", kernel,
              " takes a bfloat16 or float32 weight, got ", type);
  return type == at::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// One primitive for one call shape: what it reads and writes, the weight in the layout its
// kernel reads, and the size of the scratch memory each call gives it.
struct Plan {
  dnnl::primitive primitive;
  memory::desc source, destination, scratchpad;
  memory weight;
};

// A primitive descriptor for one call shape, before its weight is packed. Made with
// ScratchpadPerThread().
struct Described {
  dnnl::primitive_desc descriptor;
  memory::desc source, destination;
};

// What a primitive is made for besides its weight: the input's batch, height and width, and
// the stride, padding and dilation (one weight constant is one convolution, but nothing stops
// two from sharing it).
using PlanKey = std::array<int64_t, 9>;

// The plans of one weight constant, one per call shape (a program over a range of shapes meets
// several). A new shape's
// primitive first tries a layout the weight is packed in already, so the weight is packed once;
// only where oneDNN has no fast kernel for that layout does it get its own.
class WeightPlans {
 public:
  WeightPlans(at::Tensor plain, memory::desc plain_layout)
      : plain_(plain.contiguous()), plain_layout_(std::move(plain_layout)) {}

  // `describe(weight_layout)` makes the primitive descriptor for `key`'s shape, the weight in
  // `weight_layout` (format_tag::any: oneDNN's choice); it throws dnnl::error where oneDNN has
  // no kernel for that layout.
  template <typename Describe>
  std::shared_ptr<const Plan> Get(const PlanKey& key, Describe&& describe) {
    {
      // Every call after a shape's first finds its plan: readers do not wait for each other.
      std::shared_lock<std::shared_mutex> reading(mutex_);
      auto found = plans_.find(key);
      if (found != plans_.end()) return found->second;
    }
    std::unique_lock<std::shared_mutex> writing(mutex_);
    auto found = plans_.find(key);  // made by another thread meanwhile
    if (found != plans_.end()) return found->second;
    auto plan = std::make_shared<const Plan>(Make(describe));
    plans_.emplace(key, plan);
    return plan;
  }

  const memory::desc& plain_layout() const { return plain_layout_; }

 private:
  template <typename Describe>
  Plan Make(Describe& describe) {
    for (const memory& packed : packed_) {
      std::optional<Described> described;
      try {
        described = describe(packed.get_desc());
      } catch (const dnnl::error&) {
        continue;  // no kernel reads this layout for this shape
      }
      // oneDNN's reference kernels take any layout, at a fraction of the speed.
      if (std::string_view(described->descriptor.impl_info_str()).substr(0, 3) == "ref") continue;
      return Finish(std::move(*described), packed);
    }
    Described described = describe(memory::desc(
        plain_layout_.get_dims(), plain_layout_.get_data_type(), memory::format_tag::any));
    memory packed(described.descriptor.weights_desc(), CpuEngine());
    memory plain(plain_layout_, CpuEngine(), plain_.data_ptr());
    dnnl::stream stream(CpuEngine());
    dnnl::reorder(plain, packed).execute(stream, plain, packed);
    stream.wait();
    packed_.push_back(packed);
    return Finish(std::move(described), packed);
  }

  static Plan Finish(Described described, const memory& weight) {
    return {dnnl::primitive(described.descriptor), std::move(described.source),
            std::move(described.destination), described.descriptor.scratchpad_desc(), weight};
  }

  at::Tensor plain_;
  memory::desc plain_layout_;
  std::vector<memory> packed_;
  std::shared_mutex mutex_;
  std::map<PlanKey, std::shared_ptr<const Plan>> plans_;
};

// Primitives take their scratch memory from the calling thread (user mode), so threads can run
// one primitive at once: in the default mode, a oneDNN built for concurrent execution gives each
// primitive one scratchpad, which two threads would share.
dnnl::primitive_attr ScratchpadPerThread() {
  dnnl::primitive_attr attributes;
  attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attributes;
}

// Runs `plan` on `input` (contiguous, of the plan's dtype) and returns its fresh result, of
// `output_sizes`.
at::Tensor Run(const Plan& plan, const at::Tensor& input, at::IntArrayRef output_sizes) {
  at::Tensor output = at::empty(output_sizes, input.options());
  // Per thread and kept, so a call allocates nothing but its output: the argument map's
  // entries, and scratch memory grown to the largest plan this thread has run.
  thread_local dnnl::stream stream(CpuEngine());
  thread_local std::unordered_map<int, memory> arguments;
  thread_local at::Tensor scratch = at::empty({0}, at::kByte);
  arguments[DNNL_ARG_SRC] = memory(plan.source, CpuEngine(), input.data_ptr());
  arguments[DNNL_ARG_WEIGHTS] = plan.weight;
  arguments[DNNL_ARG_DST] = memory(plan.destination, CpuEngine(), output.data_ptr());
  const auto scratch_bytes = static_cast<int64_t>(plan.scratchpad.get_size());
  if (scratch.numel() < scratch_bytes) scratch = at::empty({scratch_bytes}, at::kByte);
  if (scratch_bytes > 0) {
    arguments[DNNL_ARG_SCRATCHPAD] = memory(plan.scratchpad, CpuEngine(), scratch.data_ptr());
  } else {
    arguments.erase(DNNL_ARG_SCRATCHPAD);
  }
  plan.primitive.execute(stream, arguments);
  stream.wait();
  return output;
}

// conv2d(x, weight) in the weight's dtype (bfloat16 with float32 accumulation, or float32): x
// NHWC, cast to the weight's dtype; weight an OIHW constant of the module. Returns the NHWC
// result.
at::Tensor Convolve(const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                    const tvm::ffi::Shape& geometry_values) {
  RECORD_FUNCTION(kConvolutionEvent, std::vector<c10::IValue>());
  static PackedWeights<std::shared_ptr<WeightPlans>> weights;
  const ConvGeometry geometry = ReadGeometry(geometry_values);
  const int64_t groups = geometry.groups;
  const std::shared_ptr<WeightPlans> plans = weights.Get(weight, [&](const at::Tensor& plain) {
    TORCH_CHECK(plain.dim() == 4 && groups > 0 && plain.size(0) % groups == 0,
                "tvmbridge: packed_conv2d takes an OIHW weight whose outputs divide into ", groups,
                " groups, got ", plain.sizes());
    const memory::data_type type = OneDnnType(plain.scalar_type(), "packed_conv2d");
    const int64_t outputs = plain.size(0);
    // In groups, oneDNN's weight is [groups, outputs per group, inputs per group, h, w]:
    // the same memory.
    memory::desc layout =
        groups == 1
            ? memory::desc({outputs, plain.size(1), plain.size(2), plain.size(3)}, type,
                           memory::format_tag::oihw)
            : memory::desc({groups, outputs / groups, plain.size(1), plain.size(2), plain.size(3)},
                           type, memory::format_tag::goihw);
    return std::make_shared<WeightPlans>(plain, std::move(layout));
  });
  const memory::dims& weight_dims = plans->plain_layout().get_dims();
  const memory::data_type type = plans->plain_layout().get_data_type();
  // The layout was made for the first call's groups: one weight constant is one convolution.
  TORCH_CHECK(groups == 1 ? weight_dims.size() == 4 : weight_dims[0] == groups,
              "tvmbridge: packed_conv2d's weight was first used in ",
              weight_dims.size() == 4 ? 1 : weight_dims[0], " groups, now in ", groups);
  const int64_t outputs = groups == 1 ? weight_dims[0] : weight_dims[0] * weight_dims[1];
  const int64_t group_inputs = weight_dims[groups == 1 ? 1 : 2];
  const int64_t kernel_h = weight_dims.end()[-2], kernel_w = weight_dims.end()[-1];

  at::Tensor input = ToTorch(x);
  TORCH_CHECK(input.dim() == 4 && input.size(3) == group_inputs * groups,
              "tvmbridge: packed_conv2d takes an NHWC input with ", group_inputs * groups,
              " channels (its weight is [", outputs, ", ", group_inputs, ", ", kernel_h, ", ",
              kernel_w, "] in ", groups, " groups), got ", input.sizes());
  input = input.to(type == memory::data_type::bf16 ? at::kBFloat16 : at::kFloat).contiguous();
  const int64_t batch = input.size(0), height = input.size(1), width = input.size(2),
                channels = input.size(3);
  auto extent = [&](int64_t size, int64_t kernel, int dim) {
    return (size + 2 * geometry.padding[dim] - geometry.dilation[dim] * (kernel - 1) - 1) /
               geometry.stride[dim] +
           1;
  };
  const int64_t out_h = extent(height, kernel_h, 0), out_w = extent(width, kernel_w, 1);
  TORCH_CHECK(out_h > 0 && out_w > 0, "tvmbridge: packed_conv2d's input ", input.sizes(),
              " is smaller than its ", kernel_h, "x", kernel_w, " window");

  const PlanKey key{batch,
                    height,
                    width,
                    geometry.stride[0],
                    geometry.stride[1],
                    geometry.padding[0],
                    geometry.padding[1],
                    geometry.dilation[0],
                    geometry.dilation[1]};
  auto describe = [&](const memory::desc& weight_layout) {
    memory::desc source({batch, channels, height, width}, type, memory::format_tag::nhwc);
    memory::desc destination({batch, outputs, out_h, out_w}, type, memory::format_tag::nhwc);
    dnnl::convolution_forward::primitive_desc descriptor(
        CpuEngine(), dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        source, weight_layout, destination, {geometry.stride[0], geometry.stride[1]},
        {geometry.dilation[0] - 1, geometry.dilation[1] - 1},  // oneDNN counts the gaps
        {geometry.padding[0], geometry.padding[1]}, {geometry.padding[0], geometry.padding[1]},
        ScratchpadPerThread());
    return Described{descriptor, source, destination};
  };
  try {
    return Run(*plans->Get(key, describe), input, {batch, out_h, out_w, outputs});
  } catch (const dnnl::error& error) {
    TORCH_CHECK(false, "tvmbridge: oneDNN cannot run packed_conv2d on input ", input.sizes(),
                " with weight ", at::IntArrayRef(weight_dims), " (stride ",
                at::IntArrayRef(geometry.stride), ", padding ", at::IntArrayRef(geometry.padding),
                ", dilation ", at::IntArrayRef(geometry.dilation), ", ", groups,
                " groups): ", error.what());
  }
}

// Returns conv2d(x, weight) as Convolve computes it: x and the result NHWC, weight an OIHW
// constant, all bfloat16 or all float32. build.py calls this with call_pure_packed: the result
// is a fresh buffer TVM takes without a copy.
tvm::ffi::Tensor PackedConv2d(tvm::ffi::Tensor x, tvm::ffi::Tensor weight,
                              tvm::ffi::Shape geometry) {
  c10::InferenceMode no_autograd;
  return ToTvm(Convolve(x, weight, geometry));
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
      .def(kConv2dBf16Function, Conv2dBf16);
}

}  // namespace tvmbridge
