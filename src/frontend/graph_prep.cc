#include "frontend/graph_prep.h"

#include <sstream>
#include <unordered_set>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/serialization/import.h>

namespace tvmbridge::frontend {
namespace {

// Ops whose result shares memory with their first input: mutating the result mutates it.
const std::unordered_set<std::string>& ViewOps() {
  static const std::unordered_set<std::string> ops = {
      "aten::view",       "aten::reshape", "aten::flatten",    "aten::transpose", "aten::permute",
      "aten::t",          "aten::select",  "aten::slice",      "aten::expand",    "aten::squeeze",
      "aten::unsqueeze",  "aten::narrow",  "aten::as_strided", "aten::detach",    "aten::alias",
      "aten::contiguous", "aten::view_as", "aten::expand_as",  "aten::unflatten",
  };
  return ops;
}

bool IsInPlace(const torch::jit::Node& node) {
  const std::string name = node.kind().toUnqualString();
  return node.kind().is_aten() && name.size() > 1 && name.back() == '_' &&
         name[name.size() - 2] != '_';
}

}  // namespace

bool IsInPlace(const torch::jit::Node& node) {
  const std::string name = node.kind().toUnqualString();
  return node.kind().is_aten() && name.size() > 1 && name.back() == '_' &&
         name[name.size() - 2] != '_';
}

bool IsViewOp(const torch::jit::Node& node) {
  return ViewOps().count(node.kind().toQualString()) > 0;
}

namespace {

void CheckMutationIsLocal(const torch::jit::Graph& graph) {
  for (const torch::jit::Node* node : graph.nodes()) {
    if (!IsInPlace(*node) || node->inputs().empty()) continue;
    const torch::jit::Value* target = node->input(0);
    std::ostringstream where;
    where << *node;
    TORCH_CHECK(target->node()->kind() != c10::prim::Param, "tvmbridge: the in-place op ",
                node->kind().toQualString(),
                " modifies a model input, which a compiled module cannot do; in: ", where.str());
    TORCH_CHECK(
        ViewOps().count(target->node()->kind().toQualString()) == 0, "tvmbridge: the in-place op ",
        node->kind().toQualString(),
        " modifies a view of another tensor, which is not supported yet; in: ", where.str());
    for (const torch::jit::Use& use : target->uses()) {
      TORCH_CHECK(use.user == node || use.user->isBefore(node), "tvmbridge: the in-place op ",
                  node->kind().toQualString(),
                  " modifies a tensor that is read again "
                  "afterwards, which is not supported yet; in: ",
                  where.str());
    }
  }
}

void Simplify(std::shared_ptr<torch::jit::Graph>& graph) {
  torch::jit::RemoveListMutation(graph);
  torch::jit::RemoveTensorMutation(graph);
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
}

}  // namespace

torch::jit::Module LoadModule(const std::string& archive) {
  std::istringstream stream(archive);
  return torch::jit::load(stream);
}

PreparedGraph PrepareForConversion(torch::jit::Module module, bool fold_weights,
                                   bool local_mutation_only) {
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
  Simplify(prepared.graph);
  if (local_mutation_only) CheckMutationIsLocal(*prepared.graph);
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
