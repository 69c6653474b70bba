// Puts compiled TVM regions back into TorchScript.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/jit/ir/ir.h>

#include "partition/partitioner.h"
#include "tvmbridge/artifact.h"
#include "tvmbridge/tvm_module.h"

namespace tvmbridge {

// Rewrites `graph` (a prepared forward graph whose first input is `self`): each region
// becomes `tvmbridge::run(self.tvm_module_<k>, [inputs])`, region inputs computed by PyTorch
// are made contiguous, and the forward starts by checking its inputs against `inputs`.
// The module also carries `report_json` (what compile decided, see ReportJson) as its string
// attribute `tvmbridge_report`, so a saved model still explains itself.
// Returns the bytes torch.jit.save would write for a module with that forward.
std::string EmbedRegions(const std::shared_ptr<torch::jit::Graph>& graph,
                         const std::vector<partition::Region>& regions,
                         const std::vector<c10::intrusive_ptr<TVMModule>>& modules,
                         const std::vector<TensorSpec>& inputs, const std::string& report_json);

}  // namespace tvmbridge
