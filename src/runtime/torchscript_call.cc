#include "runtime/torchscript_call.h"

#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/serialization/import.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

#include "runtime/sha256.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

constexpr size_t kDigestChars = 64;

// `bytes` (`size` of them: digest, archive) as a module, loaded once per digest.
std::shared_ptr<torch::jit::Module> LoadByDigest(const char* bytes, size_t size) {
  std::string digest(bytes, kDigestChars);
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<torch::jit::Module>> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = loaded.find(digest);
  if (found != loaded.end()) return found->second;
  const char* archive = bytes + kDigestChars;
  const size_t archive_size = size - kDigestChars;
  TORCH_CHECK(Sha256Hex(archive, archive_size) == digest, kTorchScriptRunFunction,
              ": the embedded TorchScript region does not match its SHA-256 (the compiled "
              "library is corrupt or was altered); refusing to load it");
  std::istringstream stream(std::string(archive, archive_size));
  auto module = std::make_shared<torch::jit::Module>(torch::jit::load(stream));
  return loaded.emplace(digest, std::move(module)).first->second;
}

// The region's module, loaded once per process for each digest (a digest names the content,
// so executables unloaded and loaded again, or two holding the same region, share it).
std::shared_ptr<torch::jit::Module> LoadRegion(const tvm::ffi::Tensor& packed) {
  TORCH_CHECK(packed.ndim() == 1 && packed.dtype().code == kDLUInt && packed.dtype().bits == 8 &&
                  packed.device().device_type == kDLCPU,
              kTorchScriptRunFunction,
              ": the first argument must be the region's 1-D uint8 CPU tensor");
  const size_t size = static_cast<size_t>(packed.shape()[0]);
  TORCH_CHECK(size > kDigestChars, kTorchScriptRunFunction, ": the region holds ", size,
              " bytes, too few for a digest and a TorchScript archive");
  const char* bytes = static_cast<const char*>(packed.data_ptr()) + packed.byte_offset();
  // A program calls the same region again and again: this thread's last one is found
  // without a lock or an allocation (by digest: the same address may hold another region).
  thread_local std::array<char, kDigestChars> last_digest{};
  thread_local std::shared_ptr<torch::jit::Module> last_module;
  if (last_module && std::memcmp(bytes, last_digest.data(), kDigestChars) == 0) {
    return last_module;
  }
  std::shared_ptr<torch::jit::Module> module = LoadByDigest(bytes, size);  // may throw
  std::memcpy(last_digest.data(), bytes, kDigestChars);
  last_module = module;
  return module;
}

// (region, inputs...) -> [outputs...]; tensors cross as DLPack both ways, without copies.
void RunRegion(tvm::ffi::PackedArgs args, tvm::ffi::Any* result) {
  try {
    TORCH_CHECK(args.size() >= 1, kTorchScriptRunFunction, " takes the region, then its inputs");
    std::shared_ptr<torch::jit::Module> module = LoadRegion(args[0].cast<tvm::ffi::Tensor>());
    std::vector<c10::IValue> inputs;
    inputs.reserve(static_cast<size_t>(args.size()));
    for (int i = 1; i < args.size(); ++i) {
      inputs.emplace_back(ToTorch(args[i].cast<tvm::ffi::Tensor>()));
    }
    c10::IValue output = module->forward(std::move(inputs));
    tvm::ffi::Array<tvm::ffi::Any> outputs;
    for (const c10::IValue& element : output.toTupleRef().elements()) {
      outputs.push_back(ToTvm(element.toTensor().contiguous()));
    }
    *result = outputs;
  } catch (const c10::Error& error) {
    TVM_FFI_THROW(RuntimeError) << error.what_without_backtrace();
  }
}

}  // namespace

at::Tensor PackTorchScriptRegion(const std::string& archive) {
  std::string digest = Sha256Hex(archive.data(), archive.size());
  at::Tensor packed = at::empty({static_cast<int64_t>(kDigestChars + archive.size())}, at::kByte);
  auto* bytes = static_cast<char*>(packed.data_ptr());
  std::memcpy(bytes, digest.data(), kDigestChars);
  std::memcpy(bytes + kDigestChars, archive.data(), archive.size());
  return packed;
}

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def_packed(kTorchScriptRunFunction, RunRegion);
}

}  // namespace tvmbridge
