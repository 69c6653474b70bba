#include "tvmbridge/save.h"

#include <sstream>
#include <string_view>

#include <c10/util/Exception.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include "runtime/private_file.h"

namespace tvmbridge {

void SaveModule(const torch::jit::Module& module, const std::string& path) {
  std::ostringstream archive;
  module.save(archive);
  const std::string_view bytes = archive.view();  // no copy of the archive
  WriteFileAtomically(path, bytes.data(), bytes.size());
}

// Python's tvmbridge.torch.save passes the archive made by ScriptModule.save_to_buffer().
TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def(
      "tvmbridge.write_file_atomically",
      [](const tvm::ffi::String& path, const tvm::ffi::Bytes& data) {
        try {
          WriteFileAtomically(std::string(path), data.data(), data.size());
        } catch (const c10::Error& error) {
          TVM_FFI_THROW(RuntimeError) << error.what_without_backtrace();
        }
      });
}

}  // namespace tvmbridge
