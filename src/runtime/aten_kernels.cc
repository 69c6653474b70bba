// PyTorch's own CPU kernels, called from generated code: TVM's build pipeline replaces the
// matrix products of a region, and with precision="bf16" its convolutions, with calls to these
// (see python/tvmbridge/build.py, _AtenKernels). PyTorch reaches MKL for float32 and oneDNN
// for bfloat16, whose AMX and AVX512-BF16 kernels TVM's LLVM backend cannot generate; TVM keeps
// everything around them (bias, normalisation, activations) in its own fused kernels.
// Registered in the runtime library so a deployed model needs nothing else, and no Python.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// The names build.py emits the calls under; matmul_bf16 only in libraries built before its
// casts moved into TVM's kernels, which saved modules still hold.
constexpr const char* kMatmulFunction = "tvmbridge.aten.matmul";
constexpr const char* kMatmulBf16Function = "tvmbridge.aten.matmul_bf16";
constexpr const char* kConv2dBf16Function = "tvmbridge.aten.conv2d_bf16";

// Destination-passing style, as Relax's call_dps_packed calls it: `out` = a @ b, with
// torch.matmul's broadcasting; `out` is allocated by the caller with the result's shape and
// dtype.
void Matmul(tvm::ffi::Tensor a, tvm::ffi::Tensor b, tvm::ffi::Tensor out) {
  c10::InferenceMode no_autograd;
  at::Tensor result = ToTorch(out);
  at::matmul_out(result, ToTorch(a), ToTorch(b));
}

// `out` = a @ b computed in bfloat16 (oneDNN: AMX tiles or AVX512-BF16 dot products, float32
// accumulation), whatever the dtypes of a, b and out, casting with ATen.
void MatmulBf16(tvm::ffi::Tensor a, tvm::ffi::Tensor b, tvm::ffi::Tensor out) {
  c10::InferenceMode no_autograd;
  at::Tensor result = ToTorch(out);
  at::Tensor product = at::matmul(ToTorch(a).to(at::kBFloat16), ToTorch(b).to(at::kBFloat16));
  result.copy_(product);
}

// A 2-D convolution's geometry, as build.py passes it: stride, padding and dilation (height,
// width), then groups.
struct ConvGeometry {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
};

ConvGeometry ReadGeometry(const tvm::ffi::Shape& values) {
  TORCH_CHECK(values.size() == 7, "tvmbridge: conv2d_bf16 takes 7 geometry values (stride, ",
              "padding, dilation, groups), got ", values.size());
  return {{values[0], values[1]}, {values[2], values[3]}, {values[4], values[5]}, values[6]};
}

// Convolution weights in oneDNN's blocked layout for AMX/AVX512-BF16, packed once per weight
// constant: packing costs as much as the convolution (ResNet-18: 8 ms of convolutions with packed
// weights, 20 ms with packing on every call). Keyed by the constant's address; each entry holds
// the constant, so the address cannot be reused while it is cached, and entries whose constant
// nobody else holds any more (its module was freed) are dropped when the next one is added.
class PackedConvWeights {
 public:
  at::Tensor Get(const tvm::ffi::Tensor& weight, const ConvGeometry& geometry,
                 at::IntArrayRef input_size) {
    {
      // Every call after the first finds its weight: readers do not wait for each other.
      std::shared_lock<std::shared_mutex> reading(mutex_);
      auto found = entries_.find(weight.data_ptr());
      if (found != entries_.end()) return found->second.packed;
    }
    std::unique_lock<std::shared_mutex> writing(mutex_);
    auto found = entries_.find(weight.data_ptr());  // packed by another thread meanwhile
    if (found != entries_.end()) return found->second.packed;
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = it->second.weight.use_count() == 1 ? entries_.erase(it) : std::next(it);
    }
    at::Tensor packed = at::mkldnn_reorder_conv2d_weight(
        ToTorch(weight).to_mkldnn(), geometry.padding, geometry.stride, geometry.dilation,
        geometry.groups, input_size);
    entries_.emplace(weight.data_ptr(), Entry{weight, packed});
    return packed;
  }

 private:
  struct Entry {
    tvm::ffi::Tensor weight;
    at::Tensor packed;
  };
  std::shared_mutex mutex_;
  std::unordered_map<const void*, Entry> entries_;
};

// `out` = conv2d(x, weight) computed in bfloat16 by oneDNN (the kernel Inductor uses for frozen
// models), with float32 accumulation. x and out are NHWC, oneDNN's own activation layout;
// build.py passes them in bfloat16, casting in TVM's fused kernels around the call (float32
// works too, cast here). weight is bfloat16 OIHW, a constant of the module.
void Conv2dBf16(tvm::ffi::Tensor x, tvm::ffi::Tensor weight, tvm::ffi::Shape geometry_values,
                tvm::ffi::Tensor out) {
  static PackedConvWeights packed_weights;
  static const c10::OperatorHandle convolution =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "");
  c10::InferenceMode no_autograd;
  const ConvGeometry geometry = ReadGeometry(geometry_values);
  // NCHW views of NHWC memory: channels-last tensors, as ATen names that layout.
  at::Tensor input = ToTorch(x).permute({0, 3, 1, 2}).to(at::kBFloat16);
  at::Tensor packed = packed_weights.Get(weight, geometry, input.sizes());
  torch::jit::Stack stack{input,
                          packed,
                          c10::IValue(),  // bias: TVM adds it, fused with what follows
                          geometry.padding,
                          geometry.stride,
                          geometry.dilation,
                          geometry.groups,
                          std::string("none"),
                          c10::List<std::optional<at::Scalar>>(),
                          c10::IValue()};
  convolution.callBoxed(&stack);
  ToTorch(out).permute({0, 3, 1, 2}).copy_(stack.at(0).toTensor());
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef()
      .def(kMatmulFunction, Matmul)
      .def(kMatmulBf16Function, MatmulBf16)
      .def(kConv2dBf16Function, Conv2dBf16);
}

}  // namespace tvmbridge
