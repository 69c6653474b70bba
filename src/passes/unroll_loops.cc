// Loop unrolling within a budget of nodes (see passes.h).
#include <functional>
#include <optional>
#include <vector>

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/loop_unrolling.h>
#include <torch/library.h>

#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using torch::jit::Block;
using torch::jit::Node;

// Unrolled loops cost compile time in every copy (TVM builds each one), and past a few hundred
// nodes gain nothing at run time: a loop nest that would unroll into more than this many
// nodes stays a TorchScript loop, its body compiled once.
constexpr int64_t kMaxUnrolledNodes = 1024;
// UnrollConstantLoops repeats a body fully below this many iterations; above it, eight copies
// per trip plus an epilogue loop (torch/csrc/jit/passes/loop_unrolling.cpp).
constexpr int64_t kFullUnrollBelow = 64;
constexpr int64_t kPartialUnrollCopies = 9;

// The nodes `block` will hold once unrolled, with the constant-count loops whose unrolling
// would pass kMaxUnrolledNodes added to `kept_rolled` (counted rolled).
int64_t PlanUnrolling(Block* block, std::vector<Node*>& kept_rolled) {
  int64_t size = 0;
  for (Node* node : block->nodes()) {
    int64_t nested = 0;
    for (Block* inner : node->blocks()) nested += PlanUnrolling(inner, kept_rolled);
    std::optional<int64_t> trips = node->kind() == c10::prim::Loop
                                       ? torch::jit::constant_as<int64_t>(node->input(0))
                                       : std::nullopt;
    if (!trips) {
      size += 1 + nested;
      continue;
    }
    const int64_t copies = *trips < kFullUnrollBelow ? *trips : kPartialUnrollCopies;
    if (copies * nested > kMaxUnrolledNodes) {
      kept_rolled.push_back(node);
      size += 1 + nested;
    } else {
      size += copies * nested;
    }
  }
  return size;
}

// The identity on a trip count: a loop whose count comes from it is not one UnrollConstantLoops
// unrolls (it reads only constants).
const c10::Symbol kRolledTrips = c10::Symbol::fromQualString("tvmbridge::_rolled_trips");
int64_t RolledTrips(int64_t count) { return count; }

}  // namespace

// The loops planned to stay rolled take their trip count through tvmbridge::_rolled_trips
// while TorchScript's pass runs (clones of them, made when an outer loop unrolls, too), and
// get the constant back afterwards.
bool UnrollConstantLoopsWithinBudget(std::shared_ptr<torch::jit::Graph>& graph) {
  std::vector<Node*> kept_rolled;
  PlanUnrolling(graph->block(), kept_rolled);
  for (Node* loop : kept_rolled) {
    torch::jit::WithInsertPoint before(loop);
    loop->replaceInput(0, graph->insert(kRolledTrips, {loop->input(0)}));
  }
  const bool changed = torch::jit::UnrollConstantLoops(graph);
  std::vector<Node*> rolled;
  std::function<void(Block*)> collect = [&](Block* block) {
    for (Node* node : block->nodes()) {
      if (node->kind() == kRolledTrips) rolled.push_back(node);
      for (Block* inner : node->blocks()) collect(inner);
    }
  };
  collect(graph->block());
  for (Node* node : rolled) {
    node->output()->replaceAllUsesWith(node->input(0));
    node->destroy();
  }
  if (!kept_rolled.empty()) {
    GRAPH_DEBUG(kept_rolled.size(), " loop(s) kept rolled (more than ", kMaxUnrolledNodes,
                " nodes unrolled)");
  }
  return changed;
}

TORCH_LIBRARY_FRAGMENT(tvmbridge, m) {
  m.def(torch::schema("_rolled_trips(int count) -> int", c10::AliasAnalysisKind::CONSERVATIVE),
        RolledTrips);
}

}  // namespace tvmbridge::passes
