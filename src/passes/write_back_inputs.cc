#include <algorithm>
#include <unordered_set>
#include <vector>

#include <torch/csrc/jit/runtime/operator.h>

#include "frontend/op_traits.h"
#include "passes/graph_walk.h"
#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using frontend::IsInPlace;
using torch::jit::Node;
using torch::jit::Value;

// Whether in-place `node` keeps its target's shape and strides, so that computing it out of
// place and copying the result back is the same write: its functional form exists and makes
// a new tensor (unsqueeze_, t_ and the like have view forms: they change metadata, not data).
bool WritesDataOnly(const Node& node) {
  if (node.kind() == c10::aten::copy_) return true;
  std::string name = node.kind().toUnqualString();
  const auto functional =
      torch::jit::getAllOperatorsFor(c10::Symbol::aten(name.substr(0, name.size() - 1)));
  if (functional.empty()) return false;
  return std::none_of(functional.begin(), functional.end(), [](const auto& op) {
    const c10::FunctionSchema& schema = op->schema();
    return !schema.arguments().empty() && schema.arguments()[0].alias_info() != nullptr;
  });
}

// Whether every write to graph input `input`, directly or through a value that may alias it
// (a view, an element of a list holding it, an in-place op's result), is an in-place op that
// writes data only; false when there is none, or one the graph cannot follow (a write inside
// control flow that carries the input, an `out=` argument, a change of shape).
bool WritesOnlyData(Value* input) {
  std::vector<Value*> pending{input};
  std::unordered_set<const Value*> seen{input};
  bool written = false;
  while (!pending.empty()) {
    Value* value = pending.back();
    pending.pop_back();
    for (const torch::jit::Use& use : value->uses()) {
      Node* user = use.user;
      if (user == input->owningGraph()->return_node()) continue;
      // A branch's or loop's result, or a loop-carried value, may be the input.
      if (user->kind() == c10::prim::Return || !user->blocks().empty()) return false;
      const c10::FunctionSchema* schema = user->maybeSchema();
      if (schema != nullptr && WritesInput(*user, use.offset)) {
        if (!IsInPlace(*user) || use.offset != 0 || !WritesDataOnly(*user)) return false;
        written = true;
      }
      // Results of ops without a schema (list and tuple packing) or whose argument carries an
      // alias annotation may share memory with the input.
      bool may_alias = schema == nullptr || (use.offset < schema->arguments().size() &&
                                             schema->arguments()[use.offset].alias_info());
      if (!may_alias) continue;
      for (Value* output : user->outputs()) {
        if (seen.insert(output).second) pending.push_back(output);
      }
    }
  }
  return written;
}

bool PacksResults(const Node& node) {
  return node.kind() == c10::prim::TupleConstruct || node.kind() == c10::prim::ListConstruct;
}

// Where `user` (the return, or a tuple or list packed only for it) hands back `local` itself
// (`return x.add_(1)`), it hands back `caller_tensor` instead, as PyTorch would. The packing
// moves after the copy back, which `caller_tensor` comes from.
void ReturnCallerTensor(Node* user, const Value* local, Value* caller_tensor) {
  for (size_t k = 0; k < user->inputs().size(); ++k) {
    Value* value = user->input(k);
    const Value* object = value;
    while (IsInPlace(*object->node())) object = object->node()->input(0);
    Node* pack = value->node();
    if (object == local) {
      user->replaceInput(k, caller_tensor);
    } else if (PacksResults(*pack) && pack->owningBlock() == user->owningBlock() &&
               value->uses().size() == 1) {
      pack->moveBefore(user);
      ReturnCallerTensor(pack, local, caller_tensor);
    }
  }
}

}  // namespace

std::vector<size_t> WriteBackInputs(torch::jit::Graph& graph) {
  std::vector<size_t> written_back;
  Node* ret = graph.return_node();
  for (size_t i = 1; i < graph.inputs().size(); ++i) {
    Value* input = graph.inputs()[i];
    if (!IsTensorType(input) || !WritesOnlyData(input)) continue;
    torch::jit::WithInsertPoint at_start(graph.param_node()->next());
    Value* local = graph.insert(c10::aten::clone, {input});
    local->setType(input->type());
    input->replaceAllUsesAfterNodeWith(local->node(), local);
    torch::jit::WithInsertPoint at_end(ret);
    Value* caller_tensor = graph.insert(c10::aten::copy_, {input, local});
    caller_tensor->setType(input->type());
    ReturnCallerTensor(ret, local, caller_tensor);
    written_back.push_back(i - 1);
  }
  return written_back;
}

bool IsWriteBack(const Node& node) {
  auto copies_into_input = [](const Node& candidate) {
    return candidate.kind() == c10::aten::copy_ &&
           candidate.input(0)->node() == candidate.owningGraph()->param_node();
  };
  if (!copies_into_input(node)) return false;
  for (const Node* next = node.next(); next != node.owningGraph()->return_node();
       next = next->next()) {
    if (next->kind() != c10::prim::Constant && !PacksResults(*next) && !copies_into_input(*next)) {
      return false;
    }
  }
  return true;
}

}  // namespace tvmbridge::passes
