// Kernels called from generated code for a region's matrix products and attention (see
// python/tvmbridge/build.py, _AtenKernels): PyTorch's own (MKL's packed sgemm for float32
// linear layers, ATen's matmul, its flash attention) and oneDNN's through PyTorch (packed
// linear layers; convolutions are onednn_kernels.cc's). Their AMX, AVX512-BF16 and tuned
// AVX-512 code is what TVM's LLVM backend cannot generate; TVM keeps everything around them
// (bias, normalisation, activations) in its own fused kernels. Registered in the runtime
// library so a deployed model needs nothing else, and no Python.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/InferenceMode.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "runtime/aten_kernel_common.h"
#include "runtime/onednn_kernels.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// The names build.py emits the calls under. matmul_bf16 only in libraries built before the
// packed kernels returned their results (saved modules still hold it).
constexpr const char* kMatmulFunction = "tvmbridge.aten.matmul";
constexpr const char* kPackedLinearFunction = "tvmbridge.aten.packed_linear";
constexpr const char* kOneDnnLinearFunction = "tvmbridge.aten.onednn_linear";
constexpr const char* kAttentionFunction = "tvmbridge.aten.attention";
constexpr const char* kAttentionMaskedFunction = "tvmbridge.aten.attention_masked";
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
// accumulation), whatever the dtypes of a, b and out, casting with ATen.
void MatmulBf16(tvm::ffi::Tensor a, tvm::ffi::Tensor b, tvm::ffi::Tensor out) {
  c10::InferenceMode no_autograd;
  at::Tensor result = ToTorch(out);
  at::Tensor product = at::matmul(ToTorch(a).to(at::kBFloat16), ToTorch(b).to(at::kBFloat16));
  result.copy_(product);
}

// Returns softmax(query @ key^T * scale [+ mask]) @ value as PyTorch's
// scaled_dot_product_attention computes it (on CPU a tiled, flash-attention kernel that never
// writes the scores out): query, key, value [batch, heads, steps, head_dim] of one dtype
// (float32 or bfloat16), the mask additive and broadcastable to the scores. The result is
// dense, in the operands' dtype (build.py calls this with call_pure_packed; attention.py).
tvm::ffi::Tensor Attend(const tvm::ffi::Tensor& query, const tvm::ffi::Tensor& key,
                        const tvm::ffi::Tensor& value, const std::optional<at::Tensor>& mask,
                        double scale) {
  c10::InferenceMode no_autograd;
  return ToTvm(at::scaled_dot_product_attention(ToTorch(query), ToTorch(key), ToTorch(value), mask,
                                                0.0, false, scale)
                   .contiguous());
}

tvm::ffi::Tensor Attention(tvm::ffi::Tensor query, tvm::ffi::Tensor key, tvm::ffi::Tensor value,
                           double scale) {
  return Attend(query, key, value, std::nullopt, scale);
}

tvm::ffi::Tensor AttentionMasked(tvm::ffi::Tensor query, tvm::ffi::Tensor key,
                                 tvm::ffi::Tensor value, tvm::ffi::Tensor mask, double scale) {
  return Attend(query, key, value, ToTorch(mask), scale);
}

void CheckLinearDtypes(const at::Tensor& input, const at::Tensor& weight) {
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(),
              "tvmbridge: a packed linear layer takes bfloat16 or float32 x and weight of one "
              "dtype, got ",
              input.scalar_type(), " and ", weight.scalar_type());
}

// How a program calls a linear layer: its row count fixed, or symbolic (a program over a range
// of shapes), with the row count to pack the weight for (its opt shape's; 0 where it has none).
using RowPacking = std::optional<int64_t>;

// The row count a weight is packed for: the program's where it gives one, else the first call's.
int64_t PackingRows(const at::Tensor& input, RowPacking packing) {
  return packing.value_or(0) > 0 ? *packing : input.numel() / input.size(-1);
}

// x @ weight by oneDNN (bfloat16 or float32) on weights packed once (the kernel Inductor uses
// for frozen linear layers); a packing made for one row count serves every other, at its own
// speed: packed for 1 row, BERT-base's products at 128 rows took 10% longer. Bfloat16 products
// go to onednn_kernels.cc's Bf16Linear where it prefers them (onednn_kernels.h).
at::Tensor OneDnnLinear(const char* function, const at::Tensor& input,
                        const tvm::ffi::Tensor& weight, RowPacking packing) {
  const DLDataType weight_type = weight.dtype();
  const bool bfloat16 = input.scalar_type() == at::kBFloat16 && weight_type.code == kDLBfloat &&
                        weight_type.bits == 16 && weight_type.lanes == 1;
  if (bfloat16 && PrefersOwnBf16Linear(input.numel() / input.size(-1), packing.has_value())) {
    return Bf16Linear(function, input, weight);
  }
  static PackedWeights<> packed_weights;
  static const c10::OperatorHandle linear =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  static const c10::OperatorHandle reorder =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_reorder_linear_weight", "");
  at::Tensor packed = packed_weights.Get(weight, [&](const at::Tensor& plain) {
    torch::jit::Stack stack{plain.t().contiguous(), PackingRows(input, packing)};
    reorder.callBoxed(&stack);
    return stack.at(0).toTensor();
  });
  // Checked per call: both dtypes reach this kernel, and a weight is packed once.
  CheckLinearDtypes(input, packed);
  torch::jit::Stack stack{input,
                          packed,
                          c10::IValue(),
                          std::string("none"),
                          c10::List<std::optional<at::Scalar>>(),
                          c10::IValue()};
  linear.callBoxed(&stack);
  return stack.at(0).toTensor();
}

