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

// Whether FewRowsLinear should compute a bfloat16 linear layer of `rows` rows instead of
// PyTorch's oneDNN, which takes its AMX kernel whatever the row count: on AMX CPUs, for a single
// row (a classifier's head at batch 1, a decoder's step). There the product reads each weight
// once and does little else, and the AMX kernel's speed swings: on a 2-core AMX Xeon VM (oneDNN
// 3.2, interleaved, bfloat16 weights from 512 x 1000 to 25088 x 4096) it read the weight at
// 11 GB/s in some runs and 27 GB/s in others, minutes apart, while the AVX512-BF16 kernel read
// it at 22-27 GB/s in both: 0.51-0.55x the AMX kernel's time in the slow runs, 0.98-1.15x in
// the fast ones. From 2 rows on, AMX tiles pay off: at 2 rows the AVX512-BF16 kernel took up to
// 2x AMX's time on weights in cache.
bool PrefersFewRowsLinear(int64_t rows);

// x @ weight for bfloat16 x [..., K] (contiguous) and a constant bfloat16 weight [K, N], on
// oneDNN's first kernel other than its AMX one, made once per weight and row count. `kernel`
// names the caller in errors. Returns the result [..., N], bfloat16.
at::Tensor FewRowsLinear(const char* kernel, const at::Tensor& input,
                         const tvm::ffi::Tensor& weight);

}  // namespace tvmbridge
