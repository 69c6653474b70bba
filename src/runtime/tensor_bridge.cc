#include "tvmbridge/tensor_bridge.h"

#include <ATen/DLConvertor.h>

namespace tvmbridge {

tvm::ffi::Tensor ToTvm(const at::Tensor& tensor) {
  return tvm::ffi::Tensor::FromDLPackVersioned(at::toDLPackVersioned(tensor),
                                               /*require_alignment=*/0,
                                               /*require_contiguous=*/true);
}

at::Tensor ToTorch(const tvm::ffi::Tensor& tensor) {
  return at::fromDLPackVersioned(tensor.ToDLPackVersioned());
}

}  // namespace tvmbridge
