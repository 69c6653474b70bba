// TVMDSOOp: a TensorFlow op that calls one function of a TVM-compiled library.
//
// Two kinds of library are understood:
//   - destination-passing functions (TIR/TE `tvm.compile` output: f(inputs..., outputs...)),
//     whose outputs TensorFlow allocates from the declared shapes and TVM fills;
//   - Relax VM executables, whose functions allocate and return their outputs: the shapes come
//     from the function itself, and declared shapes are checked against them.
// Tensors cross as DLPack views of the other side's buffers, both ways; only buffers that miss
// TVM's 64-byte alignment are copied, and counted (tvmbridge.tensorflow.alignment_copies).
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <absl/container/inlined_vector.h>
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <tensorflow/core/framework/op.h>
#include <tensorflow/core/framework/op_kernel.h>
#include <tensorflow/core/framework/shape_inference.h>
#include <tensorflow/core/framework/tensor.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>

namespace tvmbridge::tensorflow_op {
namespace {

namespace tf = ::tensorflow;

constexpr uintptr_t kTvmAlignment = 64;  // what TVM's generated kernels assume
constexpr int kPooledAllocator = 2;      // tvm.runtime.vm.VirtualMachine.POOLED_ALLOCATOR
std::atomic<int64_t> alignment_copies{0};

bool Aligned(const void* data) { return reinterpret_cast<uintptr_t>(data) % kTvmAlignment == 0; }

std::optional<DLDataType> ToDLPack(tf::DataType dtype) {
  switch (dtype) {
    case tf::DT_FLOAT:
      return DLDataType{kDLFloat, 32, 1};
    case tf::DT_DOUBLE:
      return DLDataType{kDLFloat, 64, 1};
    case tf::DT_HALF:
      return DLDataType{kDLFloat, 16, 1};
    case tf::DT_BFLOAT16:
      return DLDataType{kDLBfloat, 16, 1};
    case tf::DT_INT8:
      return DLDataType{kDLInt, 8, 1};
    case tf::DT_INT16:
      return DLDataType{kDLInt, 16, 1};
    case tf::DT_INT32:
      return DLDataType{kDLInt, 32, 1};
    case tf::DT_INT64:
      return DLDataType{kDLInt, 64, 1};
    case tf::DT_UINT8:
      return DLDataType{kDLUInt, 8, 1};
    case tf::DT_UINT16:
      return DLDataType{kDLUInt, 16, 1};
    case tf::DT_UINT32:
      return DLDataType{kDLUInt, 32, 1};
    case tf::DT_UINT64:
      return DLDataType{kDLUInt, 64, 1};
    case tf::DT_BOOL:
      return DLDataType{kDLBool, 8, 1};
    default:
      return std::nullopt;
  }
}

char* DataOf(const tvm::ffi::Tensor& tensor) {
  return static_cast<char*>(tensor.data_ptr()) + tensor.byte_offset();
}

template <typename... Parts>
absl::Status Invalid(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat("TVMDSOOp: ", parts...));
}

template <typename... Parts>
absl::Status Missing(const Parts&... parts) {
  return absl::NotFoundError(absl::StrCat("TVMDSOOp: ", parts...));
}

bool SameDtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

// Lends a TensorFlow tensor's buffer to a tvm::ffi::Tensor: the copy of the tf::Tensor held
// here keeps the buffer alive for as long as TVM holds the view.
struct TensorFlowBuffer {
  tf::Tensor tensor;
  void AllocData(DLTensor* view) { view->data = const_cast<char*>(tensor.tensor_data().data()); }
  void FreeData(DLTensor*) {}
};

// The other way: a TVM-allocated tensor as a TensorFlow buffer, kept alive by the reference.
class TvmBuffer : public tf::TensorBuffer {
 public:
  explicit TvmBuffer(tvm::ffi::Tensor tensor)
      : TensorBuffer(DataOf(tensor)), tensor_(std::move(tensor)) {}
  size_t size() const override { return tvm::ffi::GetDataSize(*tensor_.GetDLTensorPtr()); }
  TensorBuffer* root_buffer() override { return this; }
  void FillAllocationDescription(tf::AllocationDescription* proto) const override {
    proto->set_requested_bytes(static_cast<int64_t>(size()));
    proto->set_allocator_name("tvm");
  }
  bool OwnsMemory() const override { return false; }

