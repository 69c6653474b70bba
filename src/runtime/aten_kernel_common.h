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

// A 2-D convolution's geometry, as build.py passes it: stride, padding and dilation (height,
// width), then groups.
struct ConvGeometry {
  std::array<int64_t, 2> stride, padding, dilation;  // read per call: no heap
  int64_t groups;
};

// The output extent along `axis` (0: height, 1: width) of a convolution with `geometry` and a
// `kernel`-wide window over an input `size` wide: at most 0 where the window does not fit.
inline int64_t ConvOutputExtent(int64_t size, int64_t kernel, const ConvGeometry& geometry,
                                int axis) {
  const int64_t window = geometry.dilation[axis] * (kernel - 1) + 1;
  return (size + 2 * geometry.padding[axis] - window) / geometry.stride[axis] + 1;
}

inline ConvGeometry ReadGeometry(const tvm::ffi::Shape& values) {
  TORCH_CHECK(values.size() == 7, "tvmbridge: conv2d takes 7 geometry values (stride, ",
              "padding, dilation, groups), got ", values.size());
  return {{values[0], values[1]}, {values[2], values[3]}, {values[4], values[5]}, values[6]};
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
