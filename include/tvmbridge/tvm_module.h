// tvmbridge.TVMModule: a compiled TVM Relax VM executable that TorchScript can hold and call.
//
// A TorchScript module produced by tvmbridge keeps one of these per compiled block and calls it
// through the op `tvmbridge::run`. The object pickles itself (metadata + the shared library)
// into the TorchScript archive, so `torch.jit.save` writes one self-contained file. Loading
// that file runs native code from the embedded library, as loading any shared library does.
#pragma once

#include <atomic>
#include <cstdint>
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

// Checks that `input` (argument `index`, called `name`) is a defined, contiguous CPU tensor of
// exactly `dtype` and `shape`; otherwise throws a c10::Error naming the input and what was
// expected. Shared by TVMModule::Run and the op tvmbridge::expect_input that guards compiled
// forwards whose first ops run in PyTorch.
void CheckInput(const at::Tensor& input, int64_t index, std::string_view name,
                c10::IntArrayRef shape, c10::ScalarType dtype);

class TVMModule : public torch::CustomClassHolder {
 public:
  // What `__getstate__` returns: (format version, metadata JSON, library bytes as uint8).
  using SerializedState = std::tuple<int64_t, std::string, at::Tensor>;

  // `library` is a 1-D uint8 CPU tensor holding the exported shared library. Verifies its
  // SHA-256 against the metadata before any of its code is loaded.
  TVMModule(const std::string& metadata_json, at::Tensor library);

  // Runs the compiled function. Inputs must match the compiled specs exactly (count, dtype,
  // shape, CPU, contiguous); otherwise a c10::Error names the input and the expectation.
  std::vector<at::Tensor> Run(const std::vector<at::Tensor>& inputs);

  const ArtifactMetadata& metadata() const { return metadata_; }
  std::string MetadataJson() const { return metadata_.ToJson(); }
  // How many inputs had to be copied because their data was not 64-byte aligned.
  int64_t AlignmentCopies() const { return alignment_copies_.load(); }

  SerializedState Serialize() const;
  static c10::intrusive_ptr<TVMModule> Deserialize(SerializedState state);

 private:
  at::Tensor PrepareInput(const at::Tensor& input, size_t index);

  // The loaded library and its VM; the library module keeps the shared object mapped.
  struct Executable {
    tvm::ffi::Module library;
    tvm::ffi::Module vm;
    tvm::ffi::Function entry;
  };
  static Executable LoadExecutable(const ArtifactMetadata& metadata, const at::Tensor& library);

  ArtifactMetadata metadata_;
  at::Tensor library_;  // kept to pickle the module again
  Executable executable_;
  std::mutex vm_mutex_;  // the Relax VM keeps per-call state
  std::atomic<int64_t> alignment_copies_{0};
};

}  // namespace tvmbridge
