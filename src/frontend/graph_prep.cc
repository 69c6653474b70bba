#include "frontend/graph_prep.h"

#include <algorithm>
#include <optional>
#include <sstream>
#include <unordered_set>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/serialization/import.h>

#include "frontend/op_traits.h"

namespace tvmbridge::frontend {
namespace {

// Appends every node of `block` and its nested blocks, in program order.
void CollectNodes(torch::jit::Block* block, std::vector<torch::jit::Node*>& nodes) {
  for (torch::jit::Node* node : block->nodes()) {
    nodes.push_back(node);
    for (torch::jit::Block* nested : node->blocks()) CollectNodes(nested, nodes);
  }
}

void CheckMutationIsLocal(const torch::jit::Graph& graph) {
  for (const torch::jit::Node* node : graph.nodes()) {
    if (!IsInPlace(*node) || node->inputs().empty()) continue;
    const torch::jit::Value* target = node->input(0);
    std::ostringstream where;
    where << *node;
    TORCH_CHECK(target->node()->kind() != c10::prim::Param, "tvmbridge: the in-place op ",
                node->kind().toQualString(),
                " modifies a model input, which a compiled module cannot do; in: ", where.str());
    TORCH_CHECK(AliasedInput(target) == nullptr, "tvmbridge: the in-place op ",
                node->kind().toQualString(),
                " modifies a view of another tensor (or a tensor that may be another), which is "
                "not supported yet; in: ",
                where.str());
    for (const torch::jit::Use& use : target->uses()) {
      TORCH_CHECK(use.user == node || use.user->isBefore(node), "tvmbridge: the in-place op ",
                  node->kind().toQualString(),
                  " modifies a tensor that is read again "
                  "afterwards, which is not supported yet; in: ",
                  where.str());
    }
  }
}

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
  std::vector<Node*> nodes;
  CollectNodes(graph.block(), nodes);
  for (const Node* earlier : nodes) {
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

// Whether `node` may write to its input `index` (its schema marks the argument mutable).
bool WritesInput(const Node& node, size_t index) {
  const c10::FunctionSchema* schema = node.maybeSchema();
  if (schema == nullptr || index >= schema->arguments().size()) return true;
  const c10::AliasInfo* alias = schema->arguments()[index].alias_info();
  if (alias != nullptr && alias->isWrite()) return true;
  // Tensor(a!)[]: the write is annotated on the contained type.
  return alias != nullptr && !alias->containedTypes().empty() &&
         alias->containedTypes()[0].isWrite();
}

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

void FunctionalizeListAppends(torch::jit::Graph& graph) {
  std::vector<Node*> nodes;
  CollectNodes(graph.block(), nodes);
  for (Node* node : nodes) {
    if (node->kind() == c10::prim::ListConstruct) FunctionalizeAppends(graph, node);
  }
}

void FunctionalizeWrites(torch::jit::Graph& graph) {
  for (bool changed = true; changed;) {
    changed = false;
    std::vector<Node*> nodes;
    CollectNodes(graph.block(), nodes);
    for (Node* node : nodes) {
      if (IsInPlace(*node) && !node->inputs().empty() && FunctionalizeWrite(graph, node)) {
        changed = true;
        break;  // the rewrite destroyed nodes: collect again
      }
    }
  }
}

bool IsTensorType(const Value* value) { return value->type()->kind() == c10::TypeKind::TensorType; }

bool IsNoneType(const Value* value) { return value->type()->kind() == c10::TypeKind::NoneType; }

// Ops that may hand back the tensor object they were given (when there is nothing to do),
// besides in-place ops, which always do.
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

// The tensor object `value` is known to be, as the value that created it: a graph input or
// the output of an aten op that returns a new tensor object (views included), looking
// through ops that may return their input. nullptr when the graph does not show it (a
// branch's result, an element taken out of a list).
const Value* ObjectOrigin(const Value* value) {
  const Node* node = value->node();
  if (node == value->owningGraph()->param_node()) return value;
  if (!node->kind().is_aten() || !node->blocks().empty()) return nullptr;
  static const std::unordered_set<std::string> element_access = {"aten::__getitem__", "aten::pop"};
  if (element_access.count(node->kind().toQualString()) > 0) return nullptr;
  if (MayReturnItsInput(*node))
    return node->inputs().empty() ? nullptr : ObjectOrigin(node->input(0));
  return value;
}

// What `a is b` is known to be, if anything. `x is None` of a Tensor (an Optional[Tensor]
// argument given a tensor, once calls are inlined) is false unless an op may have left it
// undefined; `x is x` is true (`query is key` of self-attention). Tensors created by
// different ops are different objects; two different inputs of the graph are taken to be
// different tensors too (nn.MultiheadAttention's `query is key` only picks a faster,
// equivalent path).
std::optional<bool> KnownIdentity(const Value* a, const Value* b,
                                  const UndefinedInRuns& undefined_in_runs) {
  if (a == b) return true;
  if (IsNoneType(b)) std::swap(a, b);
  if (IsNoneType(a) && IsTensorType(b)) {
    if (!MayBeUndefined(b)) return false;
    return undefined_in_runs ? undefined_in_runs(b) : std::nullopt;
  }
  if (!IsTensorType(a) || !IsTensorType(b)) return std::nullopt;
  const Value* origin_a = ObjectOrigin(a);
  const Value* origin_b = ObjectOrigin(b);
  if (origin_a == nullptr || origin_b == nullptr) return std::nullopt;
  // The same origin: one may be the other handed back (`x.contiguous() is x`).
  if (origin_a == origin_b) return std::nullopt;
  return false;
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
  std::vector<Node*> nodes;
  CollectNodes(graph->block(), nodes);
  std::vector<std::pair<Node*, bool>> known;
  std::vector<Node*> casts;
  for (Node* node : nodes) {
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

void FoldNoneChecks(const std::shared_ptr<torch::jit::Graph>& graph,
                    const UndefinedInRuns& undefined_in_runs) {
  std::shared_ptr<torch::jit::Graph> folded = graph;
  // Folded branches merge values (`key, value = ...` of both branches become one), which
  // can answer further checks; a handful of rounds reaches the fixed point.
  for (int round = 0; round < 8 && FoldKnownIdentities(graph, undefined_in_runs); ++round) {
    torch::jit::ConstantPropagation(folded);
  }
  torch::jit::ConstantPropagation(folded);
}

namespace {

// A constant list of ints that the graph mutates, or a copy of one (Swin's
// `shift_size = self.shift_size.copy()`, then `shift_size[0] = 0`), as a ListConstruct of
// constants, which TorchScript's RemoveListMutation can rewrite; it leaves those alone.
void MaterializeMutatedConstantLists(torch::jit::Graph& graph) {
  std::vector<Node*> nodes;
  CollectNodes(graph.block(), nodes);
  for (Node* node : nodes) {
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
  }
}

}  // namespace

void RemoveLocalMutation(const std::shared_ptr<torch::jit::Graph>& graph) {
  std::shared_ptr<torch::jit::Graph> mutable_graph = graph;
  MaterializeMutatedConstantLists(*graph);
  torch::jit::RemoveListMutation(mutable_graph);
  FunctionalizeListAppends(*graph);
  torch::jit::RemoveTensorMutation(mutable_graph);
  FunctionalizeWrites(*graph);
}

namespace {

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

namespace {

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

void FoldReadOnlyAttributes(const std::shared_ptr<torch::jit::Graph>& graph,
                            const torch::jit::Module& self) {
  std::vector<Node*> nodes;
  CollectNodes(graph->block(), nodes);
  std::vector<Node*> reads;
  for (Node* node : nodes) {
    if (node->kind() == c10::prim::GetAttr &&
        node->output()->type()->kind() == c10::TypeKind::TensorType) {
      reads.push_back(node);
    }
  }
  if (reads.empty()) return;
  torch::jit::AliasDb alias_db(graph);
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
  }
  torch::jit::EliminateDeadCode(graph);
}

namespace {

void Simplify(std::shared_ptr<torch::jit::Graph>& graph) {
  FoldNoneChecks(graph);
  RemoveLocalMutation(graph);
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
}

}  // namespace

torch::jit::Module LoadModule(const std::string& archive) {
  std::istringstream stream(archive);
  return torch::jit::load(stream);
}

PreparedGraph PrepareForConversion(torch::jit::Module module, bool fold_weights,
                                   InputWrites input_writes) {
  PreparedGraph prepared;
  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
    prepared.weight_names[parameter.value.data_ptr()] = parameter.name;
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) {
    prepared.weight_names[buffer.value.data_ptr()] = buffer.name;
  }
  TORCH_CHECK(module.find_method("forward").has_value(),
              "tvmbridge: the module has no forward method");
  module.eval();
  prepared.frozen = torch::jit::freeze(module, std::nullopt, /*optimize_numerics=*/fold_weights);
  prepared.graph = prepared.frozen.get_method("forward").graph()->copy();
  torch::jit::Inline(*prepared.graph);
  FoldReadOnlyAttributes(prepared.graph, prepared.frozen);
  if (input_writes == InputWrites::kWriteBack) {
    prepared.written_back_inputs = WriteBackInputs(*prepared.graph);
  }
  Simplify(prepared.graph);
  if (input_writes == InputWrites::kRefuse) CheckMutationIsLocal(*prepared.graph);
  return prepared;
}

PreparedGraph PrepareFrozenGraph(std::shared_ptr<torch::jit::Graph> graph) {
  PreparedGraph prepared;
  prepared.frozen = torch::jit::Module(c10::QualifiedName("__torch__.tvmbridge.FrozenGraph"));
  prepared.graph = std::move(graph);
  prepared.graph->inputs().at(0)->setType(prepared.frozen.type());
  torch::jit::OptimizeFrozenGraph(prepared.graph, /*optimize_numerics=*/true);
  Simplify(prepared.graph);
  return prepared;
}

}  // namespace tvmbridge::frontend
