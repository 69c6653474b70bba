// libFuzzer target over loading a whole saved compiled module (torch::jit::load of the bytes,
// which unpickles TVMModule through its __setstate__). Seeded with a real compiled module:
// mutations reach PyTorch's zip reader and unpickler as well as tvmbridge's checks. Every
// malformed file must end in a c10::Error (or std::exception), never a crash; a mutated file
// that still loads has passed tvmbridge's integrity checks.
#include <cstdint>
#include <exception>
#include <sstream>
#include <string>

#include <torch/script.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream file(std::string(reinterpret_cast<const char*>(data), size));
  try {
    torch::jit::Module module = torch::jit::load(file);
  } catch (const std::exception&) {
  }
  return 0;
}