 private:
  tvm::ffi::Tensor tensor_;
};

std::string ShapeText(const tf::TensorShape& shape) { return shape.DebugString(); }

std::string ShapeText(const tvm::ffi::Tensor& tensor) {
  tf::TensorShape shape;
  for (int64_t dim : tensor.shape()) shape.AddDim(dim);
  return shape.DebugString();
}

// One dlopen per library path in the process, however many ops use it.
absl::StatusOr<tvm::ffi::Module> LoadLibrary(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, tvm::ffi::Module> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = loaded.find(path); it != loaded.end()) return it->second;
  if (!std::ifstream(path).good()) {
    return Missing("no TVM library at '", path, "'");
  }
  try {
    tvm::ffi::Module module = tvm::ffi::Module::LoadFromFile(path);
    loaded.emplace(path, module);
    return module;
  } catch (const tvm::ffi::Error& error) {
    return Invalid("cannot load the TVM library '", path, "': ", error.what());
  }
}

absl::Status OutputShapes(tf::shape_inference::InferenceContext* context) {
  std::vector<tf::PartialTensorShape> static_shapes;
  int num_shape_inputs = 0;
  TF_RETURN_IF_ERROR(context->GetAttr("static_output_shapes", &static_shapes));
  TF_RETURN_IF_ERROR(context->GetAttr("num_shape_inputs", &num_shape_inputs));
  const int first_shape_input = context->num_inputs() - num_shape_inputs;
  for (int k = 0; k < context->num_outputs(); ++k) {
    tf::shape_inference::ShapeHandle shape = context->UnknownShape();
    if (k < static_cast<int>(static_shapes.size())) {
      TF_RETURN_IF_ERROR(context->MakeShapeFromPartialTensorShape(static_shapes[k], &shape));
    } else if (k < num_shape_inputs) {
      TF_RETURN_IF_ERROR(context->MakeShapeFromShapeTensor(first_shape_input + k, &shape));
    }
    context->set_output(k, shape);
  }
  return absl::OkStatus();
}

REGISTER_OP("TVMDSOOp")
    .Input("args: Tin")
    .Input("output_shapes: num_shape_inputs * int64")
    .Output("outputs: Tout")
    .Attr("Tin: list(type) >= 0")
    .Attr("Tout: list(type) >= 1")
    .Attr("num_shape_inputs: int >= 0")
    .Attr("static_output_shapes: list(shape) = []")
    .Attr("lib_path: string")
    .Attr("func_name: string")
    .SetShapeFn(OutputShapes)
    .Doc(R"doc(
Calls `func_name` of the TVM-compiled library at `lib_path` on `args`. Output k has dtype
Tout[k] and shape static_output_shapes[k], or the value of output_shapes[k], or (for a Relax
VM function, which allocates its outputs) whatever the function returns.
)doc");

