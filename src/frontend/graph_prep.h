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

// For each tensor input of `graph` that in-place ops write into (directly or through views,
// and only data: no change of shape), the graph works on a clone of it taken where it starts,
// and copies the clone's final value into the caller's tensor where it ends; a result that is
// the input itself (`return x.add_(1)`) is the caller's tensor again. So the writes become
// local mutation, which RemoveLocalMutation turns into functional ops that TVM compiles, and
// only the copy back runs in PyTorch. Inputs written in ways the graph cannot follow keep
// their in-place ops (PyTorch runs them). Returns the inputs rewritten (0 is the first after
// `self`). The caller must ensure a written input shares no memory with another input: the
// clone would hide the write from it.
std::vector<size_t> WriteBackInputs(torch::jit::Graph& graph);

// A copy into one of forward's inputs with nothing but such copies, constants and the packing
// of results after it:
// what WriteBackInputs leaves at the end. It runs in PyTorch as bookkeeping, not as a fallback.
bool IsWriteBack(const torch::jit::Node& node);

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
// `input_writes`: what to do with in-place ops whose effect the caller sees (on inputs or
// through views of them).
PreparedGraph PrepareForConversion(torch::jit::Module module, bool fold_weights = true,
                                   InputWrites input_writes = InputWrites::kRefuse);

// The same preparation for a graph that is already flat and has its weights as constants
// (a compilation group's subgraph; first input `self`, unused): batch norms and scalings fold
// into convolution weights, mutation is removed where TorchScript can, constants propagate.
PreparedGraph PrepareFrozenGraph(std::shared_ptr<torch::jit::Graph> graph);

}  // namespace tvmbridge::frontend
