// The int8 kernels of onednn_kernels.cc, which quantized_kernels.cc calls where the CPU runs
// them faster than PyTorch's (see there).
#pragma once

#include <ATen/ATen.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>

#include <cstdint>
#include <optional>

namespace tvmbridge {

// The grid of a uint8 tensor: value = scale * (integer - zero_point).
struct QuantizationGrid {
  double scale;
  int64_t zero_point;
};

// What an int8 convolution makes of its products and bias.
struct Int8ConvolutionOutput {
  explicit Int8ConvolutionOutput(const char* kernel) : kernel(kernel) {}

  const char* kernel;  // the name errors give
  // uint8 on this grid; without one, float32 values.
  std::optional<QuantizationGrid> grid;
  bool relu = false;  // applied before quantizing
  // A uint8 NHWC tensor of the result's shape, on residual_grid, added before the ReLU.
  std::optional<at::Tensor> residual;
  QuantizationGrid residual_grid{1.0, 0};
};

// conv2d(dequantize(x), dequantize(weight)) + bias, for uint8 NHWC x on `input_grid`, as
// `output` says: u8 x s8 -> s32 products, requantized in the kernel. `weight` is a constant OIHW
// int8 tensor quantized per output channel with `weight_scales` (zero points 0), `bias`
// float32 (none: zeros); `geometry` as ReadGeometry reads it. On a oneDNN primitive made once
// per weight and input shape. Returns the NHWC result.
at::Tensor Int8Convolution(const tvm::ffi::Tensor& x, const tvm::ffi::Tensor& weight,
                           const tvm::ffi::Tensor& weight_scales,
                           const std::optional<tvm::ffi::Tensor>& bias,
                           const tvm::ffi::Shape& geometry, QuantizationGrid input_grid,
                           const Int8ConvolutionOutput& output);

// dequantize(rows) @ dequantize(weight).T + bias in float32, for uint8 `rows` [M, K] on
// `input_grid` and a constant int8 `weight` [N, K] quantized per output with `weight_scales`
// (zero points 0), `bias` float32 [N] (none: zeros): u8 x s8 -> s32 products scaled to float32
// in the kernel, on a oneDNN primitive made once per weight and row count. `kernel` names the
// caller in errors.
at::Tensor Int8Linear(const char* kernel, const at::Tensor& rows, QuantizationGrid input_grid,
                      const tvm::ffi::Tensor& weight, const tvm::ffi::Tensor& weight_scales,
                      const std::optional<tvm::ffi::Tensor>& bias);

// Whether Bf16Linear should compute a bfloat16 linear layer of `rows` rows instead of PyTorch's
// oneDNN: on AMX CPUs, where the program's row count is fixed (`symbolic_rows` false) or is 1.
// PyTorch's kernel makes oneDNN's descriptors and attributes on every call, 15 us and more,
// most of a small product's time; Bf16Linear makes its primitive once per row count, which a
// symbolic row count would multiply, so those stay PyTorch's (one packing serves them all).
bool PrefersOwnBf16Linear(int64_t rows, bool symbolic_rows);

// x @ weight for bfloat16 x [..., K] (contiguous) and a constant bfloat16 weight [K, N], on a
// oneDNN primitive made once per weight and row count. A single row runs oneDNN's first kernel
// other than its AMX one (AVX512-BF16): such a product only streams its weight, and on an AMX
// Xeon VM the AMX kernel's speed swung between runs minutes apart, reading the weight at 11 GB/s
// in some and 27 GB/s in others, the AVX512-BF16 kernel at 22-27 GB/s in both. `kernel` names
// the caller in errors. With `gelu_bias` (float32 [N]), returns GELU(x @ weight + gelu_bias),
// GELU's erf form, computed in oneDNN's kernel where the input cannot make NaN or infinity (as
// PyTorch's GELU keeps and makes them, ATen's GELU follows the product otherwise). Returns the
// result [..., N], bfloat16.
at::Tensor Bf16Linear(const char* kernel, const at::Tensor& input, const tvm::ffi::Tensor& weight,
                      const tvm::ffi::Tensor* gelu_bias = nullptr);

}  // namespace tvmbridge
