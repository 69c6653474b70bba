#include "tvmbridge/tvm_module.h"

#include <cstdint>
#include <unordered_map>
#include <utility>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include "runtime/private_file.h"
#include "runtime/torch_threads.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

// TVM's kernels are generated for 64-byte aligned buffers (its allocator's alignment).
constexpr uintptr_t kTvmAlignment = 64;
constexpr int kPooledAllocator = 2;  // tvm.runtime.vm.VirtualMachine.POOLED_ALLOCATOR

tvm::ffi::Function RequireFunction(const tvm::ffi::Module& module, const char* name,
                                   const char* what) {
  auto function = module->GetFunction(name);
  TORCH_CHECK(function.has_value(), "tvmbridge: ", what, " has no function '", name, "'");
  return *function;
}

// Loads a TVM library from its bytes (a private temporary file, removed once loaded) with its
// parallel loops on PyTorch's threads. It does not verify the bytes: LoadLibrary checks them
// against the artifact's metadata first.
tvm::ffi::Module LoadTvmLibrary(const void* data, size_t size) {
  try {
    // dlopen keeps the mapping after the file is removed, which PrivateFile does on scope exit.
    PrivateFile file("tvmbridge-lib", data, size);
    tvm::ffi::Module loaded = tvm::ffi::Module::LoadFromFile(file.path());
    RunParallelLoopsOnTorchThreads(file.path());
    return loaded;
  } catch (const tvm::ffi::Error& error) {
    TORCH_CHECK(false, "tvmbridge: cannot load the embedded TVM library: ", error.what());
  }
}

}  // namespace

tvm::ffi::Module TVMModule::LoadLibrary(const ArtifactMetadata& metadata,
                                        const at::Tensor& library) {
  TORCH_CHECK(library.device().is_cpu() && library.scalar_type() == at::kByte &&
                  library.dim() == 1 && library.is_contiguous(),
              "tvmbridge: the library must be a contiguous 1-D uint8 CPU tensor");
  VerifyArtifact(metadata, library.data_ptr(), library.numel());
  return LoadTvmLibrary(library.data_ptr(), library.numel());
}

std::unique_ptr<TVMModule::VirtualMachine> TVMModule::CreateVirtualMachine() const {
  try {
    auto vm = RequireFunction(loaded_library_, "vm_load_executable",
                              "the embedded library (not a TVM Relax VM executable)")()
                  .cast<tvm::ffi::Module>();
    RequireFunction(vm, "vm_initialization", "the Relax VM")(static_cast<int>(kDLCPU), 0,
                                                             kPooledAllocator);
    tvm::ffi::Function entry = RequireFunction(vm, metadata_.entry.c_str(), "the compiled module");
    return std::make_unique<VirtualMachine>(VirtualMachine{std::move(vm), std::move(entry)});
  } catch (const tvm::ffi::Error& error) {
    TORCH_CHECK(false,
                "tvmbridge: cannot start a Relax VM on the embedded library: ", error.what());
  }
}

class TVMModule::VirtualMachineLease {
 public:
  explicit VirtualMachineLease(TVMModule& owner) : owner_(owner) {
    {
      std::unique_lock<std::mutex> lock(owner_.pool_mutex_);
      owner_.machine_returned_.wait(lock, [&] {
        return !owner_.idle_machines_.empty() || owner_.machine_limit_ == 0 ||
               owner_.machines_.load() < owner_.machine_limit_;
      });
      if (!owner_.idle_machines_.empty()) {
        machine_ = std::move(owner_.idle_machines_.back());
        owner_.idle_machines_.pop_back();
        return;
      }
      owner_.machines_.fetch_add(1);  // counted now, so racing calls respect the limit
    }
    try {
      machine_ = owner_.CreateVirtualMachine();  // every VM is busy: this call gets a new one
    } catch (...) {
      owner_.machines_.fetch_sub(1);
      owner_.machine_returned_.notify_one();
      throw;
    }
  }
  ~VirtualMachineLease() {
    {
      std::lock_guard<std::mutex> lock(owner_.pool_mutex_);
      owner_.idle_machines_.push_back(std::move(machine_));
    }
    owner_.machine_returned_.notify_one();
  }
  VirtualMachineLease(const VirtualMachineLease&) = delete;
  VirtualMachineLease& operator=(const VirtualMachineLease&) = delete;

