// The int8 kernels of onednn_kernels.cc, which quantized_kernels.cc calls where the CPU runs
// them faster than PyTorch's (see there).
#pragma once

#include <ATen/ATen.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>

#include <cstdint>

namespace tvmbridge {

// quantize(conv2d(dequantize(x), dequantize(weight)) + bias [relu]) for uint8 NHWC x on the
// grid (input_scale, input_zero_point) and a uint8 NHWC result on (output_scale,
// output_zero_point): u8 x s8 -> s32 products, requantized in the kernel. `weight` is a
// constant OIHW int8 tensor quantized per output channel with `weight_scales` (zero points 0),
// `bias` float32; `geometry` as ReadGeometry reads it. On a oneDNN primitive made once per
// weight and input shape.
at::Tensor Int8Convolution(const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                           const tvm::ffi::Tensor& weight_scales, const tvm::ffi::Tensor& bias,
                           const tvm::ffi::Shape& geometry, double input_scale,
                           int64_t input_zero_point, double output_scale, int64_t output_zero_point,
                           bool relu);

// dequantize(rows) @ dequantize(weight).T + bias in float32, for uint8 `rows` [M, K] on the
// grid (input_scale, input_zero_point) and a constant int8 `weight` [N, K] quantized per output
// with `weight_scales` (zero points 0), `bias` float32 [N]: u8 x s8 -> s32 products scaled to
// float32 in the kernel, on a oneDNN primitive made once per weight and row count.
at::Tensor Int8Linear(const at::Tensor& rows, float input_scale, int32_t input_zero_point,
                      const tvm::ffi::Tensor& weight, const tvm::ffi::Tensor& weight_scales,
                      const tvm::ffi::Tensor& bias);

}  // namespace tvmbridge
