#include "partition/region_graph.h"

#include <c10/util/Exception.h>

namespace tvmbridge::partition {

void CopyNodesInto(torch::jit::Graph& graph, const std::vector<torch::jit::Node*>& nodes,
                   ValueRemap& remap, const OutsideValue& outside) {
  auto lookup = [&](torch::jit::Value* value) -> torch::jit::Value* {
    if (auto found = remap.find(value); found != remap.end()) return found->second;
    torch::jit::Value* stand_in = outside(value);
    remap[value] = stand_in;
    return stand_in;
  };
  for (torch::jit::Node* node : nodes) {
    torch::jit::Node* copy = graph.insertNode(graph.createClone(node, lookup));
    for (size_t i = 0; i < node->outputs().size(); ++i) remap[node->output(i)] = copy->output(i);
  }
}

torch::jit::Value* NothingFromOutside(torch::jit::Value* value) {
  TORCH_INTERNAL_ASSERT(false, "tvmbridge: a region reads %", value->debugName(),
                        ", which is not one of its inputs");
}

void ReplaceRegion(const Region& region, ValueRemap& replaced, const RegionCall& call) {
  std::vector<torch::jit::Value*> inputs;
  for (torch::jit::Value* input : region.inputs) {
    auto earlier = replaced.find(input);
    inputs.push_back(earlier != replaced.end() ? earlier->second : input);
  }
  torch::jit::WithInsertPoint before(region.nodes.front());
  std::vector<torch::jit::Value*> results = call(inputs);
  TORCH_INTERNAL_ASSERT(results.size() == region.outputs.size());
  for (size_t i = 0; i < results.size(); ++i) {
    torch::jit::Value* output = region.outputs[i];
    results[i]->setType(output->type())->copyMetadata(output);
    output->replaceAllUsesWith(results[i]);
    replaced[output] = results[i];
  }
  for (auto it = region.nodes.rbegin(); it != region.nodes.rend(); ++it) (*it)->destroy();
}

}  // namespace tvmbridge::partition
