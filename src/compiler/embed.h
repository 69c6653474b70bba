// Puts compiled TVM regions back into TorchScript.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include "partition/partitioner.h"
#include "tvmbridge/artifact.h"
#include "tvmbridge/tvm_module.h"

namespace tvmbridge {

// A tensor the caller hands over inside input `input_index` of forward (an optional, a list,
// a dict), specialised to `spec` like a tensor input: the compiled forward checks it where it
// is taken out.
struct HeldTensor {
  torch::jit::Value* value = nullptr;
  int64_t input_index = 0;
  TensorSpec spec;
};

// Rewrites `graph` (a prepared forward graph whose first input is `self`): each region
// becomes `tvmbridge::run(self.tvm_module_<k>, [inputs])`, region inputs computed by PyTorch
// are made contiguous, and the forward checks its tensor inputs against `inputs` where it
// starts (and that each of `written_back_inputs` shares no memory with the others, see
// frontend::WriteBackInputs), and the `held` tensors where they are taken out of their inputs.
// The module also carries `report_json` (what compile decided, see ReportJson) as its string
// attribute `tvmbridge_report`, so a saved model still explains itself.
// Returns the bytes torch.jit.save would write for a module with that forward.
std::string EmbedRegions(const std::shared_ptr<torch::jit::Graph>& graph,
                         const std::vector<partition::Region>& regions,
                         const std::vector<c10::intrusive_ptr<TVMModule>>& modules,
                         const std::vector<TensorSpec>& inputs, const std::vector<HeldTensor>& held,
                         const std::vector<size_t>& written_back_inputs,
                         const std::string& report_json);

// A module of class `qualified_name` (in eval mode) for `graph`, whose first input (`self`)
// takes the module's type; attributes may be added before SaveWithForward.
torch::jit::Module ModuleForGraph(const std::string& qualified_name,
                                  const std::shared_ptr<torch::jit::Graph>& graph);
// Makes `graph` the module's forward and returns what torch.jit.save writes for it.
std::string SaveWithForward(torch::jit::Module& module,
                            const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace tvmbridge