  VirtualMachine& operator*() { return *machine_; }

 private:
  TVMModule& owner_;
  std::unique_ptr<VirtualMachine> machine_;
};

void TVMModule::SetVirtualMachineLimit(int64_t limit) {
  TORCH_CHECK_VALUE(limit >= 0, "tvmbridge: the VM limit must be >= 0 (0: no limit), got ", limit);
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    machine_limit_ = limit;
  }
  machine_returned_.notify_all();
}

std::vector<TVMModule::SharedExtent> TVMModule::SharedExtents(
    const std::vector<TensorSpec>& inputs) {
  std::vector<SharedExtent> shared;
  std::unordered_map<std::string, std::pair<size_t, size_t>> first_with;  // symbol -> place
  for (size_t i = 0; i < inputs.size(); ++i) {
    for (size_t d = 0; d < inputs[i].dim_symbols.size(); ++d) {
      if (inputs[i].dim_symbols[d].empty()) continue;
      auto [first, inserted] = first_with.emplace(inputs[i].dim_symbols[d], std::pair{i, d});
      if (!inserted) shared.push_back({i, d, first->second.first, first->second.second});
    }
  }
  return shared;
}

TVMModule::TVMModule(const std::string& metadata_json, at::Tensor library)
    : metadata_(ArtifactMetadata::FromJson(metadata_json)),
      shared_extents_(SharedExtents(metadata_.inputs)),
      library_(std::move(library)),
      loaded_library_(LoadLibrary(metadata_, library_)) {
  // The first VM now, so that a library that cannot run fails at load, not at the first call.
  idle_machines_.push_back(CreateVirtualMachine());
  machines_ = 1;
}

void CheckInput(const at::Tensor& input, int64_t index, const TensorSpec& spec) {
  const std::string& name = spec.name;
  const std::vector<int64_t>& shape = spec.shape;
  const c10::ScalarType dtype = spec.dtype;
  auto expected = [&] { return spec.Describe(); };
  TORCH_CHECK_VALUE(input.defined(), "tvmbridge: input ", index, " ('", name,
                    "') is an undefined tensor; expected ", expected());
  TORCH_CHECK_VALUE(input.device().is_cpu(), "tvmbridge: input ", index, " ('", name, "') is on ",
                    input.device(), "; this module was compiled for the CPU");
  TORCH_CHECK_TYPE(input.scalar_type() == dtype, "tvmbridge: input ", index, " ('", name,
                   "') has dtype ", DtypeName(input.scalar_type()), "; expected ", expected());
  bool shape_matches = static_cast<size_t>(input.dim()) == shape.size();
  for (size_t i = 0; shape_matches && i < shape.size(); ++i) {
    shape_matches = shape[i] == kDynamicExtent || shape[i] == input.size(static_cast<int64_t>(i));
  }
  TORCH_CHECK_VALUE(shape_matches, "tvmbridge: input ", index, " ('", name, "') has shape ",
                    ShapeString(input.sizes().vec()), "; expected ", expected());
  TORCH_CHECK_VALUE(input.is_contiguous(), "tvmbridge: input ", index, " ('", name,
                    "') is not contiguous (strides ", input.strides(),
                    "); call .contiguous() on it first");
  for (size_t d = 0; d < spec.dim_ranges.size(); ++d) {
    const ExtentRange& range = spec.dim_ranges[d];
    const int64_t extent = input.size(static_cast<int64_t>(d));
    TORCH_CHECK_VALUE(range.min <= extent && extent <= range.max, "tvmbridge: input ", index, " ('",
                      name, "') has ", extent, " in dim ", d, "; this module was compiled for ",
                      range.min, "..", range.max, " there (", expected(), ")");
  }
}

at::Tensor TVMModule::PrepareInput(const at::Tensor& input, size_t index) {
  const TensorSpec& spec = metadata_.inputs[index];
  CheckInput(input, static_cast<int64_t>(index), spec);
  if (reinterpret_cast<uintptr_t>(input.data_ptr()) % kTvmAlignment != 0) {
    alignment_copies_.fetch_add(1, std::memory_order_relaxed);
    return input.clone();  // fresh storage from PyTorch's allocator is 64-byte aligned
  }
  return input;
}