// MKL's packed sgemm keeps its packing for one row count: calls with others run ATen's linear
// on the plain weight.
struct MklPackedWeight {
  at::Tensor packed;
  at::Tensor plain;  // [N, K], as ATen's linear takes it
  int64_t rows;
};

// x @ weight in float32 by MKL on weights packed once for one row count (the kernel Inductor
// uses for frozen float32 linear layers).
at::Tensor MklLinear(const at::Tensor& input, const tvm::ffi::Tensor& weight, RowPacking packing) {
  static PackedWeights<MklPackedWeight> packed_weights;
  static const c10::OperatorHandle linear =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkl::_mkl_linear", "");
  static const c10::OperatorHandle reorder =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkl::_mkl_reorder_linear_weight", "");
  const MklPackedWeight packed = packed_weights.Get(weight, [&](const at::Tensor& plain) {
    CheckLinearDtypes(input, plain);
    const int64_t rows = PackingRows(input, packing);
    torch::jit::Stack stack{plain.t().contiguous(), rows};
    reorder.callBoxed(&stack);
    return MklPackedWeight{stack.at(0).toTensor(), plain.t(), rows};
  });
  torch::jit::Stack stack{input, packed.packed, packed.plain, c10::IValue(), packed.rows};
  linear.callBoxed(&stack);
  return stack.at(0).toTensor();
}

// x as ATen takes it, checked against a constant [K, N] weight of the module (a linear
// layer's transposed weight, as TVM folds it): `function` names the caller in errors.
at::Tensor LinearInput(const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                       const char* function) {
  at::Tensor input = ToTorch(x);
  TORCH_CHECK(weight.ndim() == 2 && input.dim() >= 1 && input.size(-1) == weight.size(0) &&
                  weight.size(0) > 0,
              "tvmbridge: ", function, " takes x [..., K] and a weight [K, N] with K > 0, got ",
              input.sizes(), " and [", weight.size(0), ", ", weight.size(1), "]");
  TORCH_CHECK(input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kFloat,
              "tvmbridge: ", function, " takes bfloat16 or float32 x and weight of one dtype, got ",
              input.scalar_type(), " x");
  return input;
}

// The arguments of the packed linear functions: (x, weight), or (x, weight, packing rows)
// from libraries built over a range of shapes (see RowPacking).
struct LinearArguments {
  at::Tensor input;
  tvm::ffi::Tensor weight;
  RowPacking packing;
};

LinearArguments ReadLinearArguments(tvm::ffi::PackedArgs args, const char* function) {
  TORCH_CHECK(args.size() == 2 || args.size() == 3, "tvmbridge: ", function,
              " takes x, a weight and optionally the row count to pack it for, got ", args.size(),
              " arguments");
  auto weight = args[1].cast<tvm::ffi::Tensor>();
  LinearArguments read{LinearInput(args[0].cast<tvm::ffi::Tensor>(), weight, function), weight};
  if (args.size() == 3) read.packing = args[2].cast<int64_t>();
  return read;
}

// Returns x @ weight computed on the weight packed once: bfloat16 on oneDNN, float32 on MKL's
// packed sgemm. The result is the kernel's own buffer, handed to TVM without a copy (build.py
// calls this with call_pure_packed).
void PackedLinear(tvm::ffi::PackedArgs args, tvm::ffi::Any* result) {
  c10::InferenceMode no_autograd;
  LinearArguments given = ReadLinearArguments(args, kPackedLinearFunction);
  *result =
      ToTvm(given.input.scalar_type() == at::kBFloat16
                ? OneDnnLinear(kPackedLinearFunction, given.input, given.weight, given.packing)
                : MklLinear(given.input, given.weight, given.packing));
}

// PackedLinear on oneDNN for float32 too: build.py picks it where MKL's sgemm was measured
// slower (AMD CPUs with AVX-512).
void OneDnnPackedLinear(tvm::ffi::PackedArgs args, tvm::ffi::Any* result) {
  c10::InferenceMode no_autograd;
  LinearArguments given = ReadLinearArguments(args, kOneDnnLinearFunction);
  *result = ToTvm(OneDnnLinear(kOneDnnLinearFunction, given.input, given.weight, given.packing));
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef()
      .def(kMatmulFunction, Matmul)
      .def_packed(kPackedLinearFunction, PackedLinear)
      .def_packed(kOneDnnLinearFunction, OneDnnPackedLinear)
      .def(kAttentionFunction, Attention)
      .def(kAttentionMaskedFunction, AttentionMasked)
      .def(kMatmulBf16Function, MatmulBf16);
}

}  // namespace tvmbridge
