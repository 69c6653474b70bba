// From a user's TorchScript module to a flat, frozen graph the converters can walk: the one
// ordered pipeline of graph passes that compile, enable and from_torchscript share.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/csrc/jit/api/module.h>

namespace tvmbridge::passes {

struct PreparedGraph {
  torch::jit::Module frozen;  // owns the constants the graph refers to
  std::shared_ptr<torch::jit::Graph> graph;
  // Parameter and buffer names of the original module, by data pointer, to name weights.
  std::unordered_map<const void*, std::string> weight_names;
  // Forward's inputs (0 is the first after `self`) that the graph writes into by copying its
  // result back at the end (see WriteBackInputs).
  std::vector<size_t> written_back_inputs;
};

// What graph preparation does with in-place ops that write into forward's inputs.
enum class InputWrites {
  // Refuse them: a Relax function (from_torchscript) cannot write into its arguments.
  kRefuse,
  // Keep PyTorch's semantics for a compiled TorchScript module: see WriteBackInputs.
  kWriteBack,
};

// Deserialises a TorchScript archive (torch.jit.save's bytes). Throws with the reason.
torch::jit::Module LoadModule(const std::string& archive);

// eval() + freeze (parameters become constants), inline calls, fold read-only attributes,
// write back into inputs (kWriteBack), then Simplify: fold None checks, remove local
// mutation, constant-propagate and drop dead code; kRefuse then refuses what mutation is
// left visible to the caller.
// `fold_weights`: also let freezing fold batch norms and scalings into convolution weights
// (faster code, but the folded weights lose their parameter names).
PreparedGraph PrepareForConversion(torch::jit::Module module, bool fold_weights = true,
                                   InputWrites input_writes = InputWrites::kRefuse);

// The same preparation for a graph that is already flat and has its weights as constants
// (a compilation group's subgraph; first input `self`, unused): batch norms and scalings fold
// into convolution weights, then Simplify.
PreparedGraph PrepareFrozenGraph(std::shared_ptr<torch::jit::Graph> graph);

}  // namespace tvmbridge::passes
