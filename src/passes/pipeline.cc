#include "passes/pipeline.h"

#include <sstream>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/serialization/import.h>

#include "frontend/op_traits.h"
#include "passes/passes.h"

namespace tvmbridge::passes {

bool RemoveLocalMutation(const std::shared_ptr<torch::jit::Graph>& graph) {
  std::shared_ptr<torch::jit::Graph> mutable_graph = graph;
  bool changed = MaterializeMutatedConstantLists(*graph);
  changed |= torch::jit::RemoveListMutation(mutable_graph);
  changed |= FunctionalizeListAppends(*graph);
  changed |= torch::jit::RemoveTensorMutation(mutable_graph);
  changed |= FunctionalizeWrites(*graph);
  return changed;
}

namespace {

using frontend::AliasedInput;
using frontend::IsInPlace;

// For from_torchscript (InputWrites::kRefuse): what mutation is left after preparation must
// not be visible outside the graph, which a Relax function could not express.
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
  FoldMemoisedAttributes(prepared.graph);
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

}  // namespace tvmbridge::passes
