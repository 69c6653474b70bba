// oneDNN primitives made once per weight constant and call shape, then kept: the machinery of
// the kernels that call oneDNN directly (onednn_kernels.cc's float convolutions and its int8
// convolutions and linear layers).
//
// PyTorch reaches the same kernels, but builds oneDNN's primitive descriptor on every call:
// 25-35 us per convolution before any arithmetic (measured on a Zen 4). The oneDNN here is the
// onednn-cpu-gomp wheel's (3.2; the torch wheel hides its copy's symbols); its OpenMP is the
// libgomp libtorch has loaded, so it runs on PyTorch's threads.
#pragma once

#include <ATen/ATen.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tvmbridge {
namespace onednn {

using dnnl::memory;

const dnnl::engine& CpuEngine();

// True where oneDNN runs int8 and bfloat16 products on AMX tiles on this CPU (and the OS lets
// it).
bool HasAmx();

// The argument sets of a plan's finished calls, each reused by a later call (one set per call
// running at once): a call then makes no oneDNN memory objects and no map entries of its own,
// only sets their data handles.
class ArgumentPool {
 public:
  using Arguments = std::unordered_map<int, memory>;

  // An idle set, or none where every set is in use (the caller makes one).
  std::unique_ptr<Arguments> Take();
  void Return(std::unique_ptr<Arguments> arguments);

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Arguments>> idle_;
};

// One primitive for one call shape: what it reads and writes, the weight in the layout its
// kernel reads, the size of the scratch memory each call gives it, its bias's layout and that of
// the tensor its first post-op adds (each empty where it takes none).
struct Plan {
  dnnl::primitive primitive;
  memory::desc source, destination, scratchpad, bias, addend;
  memory weight;
  std::string implementation;  // oneDNN's name for the kernel, as impl_info_str() gives it
  std::unique_ptr<ArgumentPool> arguments = std::make_unique<ArgumentPool>();
};

// A primitive descriptor for one call shape, before its weight is packed. Made with
// ScratchpadPerThread().
struct Described {
  dnnl::primitive_desc descriptor;
  memory::desc source, destination;
};

// What a primitive is made for besides its weight: for a convolution the input's batch and
// spatial extents, and the stride, padding and dilation per spatial axis (one weight constant
// is one convolution, but nothing stops two from sharing it), and which of its kernel's
// variants, then 1 where its input holds NaN or infinity (some kernels get those wrong:
// onednn_kernels.cc); for a linear layer its row count.
using PlanKey = std::array<int64_t, 17>;

// Primitives take their scratch memory from the calling thread (user mode), so threads can run
// one primitive at once: in the default mode, a oneDNN built for concurrent execution gives each
// primitive one scratchpad, which two threads would share.
dnnl::primitive_attr ScratchpadPerThread();

// The plans of one weight constant, one per call shape (a program over a range of shapes meets
// several). A new shape's primitive first tries a layout the weight is packed in already, so the
// weight is packed once; only where oneDNN has no fast kernel for that layout does it get its
// own.
class WeightPlans {
 public:
  WeightPlans(at::Tensor plain, memory::desc plain_layout)
      : plain_(plain.contiguous()),
        plain_layout_(std::move(plain_layout)),
        plain_dims_(plain_layout_.get_dims()) {}

  // `describe(weight_layout)` makes the primitive descriptor for `key`'s shape, the weight in
  // `weight_layout` (format_tag::any: oneDNN's choice); it throws dnnl::error where oneDNN has
  // no kernel for that layout.
  template <typename Describe>
  std::shared_ptr<const Plan> Get(const PlanKey& key, Describe&& describe) {
    {
      // Every call after a shape's first finds its plan: readers do not wait for each other.
      std::shared_lock<std::shared_mutex> reading(mutex_);
      auto found = plans_.find(key);
      if (found != plans_.end()) return found->second;
    }
    std::unique_lock<std::shared_mutex> writing(mutex_);
    auto found = plans_.find(key);  // made by another thread meanwhile
    if (found != plans_.end()) return found->second;
    auto plan = std::make_shared<const Plan>(Make(describe));
    plans_.emplace(key, plan);
    return plan;
  }

  const memory::desc& plain_layout() const { return plain_layout_; }
  // plain_layout()'s dims, kept: memory::desc::get_dims() makes a vector per call.
  const memory::dims& plain_dims() const { return plain_dims_; }

 private:
  template <typename Describe>
  Plan Make(Describe& describe) {
    for (const memory& packed : packed_) {
      std::optional<Described> described;
      try {
        described = describe(packed.get_desc());
      } catch (const dnnl::error&) {
        continue;  // no kernel reads this layout for this shape
      }
      // oneDNN's reference kernels take any layout, at a fraction of the speed.
      if (std::string_view(described->descriptor.impl_info_str()).substr(0, 3) == "ref") continue;
      return Finish(std::move(*described), packed);
    }
    Described described = describe(memory::desc(
        plain_layout_.get_dims(), plain_layout_.get_data_type(), memory::format_tag::any));
    memory packed = Pack(described.descriptor.weights_desc());
    packed_.push_back(packed);
    return Finish(std::move(described), packed);
  }

  // The plain weight reordered into `layout`.
  memory Pack(const memory::desc& layout) const;

  static Plan Finish(Described described, const memory& weight);

  at::Tensor plain_;
  memory::desc plain_layout_;
  memory::dims plain_dims_;
  std::vector<memory> packed_;
  std::shared_mutex mutex_;
  std::map<PlanKey, std::shared_ptr<const Plan>> plans_;
};

// Runtime arguments of a call beyond its source, weight, destination, bias and scratch memory
// (per-output scales), keyed by oneDNN's argument ids.
using ExtraArguments = std::initializer_list<std::pair<int, memory>>;

// The argument id of the tensor a plan's first post-op adds (oneDNN's binary post-op).
constexpr int kAddendArgument = DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1;

// Runs `plan` reading `source` and writing `destination` (memory of the plan's layouts), adding
// the `bias` and the `addend` at those addresses where the plan takes them, with `extra`
// arguments.
void Execute(const Plan& plan, void* source, void* destination, const void* bias = nullptr,
             ExtraArguments extra = {}, const void* addend = nullptr);

}  // namespace onednn
}  // namespace tvmbridge
