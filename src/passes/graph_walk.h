// Small queries the graph passes share: walking nested blocks, reading what a schema says an
// op writes, telling tensors and None apart.
#pragma once

#include <vector>

#include <torch/csrc/jit/ir/ir.h>

namespace tvmbridge::passes {

// Appends every node of `block` and its nested blocks, in program order.
inline void CollectNodes(torch::jit::Block* block, std::vector<torch::jit::Node*>& nodes) {
  for (torch::jit::Node* node : block->nodes()) {
    nodes.push_back(node);
    for (torch::jit::Block* nested : node->blocks()) CollectNodes(nested, nodes);
  }
}

inline std::vector<torch::jit::Node*> AllNodes(torch::jit::Graph& graph) {
  std::vector<torch::jit::Node*> nodes;
  CollectNodes(graph.block(), nodes);
  return nodes;
}

// Whether `node` may write to its input `index` (its schema marks the argument mutable).
inline bool WritesInput(const torch::jit::Node& node, size_t index) {
  const c10::FunctionSchema* schema = node.maybeSchema();
  if (schema == nullptr || index >= schema->arguments().size()) return true;
  const c10::AliasInfo* alias = schema->arguments()[index].alias_info();
  if (alias != nullptr && alias->isWrite()) return true;
  // Tensor(a!)[]: the write is annotated on the contained type.
  return alias != nullptr && !alias->containedTypes().empty() &&
         alias->containedTypes()[0].isWrite();
}

inline bool IsTensorType(const torch::jit::Value* value) {
  return value->type()->kind() == c10::TypeKind::TensorType;
}

inline bool IsNoneType(const torch::jit::Value* value) {
  return value->type()->kind() == c10::TypeKind::NoneType;
}

}  // namespace tvmbridge::passes
