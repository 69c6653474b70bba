// PyTorch's own CPU kernels, called from generated code: TVM's build pipeline replaces the
// matrix products of a region with calls to these (see python/tvmbridge/build.py,
// _ExternalMatmul). PyTorch reaches MKL for float32 and oneDNN for bfloat16, whose AMX and
// AVX512-BF16 kernels TVM's LLVM backend cannot generate; TVM keeps everything around the
// product (bias, activations, casts) in its own fused kernels. Registered in the runtime library
// so a deployed model needs nothing else, and no Python.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// The names build.py emits the calls under.
constexpr const char* kMatmulFunction = "tvmbridge.aten.matmul";
constexpr const char* kMatmulBf16Function = "tvmbridge.aten.matmul_bf16";

// Destination-passing style, as Relax's call_dps_packed calls it: `out` = a @ b, with
// torch.matmul's broadcasting; `out` is allocated by the caller with the result's shape and
// dtype.
void Matmul(tvm::ffi::Tensor a, tvm::ffi::Tensor b, tvm::ffi::Tensor out) {
  c10::InferenceMode no_autograd;
  at::Tensor result = ToTorch(out);
  at::matmul_out(result, ToTorch(a), ToTorch(b));
}

// `out` = a @ b computed in bfloat16 (oneDNN: AMX tiles or AVX512-BF16 dot products, float32
// accumulation), whatever the dtypes of a, b and out. The casts are ATen's, vectorised; TVM's
// own bfloat16 casts run element by element.
void MatmulBf16(tvm::ffi::Tensor a, tvm::ffi::Tensor b, tvm::ffi::Tensor out) {
  c10::InferenceMode no_autograd;
  at::Tensor result = ToTorch(out);
  at::Tensor product = at::matmul(ToTorch(a).to(at::kBFloat16), ToTorch(b).to(at::kBFloat16));
  result.copy_(product);
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef()
      .def(kMatmulFunction, Matmul)
      .def(kMatmulBf16Function, MatmulBf16);
}

}  // namespace tvmbridge
