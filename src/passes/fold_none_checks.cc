#include <optional>
#include <unordered_set>

#include <torch/csrc/jit/passes/constant_propagation.h>

#include "frontend/op_traits.h"
#include "passes/graph_walk.h"
#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// What `a is b` is known to be, if anything. `x is None` of a Tensor (an Optional[Tensor]
// argument given a tensor, once calls are inlined) is false unless an op may have left it
// undefined; two tensors as frontend::KnownTensorIdentity says.
std::optional<bool> KnownIdentity(const Value* a, const Value* b,
                                  const UndefinedInRuns& undefined_in_runs) {
  if (a == b) return true;
  if (IsNoneType(b)) std::swap(a, b);
  if (IsNoneType(a) && IsTensorType(b)) {
    if (!MayBeUndefined(b)) return false;
    return undefined_in_runs ? undefined_in_runs(b) : std::nullopt;
  }
  if (!IsTensorType(a) || !IsTensorType(b)) return std::nullopt;
  return frontend::KnownTensorIdentity(a, b);
}

}  // namespace

bool MayBeUndefined(const Value* tensor) {
  // The attention weights when need_weights is false.
  static const c10::Symbol kFusedAttention =
      c10::Symbol::fromQualString("aten::_native_multi_head_attention");
  return tensor->node()->kind() == kFusedAttention && tensor->offset() == 1;
}

namespace {

// One round of FoldNoneChecks; false when nothing was left to fold.
bool FoldKnownIdentities(const std::shared_ptr<torch::jit::Graph>& graph,
                         const UndefinedInRuns& undefined_in_runs) {
  std::vector<std::pair<Node*, bool>> known;
  std::vector<Node*> casts;
  for (Node* node : AllNodes(*graph)) {
    // Casts from Optional of values that already hold a Tensor.
    if (node->kind() == c10::prim::unchecked_cast &&
        node->input()->type()->isSubtypeOf(*node->output()->type())) {
      casts.push_back(node);
    }
    bool is = node->kind() == c10::aten::__is__;
    if ((!is && node->kind() != c10::aten::__isnot__) || node->inputs().size() != 2) continue;
    std::optional<bool> identical =
        KnownIdentity(node->input(0), node->input(1), undefined_in_runs);
    if (identical) known.emplace_back(node, *identical == is);
  }
  for (auto& [node, result] : known) {
    torch::jit::WithInsertPoint before(node);
    node->output()->replaceAllUsesWith(graph->insertConstant(result));
    node->destroy();
  }
  for (Node* cast : casts) {
    cast->output()->replaceAllUsesWith(cast->input());
    cast->destroy();
  }
  return !known.empty() || !casts.empty();
}

}  // namespace

bool FoldNoneChecks(const std::shared_ptr<torch::jit::Graph>& graph,
                    const UndefinedInRuns& undefined_in_runs) {
  std::shared_ptr<torch::jit::Graph> folded = graph;
  // Folded branches merge values (`key, value = ...` of both branches become one), which
  // can answer further checks; a handful of rounds reaches the fixed point.
  bool changed = false;
  for (int round = 0; round < 8 && FoldKnownIdentities(graph, undefined_in_runs); ++round) {
    changed = true;
    torch::jit::ConstantPropagation(folded);
  }
  return torch::jit::ConstantPropagation(folded) || changed;
}

}  // namespace tvmbridge::passes
