// enable()'s graph pass: when TorchScript's executor optimises a graph, each region the
// partitioner finds from op kinds alone becomes a `tvmbridge::CompilationGroup` node holding
// the region as its subgraph (group_operator.cc runs it).
#include <unordered_map>
#include <unordered_set>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/pass_manager.h>
#include <torch/csrc/jit/passes/remove_mutation.h>

#include "compiler/group_state.h"
#include "frontend/converter.h"
#include "partition/partitioner.h"
#include "partition/region_graph.h"

namespace tvmbridge::groups {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

bool WritesAttributes(const torch::jit::Block& block) {
  for (const Node* node : block.nodes()) {
    if (node->kind() == c10::prim::SetAttr) return true;
    for (const torch::jit::Block* nested : node->blocks()) {
      if (WritesAttributes(*nested)) return true;
    }
  }
  return false;
}

// A module that is not frozen reads each weight (`prim::GetAttr` on `self`) just before its
// use, which would split every run of supported ops. When the graph writes no attribute, the
// reads move to the top, in order, and the runs close up.
void HoistAttributeReads(Graph& graph) {
  if (WritesAttributes(*graph.block())) return;
  std::vector<Node*> reads;
  std::unordered_set<const Node*> hoisted;
  for (Node* node : graph.nodes()) {
    if (node->kind() != c10::prim::GetAttr) continue;
    const Node* source = node->input(0)->node();
    if (source->kind() == c10::prim::Param || hoisted.count(source)) {
      reads.push_back(node);
      hoisted.insert(node);
    }
  }
  Node* front = nullptr;
  for (Node* node : graph.nodes()) {
    if (!hoisted.count(node)) {
      front = node;
      break;
    }
  }
  for (Node* read : reads) {
    if (front != nullptr && front->isBefore(read)) read->moveBefore(front);
  }
}

// The region as a graph of its own: its inputs (`inputs`: the values that stand for
// region.inputs now), the constants it uses, its nodes.
std::shared_ptr<Graph> RegionSubgraph(const partition::Region& region,
                                      const std::vector<Value*>& inputs) {
  auto subgraph = std::make_shared<Graph>();
  partition::ValueRemap inner;
  for (Value* input : inputs) inner[input] = subgraph->addInput()->copyMetadata(input);
  partition::CopyNodesInto(*subgraph, region.nodes, inner, [&](Value* value) {
    TORCH_INTERNAL_ASSERT(value->node()->kind() == c10::prim::Constant, "a region reads %",
                          value->debugName(), " from outside");
    return subgraph->insertNode(subgraph->createClone(value->node(), nullptr))->output();
  });
  for (Value* output : region.outputs) subgraph->registerOutput(inner.at(output));
  return subgraph;
}

// `replaced` maps outputs of regions already replaced to the group outputs standing for them.
void ReplaceWithGroup(Graph& graph, const partition::Region& region, int64_t settings_id,
                      partition::ValueRemap& replaced) {
  partition::ReplaceRegion(region, replaced, [&](const std::vector<Value*>& inputs) {
    std::vector<int64_t> attribute_inputs;
    for (Value* input : inputs) {
      attribute_inputs.push_back(input->node()->kind() == c10::prim::GetAttr ? 1 : 0);
    }
    Node* group = graph.insertNode(graph.create(GroupKind(), inputs, region.outputs.size()));
    group->g_(c10::attr::Subgraph, RegionSubgraph(region, inputs));
    group->is_(AttributeInputsAttribute(), attribute_inputs);
    group->i_(SettingsIdAttribute(), settings_id);
    return std::vector<Value*>(group->outputs().begin(), group->outputs().end());
  });
}

// Returns the number of groups made.
size_t FormGroups(Graph& graph, int64_t min_block_size, int64_t settings_id) {
  std::vector<partition::Region> regions = partition::RegionsByOpKind(graph, min_block_size);
  partition::ValueRemap replaced;
  for (const partition::Region& region : regions) {
    ReplaceWithGroup(graph, region, settings_id, replaced);
  }
  return regions.size();
}

void FuseCompilationGroups(std::shared_ptr<Graph>& graph) {
  auto [settings_id, settings] = CurrentSettings();
  if (settings == nullptr) return;
  const int64_t min_block_size = settings->options.min_block_size;
  // On a copy: a failure here must leave the user's graph as it was, and not raise.
  std::shared_ptr<Graph> grouped = graph->copy();
  try {
    HoistAttributeReads(*grouped);
    torch::jit::RemoveListMutation(grouped);
    torch::jit::RemoveTensorMutation(grouped);
    size_t groups = FormGroups(*grouped, min_block_size, settings_id);
    if (groups == 0) return;
    torch::jit::EliminateDeadCode(grouped);
    grouped->lint();
    Statistics().groups += static_cast<int64_t>(groups);
    graph = std::move(grouped);
  } catch (const std::exception& error) {
    TORCH_WARN(
        "tvmbridge: this graph stays stock TorchScript; forming compilation groups "
        "failed: ",
        frontend::ErrorText(error));
  }
}

const torch::jit::RegisterPass kGroupPass(FuseCompilationGroups);

}  // namespace

}  // namespace tvmbridge::groups
