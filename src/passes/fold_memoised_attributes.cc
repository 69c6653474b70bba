// A dict attribute used as a memo (timm's LeViT: `if key not in self.cache: self.cache[key] =
// expr; return self.cache[key]`) becomes `expr`. Freezing keeps such an attribute, since
// forward writes it, and each read of it would keep its attention in PyTorch.
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

// `value` read as `prim::GetAttr[name](module)`: the module and the name, or null.
const Value* AttributeOwner(const Value* value, std::string* name) {
  const Node* node = value->node();
  if (node->kind() != c10::prim::GetAttr) return nullptr;
  *name = node->s(c10::attr::name);
  return node->input(0);
}

bool IsAttribute(const Value* value, const Value* module, const std::string& name) {
  std::string read;
  return AttributeOwner(value, &read) == module && read == name;
}

// The memo `branch` fills, when it is `if not attribute.__contains__(key): attribute[key] =
// value` with only pure nodes besides the write and an empty else: the write.
Node* MemoWrite(Node* branch, const Value** module, std::string* name, const Value** key) {
  if (branch->kind() != c10::prim::If || branch->outputs().size() != 0) return nullptr;
  const Node* negation = branch->input(0)->node();
  if (negation->kind() != c10::aten::__not__) return nullptr;
  const Node* contains = negation->input(0)->node();
  if (contains->kind() != c10::aten::__contains__ ||
      !contains->input(0)->type()->cast<c10::DictType>()) {
    return nullptr;
  }
  *module = AttributeOwner(contains->input(0), name);
  *key = contains->input(1);
  const Block* otherwise = branch->blocks()[1];
  if (*module == nullptr || otherwise->nodes().begin() != otherwise->nodes().end()) return nullptr;
  Node* write = nullptr;
  for (Node* node : branch->blocks()[0]->nodes()) {
    if (node->kind() == c10::aten::_set_item && write == nullptr &&
        IsAttribute(node->input(0), *module, *name) && node->input(1) == *key) {
      write = node;
    } else if (node->kind() == c10::prim::GetAttr) {
      continue;  // the attribute read again for the write
    } else if (node->hasSideEffects() || !node->blocks().empty() ||
               (node->maybeSchema() && node->schema().is_mutable())) {
      return nullptr;
    }
  }
  return write;
}

// The reads of `key` that the memo filled by `branch` serves, when every use of the attribute
// in the graph is this memo's (its membership test, its write, and reads of `key` after
// `branch` in its block); nullopt otherwise.
std::optional<std::vector<Node*>> MemoReads(const Block* block, const Node* branch,
                                            const Value* module, const std::string& name,
                                            const Value* key) {
  std::vector<Node*> reads;
  for (const Node* node : block->nodes()) {
    for (const Block* nested : node->blocks()) {
      std::optional<std::vector<Node*>> inner = MemoReads(nested, branch, module, name, key);
      if (!inner) return std::nullopt;
      reads.insert(reads.end(), inner->begin(), inner->end());
    }
    if (node->kind() != c10::prim::GetAttr || node->input(0) != module ||
        node->s(c10::attr::name) != name) {
      continue;
    }
    for (const torch::jit::Use& use : node->output()->uses()) {
      const c10::Symbol kind = use.user->kind();
      if (use.user->inputs().size() < 2 || use.user->input(1) != key) return std::nullopt;
      if (kind == c10::aten::__getitem__) {
        if (use.user->owningBlock() != branch->owningBlock() || !use.user->isAfter(branch)) {
          return std::nullopt;
        }
        reads.push_back(use.user);
      } else if (kind != c10::aten::__contains__ && kind != c10::aten::_set_item) {
        return std::nullopt;
      }
    }
  }
  return reads;
}

bool FoldIn(Block* block, torch::jit::Graph& graph) {
  bool changed = false;
  for (auto it = block->nodes().begin(); it != block->nodes().end();) {
    Node* branch = *it++;
    for (Block* nested : branch->blocks()) changed |= FoldIn(nested, graph);
    const Value* module = nullptr;
    const Value* key = nullptr;
    std::string name;
    Node* write = MemoWrite(branch, &module, &name, &key);
    if (write == nullptr) continue;
    std::optional<std::vector<Node*>> reads = MemoReads(graph.block(), branch, module, name, key);
    if (!reads) continue;
    Value* memo = write->input(2);
    // The value's computation moves before the branch; the reads after it become the value.
    std::vector<Node*> computation;
    for (Node* node : branch->blocks()[0]->nodes()) {
      if (node != write && node->kind() != c10::prim::GetAttr) computation.push_back(node);
    }
    for (Node* node : computation) node->moveBefore(branch);
    for (Node* read : *reads) read->output()->replaceAllUsesWith(memo);
    branch->destroy();
    changed = true;
  }
  return changed;
}

}  // namespace

bool FoldMemoisedAttributes(const std::shared_ptr<torch::jit::Graph>& graph) {
  const bool changed = FoldIn(graph->block(), *graph);
  if (changed) torch::jit::EliminateDeadCode(graph);
  return changed;
}

}  // namespace tvmbridge::passes
