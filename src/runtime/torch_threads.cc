#include "runtime/torch_threads.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdint>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

namespace tvmbridge {
namespace {

// TVM's C backend ABI (tvm/runtime/c_backend_api.h): generated code calls the launcher
// through a function pointer the library exports and its loader fills in.
struct TVMParallelGroupEnv {
  void* sync_handle;
  int32_t num_task;
};
using FTVMParallelLambda = int (*)(int task_id, TVMParallelGroupEnv* penv, void* cdata);
constexpr const char* kParallelLaunchHook = "__TVMBackendParallelLaunch";
constexpr const char* kParallelBarrierHook = "__TVMBackendParallelBarrier";

// TVM's codegen asks for num_task = 0, "as many as there are threads"; each task computes its
// share of the loop from task_id and penv->num_task.
int LaunchOnTorchThreads(FTVMParallelLambda lambda, void* cdata, int num_task) {
  const int tasks = num_task > 0 ? num_task : at::get_num_threads();
  TVMParallelGroupEnv env{nullptr, tasks};
  std::atomic<int> status{0};
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      if (lambda(static_cast<int>(task), &env, cdata) != 0) status.store(-1);
    }
  });
  return status.load();
}

// The library's own handle, not a new one: dlopen of a loaded path with RTLD_NOLOAD.
class LoadedLibrary {
 public:
  explicit LoadedLibrary(const std::string& path)
      : handle_(dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {}
  ~LoadedLibrary() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;

  void* Symbol(const char* name) const {
    return handle_ == nullptr ? nullptr : dlsym(handle_, name);
  }

 private:
  void* handle_;
};

}  // namespace

void RunParallelLoopsOnTorchThreads(const std::string& library_path) {
  LoadedLibrary library(library_path);
  auto* launch_hook = static_cast<void**>(library.Symbol(kParallelLaunchHook));
  if (launch_hook == nullptr || library.Symbol(kParallelBarrierHook) != nullptr) return;
  *launch_hook = reinterpret_cast<void*>(&LaunchOnTorchThreads);
}

}  // namespace tvmbridge
