// Saving a TorchScript module without risking the file or the process.
#pragma once

#include <string>

#include <torch/csrc/jit/api/module.h>

namespace tvmbridge {

// Saves `module` to `path` as torch::jit::Module::save does, but whole or not at all: the
// archive is made in memory, then written beside `path` and renamed over it. PyTorch's own
// save writes in place, and a write that fails (a full disk) ends the process from a
// destructor. Throws c10::Error naming the path and the reason; an existing file at `path`
// is left as it was.
void SaveModule(const torch::jit::Module& module, const std::string& path);

}  // namespace tvmbridge
