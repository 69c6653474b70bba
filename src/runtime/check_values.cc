// tvmbridge.check_values: the run-time check generated code calls before it reads or writes
// through caller-sent values (see kCheckValuesFunction in tvm_module.h). Registered here, in
// the runtime library, so that compiled models check their inputs wherever they run, in C++
// serving without Python too, and no check takes the GIL.
#include <sstream>
#include <string>

#include <ATen/core/Tensor.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include "tvmbridge/tensor_bridge.h"
#include "tvmbridge/tvm_module.h"

namespace tvmbridge {
namespace {

at::Tensor ScalarArgument(const tvm::ffi::AnyView& value, int index) {
  auto tensor = value.try_cast<tvm::ffi::Tensor>();
  if (!tensor || !tensor->defined()) {
    TVM_FFI_THROW(TypeError) << kCheckValuesFunction << ": argument " << index
                             << " must be a tensor, got " << value.GetTypeKey();
  }
  at::Tensor scalar = ToTorch(*tensor);
  if (scalar.numel() != 1) {
    TVM_FFI_THROW(ValueError) << kCheckValuesFunction << ": argument " << index
                              << " must hold one value, got " << scalar.numel();
  }
  return scalar;
}

// (condition, error_kind, format, format_args...)
void CheckValues(tvm::ffi::PackedArgs args, tvm::ffi::Any* result) {
  if (args.size() < 3) {
    TVM_FFI_THROW(TypeError) << kCheckValuesFunction << " takes (condition, error_kind, format, "
                             << "format_args...), got " << args.size() << " arguments";
  }
  *result = tvm::ffi::Any();
  if (ScalarArgument(args[0], 0).item<bool>()) return;
  std::string format(args[2].cast<tvm::ffi::String>());
  std::ostringstream message;
  size_t from = 0;
  for (int i = 3; i < args.size(); ++i) {
    size_t at = format.find("{}", from);
    if (at == std::string::npos) break;
    at::Tensor value = ScalarArgument(args[i], i);
    message << format.substr(from, at - from);
    if (c10::isFloatingType(value.scalar_type())) {
      message << value.item<double>();
    } else {
      message << value.item<int64_t>();
    }
    from = at + 2;
  }
  message << format.substr(from);
  // The backtrace would point here, not at the op the check guards: the message names that.
  throw tvm::ffi::Error(std::string(args[1].cast<tvm::ffi::String>()), message.str(), "");
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def_packed(kCheckValuesFunction, CheckValues);
}

}  // namespace tvmbridge
