#include "compiler/group_cache.h"

#include <filesystem>
#include <sstream>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/serialization/import.h>

#include "frontend/converter.h"
#include "runtime/private_file.h"
#include "runtime/sha256.h"

namespace tvmbridge::groups {
namespace {

std::filesystem::path PathOf(const std::string& folder, const std::string& key) {
  return std::filesystem::path(folder) / (key + ".pt");
}

std::string TensorDigest(const at::Tensor& tensor) {
  at::Tensor dense = tensor.contiguous();
  std::ostringstream text;
  text << dense.scalar_type() << dense.sizes() << ":"
       << Sha256Hex(dense.data_ptr(), dense.nbytes());
  return text.str();
}

}  // namespace

std::string CacheKey(const torch::jit::Graph& graph, const std::vector<TensorSpec>& inputs,
                     const std::string& fingerprint) {
  std::ostringstream text;
  text << fingerprint << "\n" << graph;
  for (const TensorSpec& spec : inputs) {
    text << spec.dtype << c10::IntArrayRef(spec.shape);
    for (size_t d = 0; d < spec.dim_symbols.size(); ++d) {
      const ExtentRange& range = spec.dim_ranges.at(d);
      text << "|" << spec.dim_symbols[d] << ":" << range.min << ".." << range.opt << ".."
           << range.max;
    }
  }
  for (const torch::jit::Node* node : graph.nodes()) {
    if (node->kind() != c10::prim::Constant) continue;
    auto constant = torch::jit::toIValue(node->output());
    if (constant && constant->isTensor()) text << TensorDigest(constant->toTensor());
  }
  std::string bytes = text.str();
  return Sha256Hex(bytes.data(), bytes.size());
}

std::optional<torch::jit::Module> LoadFromCache(const std::string& folder, const std::string& key) {
  const std::filesystem::path path = PathOf(folder, key);
  if (!std::filesystem::exists(path)) return std::nullopt;
  try {
    return torch::jit::load(path.string());
  } catch (const std::exception& error) {
    TORCH_WARN("tvmbridge: ignoring the unreadable cache file ", path.string(), ": ",
               frontend::ErrorText(error));
    return std::nullopt;
  }
}

void StoreInCache(const std::string& folder, const std::string& key, const std::string& archive) {
  const std::filesystem::path path = PathOf(folder, key);
  std::error_code error;
  // A new cache folder is the user's alone: the files in it are loaded as native code.
  if (std::filesystem::create_directories(path.parent_path(), error)) {
    std::filesystem::permissions(path.parent_path(), std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, error);
  }
  try {
    WriteFileAtomically(path.string(), archive.data(), archive.size(), 0600);
  } catch (const c10::Error& failure) {
    TORCH_WARN("tvmbridge: could not store a compiled group in the cache (",
               failure.what_without_backtrace(), "); it is compiled again in the next process");
  }
}

}  // namespace tvmbridge::groups
