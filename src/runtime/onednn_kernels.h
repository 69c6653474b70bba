// oneDNN kernels on primitives made once per weight constant and call shape
// (onednn_kernels.cc), for the ATen kernel files that dispatch to them.
#pragma once

#include <ATen/core/Tensor.h>
#include <tvm/ffi/container/tensor.h>

#include <cstdint>

namespace tvmbridge {

// x @ weight in x's dtype (bfloat16 with float32 accumulation, or float32): x [..., K], weight
// a [K, N] constant of the module of the same dtype, packed once into the layout oneDNN's
// kernel reads. Each row count gets its own primitive; where `packing_rows` > 0 (the row count
// of the shape a program over a range of shapes is optimised for), the weight is packed for it
// and other row counts read that layout too where oneDNN has a fast kernel for it.
at::Tensor OneDnnLinear(const at::Tensor& x, const tvm::ffi::Tensor& weight, int64_t packing_rows);

}  // namespace tvmbridge
