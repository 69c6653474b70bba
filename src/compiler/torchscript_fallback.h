// PyTorch inside TVM: from_torchscript(..., fallback="torchscript").
//
// The model becomes one Relax function. What the partitioner gives TVM is converted as usual;
// each maximal run of nodes it leaves to PyTorch becomes one call of the packed function
// `tvmbridge.torchscript.run` (src/runtime/torchscript_call.cc), whose first argument is the
// run serialised as a TorchScript module (a uint8 constant, so the compiled artifact carries
// it), followed by the tensors the run reads. Whole runs, not single ops: one crossing per run.
#pragma once

#include <string>
#include <vector>

#include "frontend/converter.h"
#include "partition/partitioner.h"

namespace tvmbridge {

// Weights are embedded as constants (the model is frozen to be split), so `param_names` and
// `param_values` of the result are empty. `examples` as for Analyse.
frontend::ConversionResult ConvertWithTorchScriptFallback(
    const std::string& archive, const std::vector<TensorSpec>& inputs,
    const partition::PartitionOptions& options, const partition::ExampleInputs& examples = {});

}  // namespace tvmbridge
