// Puts compiled TVM regions back into TorchScript.
#pragma once

#include <memory>
#include <optional>
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

// What the compiled forward keeps of the original's signature, and what it checks of its
// arguments.
struct ForwardSignature {
  std::vector<TensorSpec> inputs;  // forward's inputs; tensors are checked where it starts
  std::vector<HeldTensor> held;    // tensors inside other inputs, checked where taken out
  // Inputs the forward writes into (passes::WriteBackInputs): each must share no memory with
  // the other tensor inputs.
  std::vector<size_t> written_back_inputs;
  // Forward's default values, per input (none: the argument is required), kept so that callers
  // may leave those arguments out as they could before.
  std::vector<std::optional<c10::IValue>> defaults;
  // Inputs the graph was specialised to the default of (Analysis::fixed_to_default): a call
  // that gives another value raises a ValueError.
  std::vector<size_t> fixed_to_default;
};

// Rewrites `graph` (a prepared forward graph whose first input is `self`): each region
// becomes `tvmbridge::run(self.tvm_module_<k>, [inputs])`, region inputs computed by PyTorch
// are made contiguous, and the forward checks its arguments as `signature` says. Attributes
// of `original` (the frozen model) that the graph still reads or assigns on `self` become
// attributes of the compiled module.
// The module also carries `report_json` (what compile decided, see ReportJson) as its string
// attribute `tvmbridge_report`, so a saved model still explains itself.
// Returns the bytes torch.jit.save would write for a module with that forward.
std::string EmbedRegions(const std::shared_ptr<torch::jit::Graph>& graph,
                         const std::vector<partition::Region>& regions,
                         const std::vector<c10::intrusive_ptr<TVMModule>>& modules,
                         const ForwardSignature& signature, const torch::jit::Module& original,
                         const std::string& report_json);

// A module of class `qualified_name` (in eval mode) for `graph`, whose first input (`self`)
// takes the module's type; attributes may be added before SaveWithForward.
torch::jit::Module ModuleForGraph(const std::string& qualified_name,
                                  const std::shared_ptr<torch::jit::Graph>& graph);
// Makes `graph` the module's forward (its inputs after `self` taking `defaults`, where given)
// and returns what torch.jit.save writes for it.
std::string SaveWithForward(torch::jit::Module& module,
                            const std::shared_ptr<torch::jit::Graph>& graph,
                            const std::vector<std::optional<c10::IValue>>& defaults = {});

}  // namespace tvmbridge
