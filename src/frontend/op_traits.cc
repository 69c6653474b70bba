#include "frontend/op_traits.h"

#include <algorithm>

#include <ATen/core/function_schema.h>
#include <torch/csrc/jit/runtime/operator.h>

namespace tvmbridge::frontend {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The alias sets an argument or result is annotated with, its elements' included
// (`Tensor(a)[]`); empty when it promises a new tensor.
std::vector<c10::Symbol> AliasSets(const c10::Argument& argument) {
  std::vector<c10::Symbol> sets;
  const c10::AliasInfo* alias = argument.alias_info();
  if (alias == nullptr) return sets;
  sets.insert(sets.end(), alias->beforeSets().begin(), alias->beforeSets().end());
  for (const c10::AliasInfo& element : alias->containedTypes()) {
    sets.insert(sets.end(), element.beforeSets().begin(), element.beforeSets().end());
  }
  return sets;
}

bool TakesElementOfList(const Node& node) {
  return node.kind() == c10::prim::ListUnpack ||
         (node.kind() == c10::aten::__getitem__ &&
          node.input(0)->type()->kind() == c10::TypeKind::ListType);
}

}  // namespace

bool IsInPlace(const Node& node) {
  const std::string name = node.kind().toUnqualString();
  return node.kind().is_aten() && name.size() > 1 && name.back() == '_' &&
         name[name.size() - 2] != '_';
}

const Value* OutArgument(const Node& node) {
  const c10::FunctionSchema* schema = node.maybeSchema();
  if (schema == nullptr) return nullptr;
  for (size_t i = 0; i < schema->arguments().size() && i < node.inputs().size(); ++i) {
    if (schema->arguments()[i].is_out()) return node.inputs()[i];
  }
  return nullptr;
}

Value* AliasedInput(const Value* value) {
  const Node* node = value->node();
  if (TakesElementOfList(*node)) return AliasedInput(node->input(0)) ? node->input(0) : nullptr;
  // JIT passes write chunk as prim::ConstantChunk, which has no schema: its results are views.
  if (node->kind() == c10::prim::ConstantChunk) return node->input(0);
  const c10::FunctionSchema* schema = node->maybeSchema();
  if (schema == nullptr || value->offset() >= schema->returns().size()) return nullptr;
  std::vector<c10::Symbol> result_sets = AliasSets(schema->returns()[value->offset()]);
  if (result_sets.empty()) return nullptr;
  for (size_t i = 0; i < schema->arguments().size() && i < node->inputs().size(); ++i) {
    for (c10::Symbol set : AliasSets(schema->arguments()[i])) {
      if (std::find(result_sets.begin(), result_sets.end(), set) != result_sets.end()) {
        return node->input(i);
      }
    }
  }
  return nullptr;
}

bool MayHaveDynamicOutputShape(const Node& node) {
  const torch::jit::Operator* op = node.maybeOperator();
  if (op == nullptr) return false;
  c10::ArrayRef<at::Tag> tags = op->getTags();
  if (std::find(tags.begin(), tags.end(), at::Tag::dynamic_output_shape) != tags.end()) {
    return true;
  }
  // Untagged in PyTorch 2.14: where(condition) is nonzero(condition, as_tuple=True).
  static const std::vector<c10::OperatorName> untagged = {
      {"aten::where", ""},
      {"aten::nonzero_numpy", ""},
      {"aten::repeat_interleave", "self_Tensor"},
      {"torchvision::nms", ""},
  };
  return std::find(untagged.begin(), untagged.end(), op->schema().operator_name()) !=
         untagged.end();
}

}  // namespace tvmbridge::frontend
