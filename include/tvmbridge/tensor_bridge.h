// Zero-copy tensor hand-over between PyTorch and TVM through DLPack.
#pragma once

#include <ATen/core/Tensor.h>
#include <tvm/ffi/container/tensor.h>

namespace tvmbridge {

// The TVM tensor shares `tensor`'s memory and keeps it alive. `tensor` must be contiguous.
tvm::ffi::Tensor ToTvm(const at::Tensor& tensor);
// The PyTorch tensor shares `tensor`'s memory and keeps it alive.
at::Tensor ToTorch(const tvm::ffi::Tensor& tensor);

}  // namespace tvmbridge
