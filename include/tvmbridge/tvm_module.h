// tvmbridge.TVMModule: a compiled TVM Relax VM executable that TorchScript can hold and call.
//
// A TorchScript module produced by tvmbridge keeps one of these per compiled block and calls it
// through the op `tvmbridge::run`. The object pickles itself (metadata + the shared library)
// into the TorchScript archive, so `torch.jit.save` writes one self-contained file. Loading
// that file runs native code from the embedded library, as loading any shared library does.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "tvmbridge/artifact.h"

namespace tvmbridge {

// Checks that `input` (argument `index`) is a defined, contiguous CPU tensor of exactly the
// spec's dtype and shape, its dynamic extents within their ranges; otherwise throws a
// c10::Error naming the input and what was expected. Shared by TVMModule::Run and the op
// tvmbridge::expect_input that guards every compiled forward.
void CheckInput(const at::Tensor& input, int64_t index, const TensorSpec& spec);

// Generated code checks the values that select memory (indices, integer divisors) before it
// uses them, by calling this packed function, which this library registers (so a deployed
// model needs nothing else, and no Python):
//   tvmbridge.check_values(condition: 0-d bool tensor, error_kind: str, format: str,
//                          format_args: 0-d tensors...)
// When `condition` is false it raises a tvm-ffi error of `error_kind` ("IndexError",
// "RuntimeError"), its message `format` with each "{}" replaced by the next argument's value.
// TVMModule::Run turns an IndexError into c10::IndexError, as PyTorch raises for the same input;
// under plain TVM (from_torchscript's modules) it reaches Python as IndexError.
inline constexpr const char* kCheckValuesFunction = "tvmbridge.check_values";

class TVMModule : public torch::CustomClassHolder {
 public:
  // What `__getstate__` returns: (format version, metadata JSON, library bytes as uint8).
  using SerializedState = std::tuple<int64_t, std::string, at::Tensor>;

  // `library` is a 1-D uint8 CPU tensor holding the exported shared library. Verifies its
  // SHA-256 against the metadata before any of its code is loaded.
  TVMModule(const std::string& metadata_json, at::Tensor library);

  // Runs the compiled function. Inputs must match the compiled specs exactly (count, dtype,
  // shape, CPU, contiguous); otherwise a c10::Error names the input and the expectation.
  // An index out of range raises c10::IndexError; the module keeps working.
  std::vector<at::Tensor> Run(const std::vector<at::Tensor>& inputs);

  const ArtifactMetadata& metadata() const { return metadata_; }
  std::string MetadataJson() const { return metadata_.ToJson(); }
  // How many inputs had to be copied because their data was not 64-byte aligned.
  int64_t AlignmentCopies() const { return alignment_copies_.load(); }
  // How many Relax VMs the module holds: one, plus one per call that ran while all others
  // were busy (the most concurrent calls seen so far).
  int64_t VirtualMachines() const { return machines_.load(); }
  // At most `limit` VMs (>= 1; 0: no limit, the default); calls beyond it wait for one.
  // A limit of 1 serialises calls; each VM holds its own memory pool.
  void SetVirtualMachineLimit(int64_t limit);

  SerializedState Serialize() const;
  static c10::intrusive_ptr<TVMModule> Deserialize(SerializedState state);

 private:
  at::Tensor PrepareInput(const at::Tensor& input, size_t index);

  // One Relax VM over the loaded library. A VM keeps a call's state (registers, its memory
  // pool), so concurrent calls each take one from the pool; the library is shared.
  struct VirtualMachine {
    tvm::ffi::Module vm;
    tvm::ffi::Function entry;
  };
  // Returns the VM to the pool when the call is over, also when it threw.
  class VirtualMachineLease;

  // Checks the library (digest, CPU features) and loads it.
  static tvm::ffi::Module LoadLibrary(const ArtifactMetadata& metadata, const at::Tensor& library);
  std::unique_ptr<VirtualMachine> CreateVirtualMachine() const;

  // A dynamic dim whose symbol an earlier dim already has: both must get one extent.
  struct SharedExtent {
    size_t input, dim, first_input, first_dim;
  };
  static std::vector<SharedExtent> SharedExtents(const std::vector<TensorSpec>& inputs);

  ArtifactMetadata metadata_;
  std::vector<SharedExtent> shared_extents_;  // from metadata_, for each call's check
  at::Tensor library_;                        // kept to pickle the module again
  tvm::ffi::Module loaded_library_;
  std::mutex pool_mutex_;
  std::condition_variable machine_returned_;
  std::vector<std::unique_ptr<VirtualMachine>> idle_machines_;
  std::atomic<int64_t> machines_{0};
  int64_t machine_limit_ = 0;  // guarded by pool_mutex_
  std::atomic<int64_t> alignment_copies_{0};
};

}  // namespace tvmbridge
