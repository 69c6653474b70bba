// enable()'s disk cache: one file per compiled group version, named by what it was compiled
// from, so that another process with the same model starts from disk.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include "tvmbridge/artifact.h"

namespace tvmbridge::groups {

// Same graph (with its constants: weights), input specs (shapes, symbols, ranges) and
// `fingerprint` (target, versions, settings): same key, in any process.
std::string CacheKey(const torch::jit::Graph& graph, const std::vector<TensorSpec>& inputs,
                     const std::string& fingerprint);

// The module stored under `key` in `folder`; nullopt when there is none, or when it cannot be
// read (with a warning: it is compiled again).
std::optional<torch::jit::Module> LoadFromCache(const std::string& folder, const std::string& key);

// Readers see the old file or the whole new one, never a part. Failure costs the cache entry
// only (a warning).
void StoreInCache(const std::string& folder, const std::string& key, const std::string& archive);

}  // namespace tvmbridge::groups
