#include <optional>
#include <vector>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include "passes/graph_walk.h"
#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The module object a chain of prim::GetAttr from the graph's `self` reaches, if any.
std::optional<c10::IValue> ResolveAttribute(const Value* value, const torch::jit::Module& self) {
  const Node* node = value->node();
  if (node->kind() == c10::prim::Param) {
    if (value != node->owningGraph()->inputs().at(0)) return std::nullopt;
    return c10::IValue(self._ivalue());
  }
  if (node->kind() != c10::prim::GetAttr) return std::nullopt;
  std::optional<c10::IValue> owner = ResolveAttribute(node->input(), self);
  if (!owner || !owner->isObject()) return std::nullopt;
  const c10::intrusive_ptr<c10::ivalue::Object>& object = owner->toObject();
  std::optional<size_t> slot = object->type()->findAttributeSlot(node->s(c10::attr::name));
  if (!slot) return std::nullopt;
  return object->getSlot(*slot);
}

}  // namespace

bool FoldReadOnlyAttributes(const std::shared_ptr<torch::jit::Graph>& graph,
                            const torch::jit::Module& self) {
  std::vector<Node*> reads;
  for (Node* node : AllNodes(*graph)) {
    if (node->kind() == c10::prim::GetAttr &&
        node->output()->type()->kind() == c10::TypeKind::TensorType) {
      reads.push_back(node);
    }
  }
  if (reads.empty()) return false;
  torch::jit::AliasDb alias_db(graph);
  bool folded = false;
  for (Node* read : reads) {
    if (alias_db.hasWriters(read->output())) continue;
    std::optional<c10::IValue> value = ResolveAttribute(read->output(), self);
    if (!value || !value->isTensor()) continue;
    torch::jit::WithInsertPoint before(read);
    // Detached, as freezing does: a constant may not require grad; the storage is shared.
    std::optional<Value*> constant =
        torch::jit::tryInsertConstant(*graph, value->toTensor().detach());
    if (!constant) continue;
    (*constant)->setDebugName(read->output()->debugName());
    read->output()->replaceAllUsesWith(*constant);
    folded = true;
  }
  torch::jit::EliminateDeadCode(graph);
  return folded;
}

}  // namespace tvmbridge::passes
