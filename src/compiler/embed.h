// Puts a compiled TVM library back into TorchScript.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "tvmbridge/artifact.h"

namespace tvmbridge {

// A TorchScript module whose forward(<inputs>) calls tvmbridge::run on one TVMModule built
// from `metadata` and `library` (uint8 bytes of the exported shared library); returned as the
// bytes torch.jit.save would write.
std::string EmbedAsTorchScript(const ArtifactMetadata& metadata, const at::Tensor& library);

}  // namespace tvmbridge
