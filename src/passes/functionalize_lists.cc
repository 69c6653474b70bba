#include <algorithm>
#include <vector>

#include <torch/csrc/jit/ir/constants.h>

#include "passes/graph_walk.h"
#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The node of `block` that contains `node` (itself, or the one whose nested blocks hold it).
Node* AncestorIn(torch::jit::Block* block, Node* node) {
  while (node != nullptr && node->owningBlock() != block) node = node->owningBlock()->owningNode();
  return node;
}

// A list built by prim::ListConstruct and grown only by aten::append in its own block (what
// scripted loops over module lists leave, DenseNet's `features.append(...)`, once unrolled),
// read elsewhere by ops that do not write it: each read gets a list of the elements appended
// so far, and the appends go. TorchScript's RemoveListMutation gives up on lists read between
// appends. Returns whether it rewrote.
bool FunctionalizeAppends(torch::jit::Graph& graph, Node* construct) {
  Value* list = construct->output();
  torch::jit::Block* block = construct->owningBlock();
  std::vector<torch::jit::Use> uses = list->uses();
  bool appends = false;
  for (const torch::jit::Use& use : uses) {
    bool append = use.user->kind() == c10::aten::append && use.offset == 0;
    if (append && (use.user->owningBlock() != block || use.user->output()->hasUses())) {
      return false;
    }
    if (!append && WritesInput(*use.user, use.offset)) return false;
    appends = appends || append;
  }
  if (!appends) return false;
  std::sort(uses.begin(), uses.end(), [&](const torch::jit::Use& a, const torch::jit::Use& b) {
    return AncestorIn(block, a.user)->isBefore(AncestorIn(block, b.user));
  });
  std::vector<Value*> elements(construct->inputs().begin(), construct->inputs().end());
  for (const torch::jit::Use& use : uses) {
    if (use.user->kind() == c10::aten::append && use.offset == 0) {
      elements.push_back(use.user->input(1));
      continue;
    }
    torch::jit::WithInsertPoint before(AncestorIn(block, use.user));
    Node* snapshot = graph.insertNode(graph.createList(list->type()->containedType(0), elements));
    use.user->replaceInput(use.offset, snapshot->output());
  }
  for (const torch::jit::Use& use : uses) {
    if (use.user->kind() == c10::aten::append && use.offset == 0) use.user->destroy();
  }
  return true;
}

}  // namespace

bool FunctionalizeListAppends(torch::jit::Graph& graph) {
  bool rewrote = false;
  for (Node* node : AllNodes(graph)) {
    if (node->kind() == c10::prim::ListConstruct) rewrote |= FunctionalizeAppends(graph, node);
  }
  return rewrote;
}

// A constant list of ints that the graph mutates, or a copy of one (Swin's
// `shift_size = self.shift_size.copy()`, then `shift_size[0] = 0`), as a ListConstruct of
// constants, which TorchScript's RemoveListMutation can rewrite; it leaves those alone.
bool MaterializeMutatedConstantLists(torch::jit::Graph& graph) {
  bool rewrote = false;
  for (Node* node : AllNodes(graph)) {
    // The constant list itself, or a copy of it (`list.copy()`), which is a fresh list.
    if (node->outputs().size() != 1) continue;
    Value* source = node->kind() == c10::aten::copy && node->inputs().size() == 1 ? node->input(0)
                                                                                  : node->output();
    if (source->node()->kind() != c10::prim::Constant) continue;
    std::optional<c10::IValue> value = torch::jit::toIValue(source);
    if (!value || !value->isIntList()) continue;
    const auto& uses = node->output()->uses();
    bool mutated = std::any_of(uses.begin(), uses.end(), [](const torch::jit::Use& use) {
      return WritesInput(*use.user, use.offset);
    });
    if (!mutated) continue;
    torch::jit::WithInsertPoint before(node);
    std::vector<Value*> elements;
    for (int64_t element : value->toIntVector()) elements.push_back(graph.insertConstant(element));
    Node* list = graph.insertNode(graph.createList(c10::IntType::get(), elements));
    node->output()->replaceAllUsesWith(list->output());
    node->destroy();
    rewrote = true;
  }
  return rewrote;
}

}  // namespace tvmbridge::passes
