// From a user's TorchScript module to a flat, frozen graph the converters can walk.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include <torch/csrc/jit/api/module.h>

namespace tvmbridge::frontend {

struct PreparedGraph {
  torch::jit::Module frozen;  // owns the constants the graph refers to
  std::shared_ptr<torch::jit::Graph> graph;
  // Parameter and buffer names of the original module, by data pointer, to name weights.
  std::unordered_map<const void*, std::string> weight_names;
};

// An aten op that writes into its first argument ("aten::add_").
bool IsInPlace(const torch::jit::Node& node);
// An op whose result shares memory with its first input, so writes to it change the input.
bool IsViewOp(const torch::jit::Node& node);

// Folds `x is None` / `x is not None` where x is a Tensor (an Optional argument that was given
// a tensor, seen once calls are inlined and shape checks resolved) and drops casts from
// Optional that hold a Tensor already; then propagates constants.
void FoldNoneChecks(const std::shared_ptr<torch::jit::Graph>& graph);

// Removes the mutation whose effect stays inside the graph: TorchScript's list and tensor
// mutation removal, then lists grown by append and read in between, and in-place writes to
// fresh tensors through slices and selects (rewritten as scatters), in every block.
void RemoveLocalMutation(const std::shared_ptr<torch::jit::Graph>& graph);

// Deserialises a TorchScript archive (torch.jit.save's bytes). Throws with the reason.
torch::jit::Module LoadModule(const std::string& archive);

// eval() + freeze (parameters become constants), inline calls, remove list and tensor
// mutation where TorchScript can, constant-propagate and drop dead code.
// `fold_weights`: also let freezing fold batch norms and scalings into convolution weights
// (faster code, but the folded weights lose their parameter names).
// `local_mutation_only`: refuse in-place ops whose effect would be visible outside the
// converted graph, on inputs or through views (a whole-graph conversion cannot express them;
// the partitioner instead leaves them to PyTorch).
PreparedGraph PrepareForConversion(torch::jit::Module module, bool fold_weights = true,
                                   bool local_mutation_only = true);

// The same preparation for a graph that is already flat and has its weights as constants
// (a compilation group's subgraph; first input `self`, unused): batch norms and scalings fold
// into convolution weights, mutation is removed where TorchScript can, constants propagate.
PreparedGraph PrepareFrozenGraph(std::shared_ptr<torch::jit::Graph> graph);

}  // namespace tvmbridge::frontend