class TVMDSOOp : public tf::OpKernel {
 public:
  explicit TVMDSOOp(tf::OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("lib_path", &lib_path_));
    OP_REQUIRES_OK(context, context->GetAttr("func_name", &func_name_));
    OP_REQUIRES_OK(context, context->GetAttr("num_shape_inputs", &num_shape_inputs_));
    std::vector<tf::PartialTensorShape> static_shapes;
    OP_REQUIRES_OK(context, context->GetAttr("static_output_shapes", &static_shapes));
    for (size_t k = 0; k < static_shapes.size(); ++k) {
      OP_REQUIRES(context, static_shapes[k].AsTensorShape(&static_shapes_.emplace_back()),
                  Invalid("static output shape ", k, " ", static_shapes[k].DebugString(),
                          " is not fully known"));
    }
    const int num_outputs = context->num_outputs();
    OP_REQUIRES(context, static_shapes_.empty() || num_shape_inputs_ == 0,
                Invalid("give static_output_shapes or "
                        "output_shapes tensors, not both"));
    OP_REQUIRES(
        context, static_shapes_.empty() || static_cast<int>(static_shapes_.size()) == num_outputs,
        Invalid(static_shapes_.size(), " static output shapes for ", num_outputs, " outputs"));
    OP_REQUIRES(context, num_shape_inputs_ == 0 || num_shape_inputs_ == num_outputs,
                Invalid(num_shape_inputs_, " output shape tensors for ", num_outputs, " outputs"));
    for (int k = 0; k < num_outputs; ++k) {
      OP_REQUIRES(context, ToDLPack(context->output_type(k)).has_value(),
                  Invalid("output dtype ", tf::DataTypeString(context->output_type(k)),
                          " has no DLPack equivalent"));
    }
    absl::StatusOr<tvm::ffi::Module> library = LoadLibrary(lib_path_);
    OP_REQUIRES_OK(context, library.status());
    OP_REQUIRES_OK(context, FindFunction(*library));
  }

  void Compute(tf::OpKernelContext* context) override {
    const int num_args = context->num_inputs() - num_shape_inputs_;
    std::vector<tvm::ffi::Any> arguments;
    arguments.reserve(num_args + context->num_outputs());
    for (int i = 0; i < num_args; ++i) {
      absl::StatusOr<tvm::ffi::Tensor> view = InputView(context, i);
      OP_REQUIRES_OK(context, view.status());
      arguments.emplace_back(*std::move(view));
    }
    if (virtual_machine_.has_value()) {
      OP_REQUIRES_OK(context, CallReturning(context, arguments));
    } else {
      OP_REQUIRES_OK(context, CallWritingOutputs(context, arguments));
    }
  }

 private:
  absl::Status FindFunction(const tvm::ffi::Module& library) {
    try {
      if (auto function = library->GetFunction(func_name_)) {
        function_ = *function;
        return absl::OkStatus();
      }
      if (auto load = library->GetFunction("vm_load_executable")) {
        tvm::ffi::Module vm = (*load)().cast<tvm::ffi::Module>();
        auto initialise = vm->GetFunction("vm_initialization");
        (*initialise)(static_cast<int>(kDLCPU), 0, kPooledAllocator);
        if (auto function = vm->GetFunction(func_name_)) {
          virtual_machine_ = vm;
          function_ = *function;
          return absl::OkStatus();
        }
      }
    } catch (const tvm::ffi::Error& error) {
      return Invalid("cannot start the TVM library '", lib_path_, "': ", error.what());
    }
    return Missing("the TVM library '", lib_path_, "' has no function '", func_name_, "'");
  }

  absl::StatusOr<tvm::ffi::Tensor> InputView(tf::OpKernelContext* context, int index) {
    tf::Tensor input = context->input(index);
    std::optional<DLDataType> dtype = ToDLPack(input.dtype());
    if (!dtype) {
      return Invalid("input ", index, " has dtype ", tf::DataTypeString(input.dtype()),
                     ", which has no DLPack equivalent");
    }
    if (!Aligned(input.tensor_data().data())) {
      tf::Tensor aligned;
      TF_RETURN_IF_ERROR(context->allocate_temp(input.dtype(), input.shape(), &aligned));
      std::memcpy(const_cast<char*>(aligned.tensor_data().data()), input.tensor_data().data(),
                  input.TotalBytes());
      alignment_copies.fetch_add(1, std::memory_order_relaxed);
      input = aligned;
    }
    return View(input, *dtype);
  }

  static tvm::ffi::Tensor View(const tf::Tensor& tensor, DLDataType dtype) {
    absl::InlinedVector<int64_t, 8> shape(tensor.dims());  // no allocation up to rank 8
    for (int i = 0; i < tensor.dims(); ++i) shape[i] = tensor.dim_size(i);
    // FromNDAlloc copies the shape into the tensor object.
    return tvm::ffi::Tensor::FromNDAlloc(TensorFlowBuffer{tensor},
                                         tvm::ffi::ShapeView(shape.data(), shape.size()), dtype,
                                         DLDevice{kDLCPU, 0});
  }

  absl::Status DeclaredShape(tf::OpKernelContext* context, int k,
                             std::optional<tf::TensorShape>* shape) const {
    if (!static_shapes_.empty()) {
      *shape = static_shapes_[k];
    } else if (num_shape_inputs_ > 0) {
      const tf::Tensor& value = context->input(context->num_inputs() - num_shape_inputs_ + k);
      if (value.dims() != 1) {
        return Invalid("output shape ", k, " must be a vector, got shape ",
                       ShapeText(value.shape()));
      }
      tf::TensorShape full;
      TF_RETURN_IF_ERROR(tf::TensorShapeUtils::MakeShape(value.vec<int64_t>(), &full));
      *shape = full;
    }
    return absl::OkStatus();
  }

  absl::Status Failed(const tvm::ffi::Error& error) const {
    return Invalid("TVM function '", func_name_, "' of '", lib_path_, "' failed: ", error.what());
  }

  // Destination passing: TensorFlow allocates each output, TVM writes into it.
  absl::Status CallWritingOutputs(tf::OpKernelContext* context,
                                  std::vector<tvm::ffi::Any>& arguments) {
    for (int k = 0; k < context->num_outputs(); ++k) {
      std::optional<tf::TensorShape> shape;
      TF_RETURN_IF_ERROR(DeclaredShape(context, k, &shape));
      if (!shape) {
        return Invalid(
            "'", func_name_, "' writes into outputs that TensorFlow allocates, so ",
            "it needs output_shape (a list, or a shape tensor); only Relax VM functions ",
            "report their output shapes themselves");
      }
      tf::Tensor* output = nullptr;
      TF_RETURN_IF_ERROR(context->allocate_output(k, *shape, &output));
      arguments.emplace_back(View(*output, *ToDLPack(output->dtype())));
    }
    std::vector<tvm::ffi::AnyView> views(arguments.begin(), arguments.end());
    try {
      tvm::ffi::Any ignored;
      function_.CallPacked(views.data(), static_cast<int32_t>(views.size()), &ignored);
    } catch (const tvm::ffi::Error& error) {
      return Failed(error);
    }
    return absl::OkStatus();
  }

  // Relax VM: the function allocates its outputs; they become TensorFlow's without a copy.
  absl::Status CallReturning(tf::OpKernelContext* context, std::vector<tvm::ffi::Any>& arguments) {
    std::vector<tvm::ffi::AnyView> views(arguments.begin(), arguments.end());
    tvm::ffi::Any result;
    try {
      std::lock_guard<std::mutex> lock(vm_mutex_);  // a VM keeps per-call state
      function_.CallPacked(views.data(), static_cast<int32_t>(views.size()), &result);
    } catch (const tvm::ffi::Error& error) {
      return Failed(error);
    }
    std::vector<tvm::ffi::Tensor> outputs;
    if (auto tensor = result.try_cast<tvm::ffi::Tensor>()) {
      outputs.push_back(*tensor);
    } else if (auto tuple = result.try_cast<tvm::ffi::Array<tvm::ffi::Tensor>>()) {
      outputs.assign(tuple->begin(), tuple->end());
    } else {
      return Invalid("'", func_name_, "' returned a ", result.GetTypeKey(), "; expected tensors");
    }
    if (static_cast<int>(outputs.size()) != context->num_outputs()) {
      return Invalid("'", func_name_, "' returned ", outputs.size(), " tensor(s) but ",
                     context->num_outputs(), " output dtype(s) were given");
    }
    for (int k = 0; k < context->num_outputs(); ++k) {
      const tvm::ffi::Tensor& output = outputs[k];
      tf::TensorShape shape;
      for (int64_t dim : output.shape()) shape.AddDim(dim);
      std::optional<tf::TensorShape> declared;
      TF_RETURN_IF_ERROR(DeclaredShape(context, k, &declared));
      if (declared && *declared != shape) {
        return Invalid("'", func_name_, "' returned output ", k, " of shape ", ShapeText(output),
                       " but output_shape says ", ShapeText(*declared));
      }
      if (!SameDtype(output.dtype(), *ToDLPack(context->expected_output_dtype(k)))) {
        return Invalid("'", func_name_, "' returned output ", k, " of another dtype than ",
                       tf::DataTypeString(context->expected_output_dtype(k)));
      }
      if (output.device().device_type != kDLCPU || !output.IsContiguous()) {
        return Invalid("'", func_name_, "' returned output ", k,
                       " that is not a contiguous CPU tensor");
      }
      const void* data = DataOf(output);
      if (Aligned(data)) {
        tf::core::RefCountPtr<TvmBuffer> buffer(new TvmBuffer(output));  // RefCounted: no make_
        context->set_output(k, tf::Tensor(context->expected_output_dtype(k), shape, buffer.get()));
      } else {
        tf::Tensor* copy = nullptr;
        TF_RETURN_IF_ERROR(context->allocate_output(k, shape, &copy));
        std::memcpy(const_cast<char*>(copy->tensor_data().data()), data, copy->TotalBytes());
        alignment_copies.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return absl::OkStatus();
  }

  std::string lib_path_;
  std::string func_name_;
  int num_shape_inputs_ = 0;
  std::vector<tf::TensorShape> static_shapes_;  // from static_output_shapes, checked once
  tvm::ffi::Function function_;
  std::optional<tvm::ffi::Module> virtual_machine_;  // set for Relax VM executables
  std::mutex vm_mutex_;
};

REGISTER_KERNEL_BUILDER(Name("TVMDSOOp").Device(tf::DEVICE_CPU).HostMemory("output_shapes"),
                        TVMDSOOp);

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def("tvmbridge.tensorflow.alignment_copies",
                                        [] { return alignment_copies.load(); });
}

}  // namespace
}  // namespace tvmbridge::tensorflow_op
