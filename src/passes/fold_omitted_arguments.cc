#include <c10/util/Exception.h>
#include <torch/csrc/jit/ir/ir.h>

#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

// Whether a forward guard can compare `value` as a constant (`attn_mask is None`,
// `if is_causal:`), so that the branches on it fold.
bool IsFoldable(const c10::IValue& value) {
  return value.isNone() || value.isInt() || value.isDouble() || value.isBool() || value.isString();
}

}  // namespace

std::vector<OmittedArgument> FoldOmittedArguments(const std::shared_ptr<torch::jit::Graph>& graph,
                                                  const torch::jit::Module& module, size_t given) {
  const size_t declared = graph->inputs().size() - 1;
  TORCH_CHECK_VALUE(declared >= given, "tvmbridge: the model's forward takes ", declared,
                    " input(s) but ", given, " input spec(s) were given");
  std::vector<OmittedArgument> omitted;
  if (given == declared) return omitted;
  const std::vector<c10::Argument>& arguments =
      module.get_method("forward").function().getSchema().arguments();
  bool folded_any = false;
  for (size_t i = given; i < declared; ++i) {
    const c10::Argument& argument = arguments.at(i + 1);
    TORCH_CHECK_VALUE(argument.default_value().has_value(), "tvmbridge: the model's forward takes ",
                      declared, " input(s) but ", given, " were given, and input ", i, " ('",
                      argument.name(), "') has no default value to take instead");
    OmittedArgument entry{i, argument.name(), *argument.default_value(), false};
    if (IsFoldable(entry.value)) {
      torch::jit::WithInsertPoint at_start(graph->block()->param_node()->next());
      graph->inputs()[i + 1]->replaceAllUsesWith(graph->insertConstant(entry.value));
      entry.folded = folded_any = true;
    }
    omitted.push_back(std::move(entry));
  }
  // `attn_mask is not None` on an argument left out then decides nothing at run time.
  if (folded_any) FoldNoneChecks(graph);
  return omitted;
}

}  // namespace tvmbridge::passes
