// The graph passes of preparation, one per file (pipeline.cc runs them in order). Each returns
// whether it changed the graph.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/jit/api/module.h>

namespace tvmbridge::passes {

// Freezing keeps an attribute as a prim::GetAttr when its alias analysis cannot rule out a
// write to it (scripted nn.MultiheadAttention passes `self.in_proj_weight` through tuples and
// comprehensions in its fast-path checks). Tensor attributes of `self` (the frozen module)
// that nothing in the graph writes, directly or through an alias, become constants like the
// ones freezing folded; once shapes resolve those checks, more of them qualify.
bool FoldReadOnlyAttributes(const std::shared_ptr<torch::jit::Graph>& graph,
                            const torch::jit::Module& self);

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
bool FoldNoneChecks(const std::shared_ptr<torch::jit::Graph>& graph,
                    const UndefinedInRuns& undefined_in_runs = nullptr);

// An argument of forward that the caller left out (the inputs given were fewer than declared).
struct OmittedArgument {
  size_t index;  // among forward's inputs after `self`
  std::string name;
  c10::IValue value;  // its default
  bool folded;        // every use of the input is now this constant
};

// Forward's arguments from `given` on take their defaults (torchvision detectors' `targets=None`,
// nn.TransformerEncoderLayer's `src_mask=None, is_causal=False`): each use of one whose default
// a forward guard can compare (None, a number, a bool, a string) becomes that constant, so the
// branches on it fold; `is None` checks are folded after. The graph's inputs stay. Raises
// where an omitted argument has no default.
std::vector<OmittedArgument> FoldOmittedArguments(const std::shared_ptr<torch::jit::Graph>& graph,
                                                  const torch::jit::Module& module, size_t given);

// A constant list of ints that the graph mutates, or a copy of one (Swin's
// `shift_size = self.shift_size.copy()`, then `shift_size[0] = 0`), becomes a ListConstruct
// of constants, which TorchScript's RemoveListMutation can rewrite; it leaves those alone.
bool MaterializeMutatedConstantLists(torch::jit::Graph& graph);

// A list built by prim::ListConstruct and grown only by aten::append in its own block (what
// scripted loops over module lists leave, DenseNet's `features.append(...)`, once unrolled),
// read elsewhere by ops that do not write it: each read gets a list of the elements appended
// so far, and the appends go. TorchScript's RemoveListMutation gives up on lists read between
// appends.
bool FunctionalizeListAppends(torch::jit::Graph& graph);

// In-place ops whose target is a fresh tensor of their block, or a chain of slices/selects of
// one (`x[1:3, 0] = y` is copy_ into such a chain), become functional ops: the view's new
// value, scattered back into each base up the chain, and every later use of the root reads
// the result. TorchScript's RemoveTensorMutation leaves these (writes through views,
// index_put_ with computed values) in place. Writes whose effect other aliases would see stay.
bool FunctionalizeWrites(torch::jit::Graph& graph);

// A dict attribute used as a memo, `if key not in self.cache: self.cache[key] = expr` then
// reads of `self.cache[key]` (timm's LeViT), becomes `expr`, computed where the memo was
// filled: what the memo holds is what expr gives (the weights are constants by now), and the
// reads no longer keep the attribute, and what uses it, in PyTorch. Only where the memo is the
// attribute's one use in the graph and expr is pure.
bool FoldMemoisedAttributes(const std::shared_ptr<torch::jit::Graph>& graph);

// TorchScript's UnrollConstantLoops, within a budget of nodes (1024): a loop nest that would
// unroll into more stays a TorchScript loop, its body compiled once (unrolled copies cost
// compile time each, and past a few hundred nodes gain nothing at run time).
bool UnrollConstantLoopsWithinBudget(std::shared_ptr<torch::jit::Graph>& graph);

// Removes the mutation whose effect stays inside the graph: the three passes above around
// TorchScript's list and tensor mutation removal, in every block.
bool RemoveLocalMutation(const std::shared_ptr<torch::jit::Graph>& graph);

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
// of results after it: what WriteBackInputs leaves at the end. It runs in PyTorch as
// bookkeeping, not as a fallback.
bool IsWriteBack(const torch::jit::Node& node);

}  // namespace tvmbridge::passes
