#include "frontend/op_traits.h"

#include <algorithm>
#include <unordered_set>

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

// The tensor object `value` is known to be, as the value that created it: a graph input or
// the output of an aten op that returns a new tensor object (views included), looking
// through ops that may return their input and the branches `resolve` knows. nullptr when the
// graph does not show it (another branch's result, an element taken out of a list).
const Value* ObjectOrigin(const Value* value, const BranchResolver& resolve) {
  if (resolve) value = resolve(value);
  const Node* node = value->node();
  if (node == value->owningGraph()->param_node()) return value;
  if (!node->kind().is_aten() || !node->blocks().empty()) return nullptr;
  static const std::unordered_set<std::string> element_access = {"aten::__getitem__", "aten::pop"};
  if (element_access.count(node->kind().toQualString()) > 0) return nullptr;
  if (MayReturnItsInput(*node)) {
    return node->inputs().empty() ? nullptr : ObjectOrigin(node->input(0), resolve);
  }
  return value;
}

}  // namespace

bool IsInPlace(const Node& node) {
  const std::string name = node.kind().toUnqualString();
  return node.kind().is_aten() && name.size() > 1 && name.back() == '_' &&
         name[name.size() - 2] != '_';
}

bool MayReturnItsInput(const Node& node) {
  static const std::unordered_set<std::string> ops = {
      "aten::contiguous",
      "aten::to",
      "aten::type_as",
      "aten::flatten",
      "aten::real",
      "aten::conj",
      "aten::resolve_conj",
      "aten::resolve_neg",
      // in eval mode, the input itself
      "aten::dropout",
      "aten::feature_dropout",
      "aten::alpha_dropout",
      "aten::feature_alpha_dropout",
  };
  return IsInPlace(node) || ops.count(node.kind().toQualString()) > 0;
}

std::optional<bool> KnownTensorIdentity(const Value* a, const Value* b,
                                        const BranchResolver& resolve) {
  if (resolve) {
    a = resolve(a);
    b = resolve(b);
  }
  if (a == b) return true;
  const Value* origin_a = ObjectOrigin(a, resolve);
  const Value* origin_b = ObjectOrigin(b, resolve);
  if (origin_a == nullptr || origin_b == nullptr) return std::nullopt;
  // The same origin: one may be the other handed back (`x.contiguous() is x`).
  if (origin_a == origin_b) return std::nullopt;
  return false;
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