namespace {

// A failed value check of the generated code (see kCheckValuesFunction) as the error PyTorch
// raises for the same input; any other failure as a c10::Error that says where it came from.
[[noreturn]] void ThrowAsTorchError(const tvm::ffi::Error& error) {
  if (error.kind() == "IndexError") TORCH_CHECK_INDEX(false, "tvmbridge: ", error.message());
  TORCH_CHECK(false, "tvmbridge: the compiled TVM function failed: ", error.kind(), ": ",
              error.message());
}

}  // namespace

std::vector<at::Tensor> TVMModule::Run(const std::vector<at::Tensor>& inputs) {
  TORCH_CHECK_VALUE(inputs.size() == metadata_.inputs.size(),
                    "tvmbridge: the compiled module "
                    "takes ",
                    metadata_.inputs.size(), " input(s) but was given ", inputs.size());
  std::vector<tvm::ffi::Any> arguments;
  arguments.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    at::Tensor prepared = PrepareInput(inputs[i], i);
    // Zero-copy: the DLPack capsule keeps `prepared` alive for as long as TVM holds it.
    arguments.emplace_back(ToTvm(prepared));
  }
  // Dims with one symbol get one extent (each input's own checks passed above).
  for (const SharedExtent& shared : shared_extents_) {
    int64_t extent = inputs[shared.input].size(static_cast<int64_t>(shared.dim));
    int64_t first = inputs[shared.first_input].size(static_cast<int64_t>(shared.first_dim));
    TORCH_CHECK_VALUE(extent == first, "tvmbridge: input ", shared.input, " ('",
                      metadata_.inputs[shared.input].name, "') has ", extent, " in dim ",
                      shared.dim, " where input ", shared.first_input, " has ", first,
                      "; both are '", metadata_.inputs[shared.input].dim_symbols[shared.dim],
                      "' in ", metadata_.inputs[shared.input].Describe());
  }
  std::vector<tvm::ffi::AnyView> views(arguments.begin(), arguments.end());
  tvm::ffi::Any result;
  try {
    VirtualMachineLease machine(*this);
    (*machine).entry.CallPacked(views.data(), static_cast<int32_t>(views.size()), &result);
  } catch (const tvm::ffi::Error& error) {
    ThrowAsTorchError(error);
  }

  std::vector<at::Tensor> outputs;
  if (auto tensor = result.try_cast<tvm::ffi::Tensor>()) {
    outputs.push_back(ToTorch(*tensor));
  } else if (auto tuple = result.try_cast<tvm::ffi::Array<tvm::ffi::Any>>()) {
    for (const tvm::ffi::Any& item : *tuple) {
      auto element = item.try_cast<tvm::ffi::Tensor>();
      TORCH_CHECK(element.has_value(), "tvmbridge: the compiled function returned a ",
                  item.GetTypeKey(), " inside its result tuple; expected tensors");
      outputs.push_back(ToTorch(*element));
    }
  } else {
    TORCH_CHECK(false, "tvmbridge: the compiled function returned a ", result.GetTypeKey(),
                "; expected a tensor or a tuple of tensors");
  }
  TORCH_CHECK(outputs.size() == metadata_.outputs.size(),
              "tvmbridge: the compiled function "
              "returned ",
              outputs.size(), " tensor(s) but its metadata lists ", metadata_.outputs.size());
  return outputs;
}

TVMModule::SerializedState TVMModule::Serialize() const {
  return {metadata_.format_version, metadata_.ToJson(), library_};
}

c10::intrusive_ptr<TVMModule> TVMModule::Deserialize(SerializedState state) {
  auto& [format_version, metadata_json, library] = state;
  TORCH_CHECK(format_version == kArtifactFormatVersion,
              "tvmbridge: the saved module has "
              "artifact format version ",
              format_version, " but this tvmbridge reads version ", kArtifactFormatVersion,
              "; recompile the model with this tvmbridge");
  return c10::make_intrusive<TVMModule>(metadata_json, std::move(library));
}

// The build's candidate libraries (build.py times them before one becomes an artifact) run
// as the runtime runs an artifact's: loaded by LoadTvmLibrary, parallel loops on PyTorch's
// threads.
TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def("tvmbridge.runtime.load_library",
                                        [](const tvm::ffi::Bytes& library) {
                                          return LoadTvmLibrary(library.data(), library.size());
                                        });
}

}  // namespace tvmbridge
