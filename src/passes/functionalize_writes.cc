#include <algorithm>
#include <vector>

#include "frontend/op_traits.h"
#include "passes/graph_walk.h"
#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using frontend::AliasedInput;
using frontend::IsInPlace;
using torch::jit::Node;
using torch::jit::Value;

// Whether `value` has a use that `node` precedes (in its block or a later node's blocks).
bool UsedAfter(const Value* value, const Node* node) {
  return std::any_of(value->uses().begin(), value->uses().end(),
                     [&](const torch::jit::Use& use) { return node->isBefore(use.user); });
}

// Whether a view of `base` (any value whose memory the schemas say may be base's), made before
// `node`, is read after it: a write by `node` into base would have to change it too.
bool AliasReadAfter(torch::jit::Graph& graph, const Value* base, const Node* node) {
  for (const Node* earlier : AllNodes(graph)) {
    if (!earlier->isBefore(node)) continue;
    for (const Value* output : earlier->outputs()) {
      if (!UsedAfter(output, node)) continue;
      for (const Value* step = AliasedInput(output); step != nullptr; step = AliasedInput(step)) {
        if (step == base) return true;
      }
    }
  }
  return false;
}

// The functional form of in-place `node` on `self`: the same op without the underscore and
// with the same arguments; copy_ becomes its source, cast to self's dtype and broadcast to
// its shape. Returns nullptr when PyTorch has no such op.
Value* InsertFunctionalForm(torch::jit::Graph& graph, Node* node) {
  Value* self = node->input(0);
  if (node->kind() == c10::Symbol::fromQualString("aten::copy_")) {
    Value* cast =
        graph.insert(c10::Symbol::fromQualString("aten::type_as"), {node->input(1), self});
    return graph.insert(c10::Symbol::fromQualString("aten::expand_as"), {cast, self});
  }
  std::string name = node->kind().toUnqualString();
  Node* functional =
      graph.create(c10::Symbol::aten(name.substr(0, name.size() - 1)), node->inputs(), 1);
  graph.insertNode(functional);
  if (functional->maybeSchema() == nullptr) {
    functional->destroy();
    return nullptr;
  }
  functional->output()->setType(self->type());
  return functional->output();
}

// `base` with the part that `view` (a slice or select of it) shows replaced by `updated`.
Value* InsertScatter(torch::jit::Graph& graph, const Node* view, Value* updated) {
  std::vector<torch::jit::NamedValue> args{view->input(0), updated};
  const char* op =
      view->kind() == c10::aten::select ? "aten::select_scatter" : "aten::slice_scatter";
  for (size_t i = 1; i < view->inputs().size(); ++i) args.emplace_back(view->input(i));
  return graph.insert(c10::Symbol::fromQualString(op), args);
}

// Rewrites the in-place op `node` whose target is a fresh tensor of its block, or a chain of
// slices/selects of one (`x[1:3, 0] = y` is copy_ into such a chain), into functional ops:
// the view's new value, scattered back into each base up the chain, and every later use of
// the root tensor reads the result. TorchScript's RemoveTensorMutation leaves these (writes
// through views, index_put_ with computed values) in place. Returns whether it rewrote.
bool FunctionalizeWrite(torch::jit::Graph& graph, Node* node) {
  std::vector<Node*> views;  // outermost last
  Value* root = node->input(0);
  while (root->node()->kind() == c10::aten::slice || root->node()->kind() == c10::aten::select) {
    // A view read after the write would have to change too: leave those to PyTorch.
    if (UsedAfter(root, node)) return false;
    views.push_back(root->node());
    root = root->node()->input(0);
  }
  const Node* producer = root->node();
  if (producer->kind() == c10::prim::Param || producer->owningBlock() != node->owningBlock() ||
      AliasedInput(root) != nullptr || producer->kind() == c10::prim::Constant ||
      root->type()->kind() != c10::TypeKind::TensorType) {
    return false;
  }
  if (AliasReadAfter(graph, root, node)) return false;
  std::vector<torch::jit::Use> later;
  for (const torch::jit::Use& use : root->uses()) {
    if (node->isBefore(use.user)) later.push_back(use);
  }
  torch::jit::WithInsertPoint after(node->next());
  Value* updated = InsertFunctionalForm(graph, node);
  if (updated == nullptr) return false;
  Value* written = updated;
  for (const Node* view : views) updated = InsertScatter(graph, view, updated);
  // The in-place op's result is the view it wrote: a later write through it must reach the
  // root as well, so it becomes the same view of the updated root (not a fresh tensor).
  if (!views.empty() && node->output()->hasUses()) {
    written = updated;
    for (auto view = views.rbegin(); view != views.rend(); ++view) {
      Value* base = (*view)->input(0);
      Node* again = graph.insertNode(
          graph.createClone(*view, [&](Value* input) { return input == base ? written : input; }));
      written = again->output();
    }
  }
  node->output()->replaceAllUsesWith(written);
  for (const torch::jit::Use& use : later) use.user->replaceInput(use.offset, updated);
  node->destroy();
  return true;
}

}  // namespace

bool FunctionalizeWrites(torch::jit::Graph& graph) {
  bool rewrote = false;
  for (bool changed = true; changed;) {
    changed = false;
    for (Node* node : AllNodes(graph)) {
      if (IsInPlace(*node) && !node->inputs().empty() && FunctionalizeWrite(graph, node)) {
        changed = rewrote = true;
        break;  // the rewrite destroyed nodes: collect again
      }
    }
  }
  return rewrote;
}

}  // namespace tvmbridge::passes
