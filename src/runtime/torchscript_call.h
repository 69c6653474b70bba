// TorchScript called from a TVM program: the packed function `tvmbridge.torchscript.run`
// (registered in tvm-ffi's registry when this runtime library loads) and the format of the
// region it runs.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace tvmbridge {

constexpr const char* kTorchScriptRunFunction = "tvmbridge.torchscript.run";

// The first argument of a call: a 1-D uint8 tensor holding the 64 hex characters of the
// SHA-256 of `archive` (a TorchScript module whose forward takes tensors and returns a tuple
// of tensors, as torch.jit.save writes it), then `archive`. The runtime checks the digest
// before loading and keeps one loaded module per digest.
at::Tensor PackTorchScriptRegion(const std::string& archive);

}  // namespace tvmbridge
