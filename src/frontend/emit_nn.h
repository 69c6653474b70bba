// Layers that several converter families emit: the float ops and their quantized forms.
#pragma once

#include <cstddef>
#include <optional>

#include "frontend/converter.h"

namespace tvmbridge::frontend {

// PyTorch gives one padding per spatial dim (or one for all); Relax wants begin and end pads.
relax::IntList SymmetricPadding(relax::IntList padding, size_t spatial_dims);
// A per-dim argument (kernel_size, stride, ...) given once or once per spatial dim, made one
// per spatial dim; `what` names it in the error.
relax::IntList PerSpatialDim(relax::IntList values, size_t spatial_dims, const char* what);

struct ConvGeometry {
  relax::IntList strides;
  relax::IntList padding;  // begin pads of every spatial dim, then end pads
  relax::IntList dilation;
  relax::IntList output_padding;  // transposed only
  int64_t groups = 1;
  bool transposed = false;

  // The same padding before and after (PyTorch's one value per spatial dim).
  static ConvGeometry Symmetric(size_t spatial_dims, const relax::IntList& strides,
                                const relax::IntList& padding, const relax::IntList& dilation,
                                int64_t groups);
};

// A 1-, 2- or 3-d convolution (or transposed convolution) of `data` (N, C, ...) with `weight`
// in PyTorch's layout, plus `bias` (one value per output channel) when given.
relax::Expr EmitConv(ConversionContext& ctx, const relax::Expr& data, const relax::Expr& weight,
                     const std::optional<relax::Expr>& bias, const ConvGeometry& geometry);

}  // namespace tvmbridge::frontend
