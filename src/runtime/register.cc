// TorchScript registration of the runtime: the class tvmbridge.TVMModule, the op tvmbridge::run
// and the checks a compiled forward makes of its inputs, the only names its graph refers to.
#include <ATen/MemoryOverlap.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include "tvmbridge/tvm_module.h"

namespace tvmbridge {
namespace {

std::vector<at::Tensor> RunOp(const c10::intrusive_ptr<TVMModule>& module,
                              const std::vector<at::Tensor>& inputs) {
  return module->Run(inputs);
}

// `min_extents` and `max_extents` (empty for a fixed shape) bound each dim.
void ExpectInputOp(const at::Tensor& input, int64_t index, c10::string_view name,
                   c10::IntArrayRef shape, c10::ScalarType dtype, c10::IntArrayRef min_extents,
                   c10::IntArrayRef max_extents) {
  TensorSpec spec{std::string(name.data(), name.size()), shape.vec(), dtype};
  TORCH_CHECK(min_extents.size() == max_extents.size() &&
                  (min_extents.empty() || min_extents.size() == shape.size()),
              "tvmbridge: expect_input: extent bounds do not match the shape");
  for (size_t d = 0; d < min_extents.size(); ++d) {
    spec.dim_ranges.push_back({min_extents[d], min_extents[d], max_extents[d]});
  }
  CheckInput(input, index, spec);
}

// A compiled forward that writes into input `inputs[written]` works on a copy of it and copies
// the result back at the end (passes::WriteBackInputs), so another input sharing its memory
// would not see the write happen where PyTorch shows it: such calls are refused.
void ExpectUnsharedOp(const std::vector<at::Tensor>& inputs, c10::IntArrayRef indices,
                      const std::vector<std::string>& names, int64_t written) {
  const at::Tensor& target = inputs.at(static_cast<size_t>(written));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (static_cast<int64_t>(i) == written || !inputs[i].defined()) continue;
    TORCH_CHECK_VALUE(at::get_overlap_status(target, inputs[i]) == at::MemOverlapStatus::No,
                      "tvmbridge: input ", indices[written], " ('", names[written],
                      "') shares memory with input ", indices[i], " ('", names[i],
                      "'), and the model writes into '", names[written],
                      "'; the compiled module copies that write back only when forward ends, "
                      "so '",
                      names[i],
                      "' would not see it where PyTorch shows it. Pass "
                      "tensors that do not share memory (for example ",
                      names[i], ".clone())");
  }
}

}  // namespace

TORCH_LIBRARY(tvmbridge, m) {
  m.class_<TVMModule>("TVMModule")
      .def(torch::init<std::string, at::Tensor>())
      .def("run", &TVMModule::Run)
      .def("metadata_json", &TVMModule::MetadataJson)
      .def("alignment_copies", &TVMModule::AlignmentCopies)
      .def("virtual_machines", &TVMModule::VirtualMachines)
      .def("set_virtual_machine_limit", &TVMModule::SetVirtualMachineLimit)
      // What torch.export and torch.compile see of a module when they trace a call to it (the
      // fake class in tvmbridge/export.py rebuilds the output shapes from it).
      .def("__obj_flatten__",
           [](const c10::intrusive_ptr<TVMModule>& self) {
             return std::make_tuple(
                 std::make_tuple(std::string("metadata_json"), self->MetadataJson()));
           })
      .def_pickle([](const c10::intrusive_ptr<TVMModule>& self) { return self->Serialize(); },
                  [](TVMModule::SerializedState state) {
                    return TVMModule::Deserialize(std::move(state));
                  });
  // A CompositeExplicitAutograd kernel (not the catch-all m.def(name, fn) gives) leaves room
  // for the Meta kernel torch.export and torch.compile trace with (tvmbridge/export.py).
  m.def("run(__torch__.torch.classes.tvmbridge.TVMModule module, Tensor[] inputs) -> Tensor[]");
  m.impl("run", torch::dispatch(c10::DispatchKey::CompositeExplicitAutograd, RunOp));
  // A check with no result: conservative alias analysis keeps dead-code elimination away.
  m.def(torch::schema("expect_input(Tensor input, int index, str name, int[] shape, "
                      "ScalarType dtype, int[] min_extents=[], int[] max_extents=[]) -> ()",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        ExpectInputOp);
  m.def(torch::schema("expect_unshared(Tensor[] inputs, int[] indices, str[] names, "
                      "int written) -> ()",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        ExpectUnsharedOp);
}

}  // namespace tvmbridge
