// What the kernel files (aten_kernels.cc, quantized_kernels.cc, onednn_kernels.cc) share: a
// convolution's geometry as build.py passes it, and the cache of weights packed once per
// constant.
#pragma once

#include <array>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include <c10/util/Exception.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>

#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {

// A convolution's geometry over `Dims` spatial axes (outermost first: depth, height, width), as
// pipeline.py passes it: stride, padding and dilation per axis, then groups.
template <size_t Dims>
struct ConvGeometryOf {
  static constexpr size_t kValues = 3 * Dims + 1;
  std::array<int64_t, Dims> stride, padding, dilation;  // read per call: no heap
  int64_t groups;
};
using ConvGeometry = ConvGeometryOf<2>;
using Conv3dGeometry = ConvGeometryOf<3>;

// The output extent along spatial `axis` of a convolution with `geometry` and a `kernel`-wide
// window over an input `size` wide: at most 0 where the window does not fit.
template <size_t Dims>
int64_t ConvOutputExtent(int64_t size, int64_t kernel, const ConvGeometryOf<Dims>& geometry,
                         size_t axis) {
  const int64_t window = geometry.dilation[axis] * (kernel - 1) + 1;
  return (size + 2 * geometry.padding[axis] - window) / geometry.stride[axis] + 1;
}

template <size_t Dims = 2>
ConvGeometryOf<Dims> ReadGeometry(const tvm::ffi::Shape& values) {
  TORCH_CHECK(values.size() == ConvGeometryOf<Dims>::kValues, "tvmbridge: a ", Dims,
              "-D convolution takes ", ConvGeometryOf<Dims>::kValues,
              " geometry values (stride, padding, dilation per axis, groups), got ", values.size());
  ConvGeometryOf<Dims> geometry;
  for (size_t axis = 0; axis < Dims; ++axis) {
    geometry.stride[axis] = values[axis];
    geometry.padding[axis] = values[Dims + axis];
    geometry.dilation[axis] = values[2 * Dims + axis];
  }
  geometry.groups = values[3 * Dims];
  return geometry;
}

// Weights in oneDNN's blocked layouts or MKL's packed form, packed once per weight constant:
// packing costs as much as the product (ResNet-18: 8 ms of convolutions with packed weights, 20
// ms with packing on every call; BERT-base's linear layers 58 -> 46 ms). Keyed by the
// constant's address; each entry holds the constant, so the address cannot be reused while it
// is cached, and entries whose constant nobody else holds any more (its module was freed) are
// dropped when the next one is added. A packed form may hold the constant too (oneDNN's plans
// keep the plain weight to pack it for new shapes), so each entry counts the references the
// cache itself holds.
template <typename Packed = at::Tensor>
class PackedWeights {
 public:
  // `pack(weight)` makes the packed form, on the first call for this constant only.
  template <typename Pack>
  Packed Get(const tvm::ffi::Tensor& weight, Pack&& pack) {
    {
      // Every call after the first finds its weight: readers do not wait for each other.
      std::shared_lock<std::shared_mutex> reading(mutex_);
      auto found = entries_.find(weight.data_ptr());
      if (found != entries_.end()) return found->second.packed;
    }
    std::unique_lock<std::shared_mutex> writing(mutex_);
    auto found = entries_.find(weight.data_ptr());  // packed by another thread meanwhile
    if (found != entries_.end()) return found->second.packed;
    for (auto it = entries_.begin(); it != entries_.end();) {
      const Entry& entry = it->second;
      it = entry.weight.use_count() <= entry.references_held ? entries_.erase(it) : std::next(it);
    }
    const auto references_before = weight.use_count();
    Packed packed = pack(ToTorch(weight));
    // What `packed` kept of the constant, and the entry's own reference.
    const auto references_held = weight.use_count() - references_before + 1;
    entries_.emplace(weight.data_ptr(), Entry{weight, packed, references_held});
    return packed;
  }

 private:
  struct Entry {
    tvm::ffi::Tensor weight;
    Packed packed;
    int64_t references_held;
  };
  std::shared_mutex mutex_;
  std::unordered_map<const void*, Entry> entries_;
};

}  // namespace tvmbridge
