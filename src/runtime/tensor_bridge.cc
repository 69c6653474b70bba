#include "tvmbridge/tensor_bridge.h"

#include <ATen/DLConvertor.h>

#include <vector>

namespace tvmbridge {

namespace {

// A contiguous tensor with no elements, with the strides TVM calls compact: PyTorch counts
// a 0 extent as 1 when it makes strides ([2, 0]: (1, 1)), TVM multiplies by it ((0, 1)), and
// refuses the other as "expected to be compact array".
at::Tensor WithCompactStrides(const at::Tensor& empty) {
  std::vector<int64_t> strides(static_cast<size_t>(empty.dim()));
  int64_t step = 1;
  for (int64_t d = empty.dim() - 1; d >= 0; --d) {
    strides[static_cast<size_t>(d)] = step;
    step *= empty.size(d);
  }
  return empty.as_strided(empty.sizes(), strides);
}

}  // namespace

tvm::ffi::Tensor ToTvm(const at::Tensor& tensor) {
  const at::Tensor& compact =
      tensor.numel() == 0 && tensor.is_contiguous() ? WithCompactStrides(tensor) : tensor;
  return tvm::ffi::Tensor::FromDLPackVersioned(at::toDLPackVersioned(compact),
                                               /*require_alignment=*/0,
                                               /*require_contiguous=*/true);
}

at::Tensor ToTorch(const tvm::ffi::Tensor& tensor) {
  return at::fromDLPackVersioned(tensor.ToDLPackVersioned());
}

}  // namespace tvmbridge
