# Locates libtorch, tvm-ffi and the TVM runtime inside the Python environment's wheels.
#
# We do not use TorchConfig.cmake: the pinned torch wheel is a CUDA build whose config looks
# for a CUDA toolkit, and the runtime needs only libtorch_cpu and c10.

find_package(Python3 REQUIRED COMPONENTS Interpreter)

# `code` must not contain ';' (CMake would split it into a list): use newlines.
function(tvmbridge_python_query out code)
  execute_process(COMMAND "${Python3_EXECUTABLE}" -c "${code}"
    OUTPUT_VARIABLE value OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tvmbridge: '${Python3_EXECUTABLE} -c ${code}' failed; is the virtual "
                        "environment set up (make venv)?")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

tvmbridge_python_query(TORCH_ROOT
  "import os, torch\nprint(os.path.realpath(os.path.dirname(torch.__file__)))")
tvmbridge_python_query(TORCH_CXX11_ABI
  "import torch\nprint(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
tvmbridge_python_query(TVM_FFI_ROOT
  "import os, tvm_ffi\nprint(os.path.realpath(os.path.dirname(tvm_ffi.__file__)))")
# Importing tvm itself would load the 250 MB compiler; find the package directory only.
tvmbridge_python_query(TVM_ROOT
  "import importlib.util as u, os\nprint(os.path.realpath(os.path.dirname(u.find_spec('tvm').origin)))")

add_library(tvmbridge::torch INTERFACE IMPORTED)
target_include_directories(tvmbridge::torch SYSTEM INTERFACE
  "${TORCH_ROOT}/include" "${TORCH_ROOT}/include/torch/csrc/api/include")
target_compile_definitions(tvmbridge::torch INTERFACE
  _GLIBCXX_USE_CXX11_ABI=${TORCH_CXX11_ABI})
target_link_libraries(tvmbridge::torch INTERFACE
  "${TORCH_ROOT}/lib/libtorch_cpu.so" "${TORCH_ROOT}/lib/libc10.so")

# libtvm_runtime_extra holds runtime functions that compiled code calls by name (for example
# tvm.contrib.sort.topk, which topk lowers to): without it a model runs in Python, where
# TVM's compiler loads it, but not from C++ alone.
add_library(tvmbridge::tvm_runtime INTERFACE IMPORTED)
target_include_directories(tvmbridge::tvm_runtime SYSTEM INTERFACE "${TVM_FFI_ROOT}/include")
target_link_libraries(tvmbridge::tvm_runtime INTERFACE -Wl,--no-as-needed
  "${TVM_FFI_ROOT}/lib/libtvm_ffi.so" "${TVM_ROOT}/lib/libtvm_runtime.so"
  "${TVM_ROOT}/lib/libtvm_runtime_extra.so" -Wl,--as-needed)

# oneDNN as the onednn-cpu-gomp and onednn-devel-cpu-gomp wheels install it, into the
# environment's lib/ and include/ (the torch wheel's own copy hides its symbols). Its OpenMP is
# libgomp.so.1, which resolves to the copy libtorch has loaded: one thread pool.
tvmbridge_python_query(ENVIRONMENT_ROOT "import os, sys\nprint(os.path.realpath(sys.prefix))")
# Plain variables, not find_library's cache entries: a new environment must not keep the old
# one's paths.
set(ONEDNN_INCLUDE_DIR "${ENVIRONMENT_ROOT}/include")
set(ONEDNN_LIBRARY "${ENVIRONMENT_ROOT}/lib/libdnnl.so.3")
if(NOT EXISTS "${ONEDNN_INCLUDE_DIR}/oneapi/dnnl/dnnl.hpp" OR NOT EXISTS "${ONEDNN_LIBRARY}")
  message(FATAL_ERROR "tvmbridge: oneDNN not found in ${ENVIRONMENT_ROOT}; install "
                      "requirements.txt (onednn-cpu-gomp, onednn-devel-cpu-gomp)")
endif()
add_library(tvmbridge::onednn INTERFACE IMPORTED)
target_include_directories(tvmbridge::onednn SYSTEM INTERFACE "${ONEDNN_INCLUDE_DIR}")
target_link_libraries(tvmbridge::onednn INTERFACE "${ONEDNN_LIBRARY}")

# Binaries find the wheels' libraries where they are: the environment is part of the install.
set(TVMBRIDGE_LIBRARY_DIRS
    "${TORCH_ROOT}/lib;${TVM_FFI_ROOT}/lib;${TVM_ROOT}/lib;${ENVIRONMENT_ROOT}/lib")
set(CMAKE_BUILD_RPATH "$ORIGIN;${TVMBRIDGE_LIBRARY_DIRS}")
set(CMAKE_INSTALL_RPATH "$ORIGIN;${TVMBRIDGE_LIBRARY_DIRS}")

# TensorFlow, optional: TVMDSOOp (libtvmbridge_tf.so) is built when the environment has it.
# The paths are what tf.sysconfig reports, found without importing TensorFlow (seconds).
tvmbridge_python_query(TF_ROOT
  "import importlib.util as u, os\ns = u.find_spec('tensorflow')\nprint(os.path.realpath(os.path.dirname(s.origin)) if s else '')")
