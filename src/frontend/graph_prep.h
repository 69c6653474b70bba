// From a user's TorchScript module to a flat, frozen graph the converters can walk.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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

// A Tensor-typed value that an op may leave undefined (None to TorchScript code), so that
// `x is None` depends on the run: the weights of fused attention without need_weights.
bool MayBeUndefined(const torch::jit::Value* tensor);

// For such a value: true when every example run left it undefined, false when every run
// defined it, nullopt when the runs disagree or did not reach it.
using UndefinedInRuns = std::function<std::optional<bool>(const torch::jit::Value*)>;

// Folds the identity checks whose answer the graph shows: `x is None` / `x is not None` where
// x is a Tensor (an Optional argument that was given a tensor, seen once calls are inlined and
// shape checks resolved; for values an op may leave undefined, what `undefined_in_runs` says),
// `x is x`, and `a is b` of tensors that cannot be the same object (distinct graph inputs
// count as such). Drops casts from Optional that hold a Tensor already; then propagates
// constants.
void FoldNoneChecks(const std::shared_ptr<torch::jit::Graph>& graph,
                    const UndefinedInRuns& undefined_in_runs = nullptr);

// Removes the mutation whose effect stays inside the graph: TorchScript's list and tensor
// mutation removal, then lists grown by append and read in between, and in-place writes to
// fresh tensors through slices and selects (rewritten as scatters), in every block.
void RemoveLocalMutation(const std::shared_ptr<torch::jit::Graph>& graph);

// Freezing keeps an attribute as a prim::GetAttr when its alias analysis cannot rule out a
// write to it (scripted nn.MultiheadAttention passes `self.in_proj_weight` through tuples and
// comprehensions in its fast-path checks). Tensor attributes of `self` (the frozen module)
// that nothing in the graph writes, directly or through an alias, become constants like the
// ones freezing folded; once shapes resolve those checks, more of them qualify.
void FoldReadOnlyAttributes(const std::shared_ptr<torch::jit::Graph>& graph,
                            const torch::jit::Module& self);

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
