// A region as its users handle it: its nodes copied into a graph of their own (enable's
// compilation groups and their specialised versions, never-slower timing, from_torchscript's
// TorchScript fallback), and its nodes replaced in their graph by one call (compile's
// tvmbridge::run, enable's compilation group).
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include <torch/csrc/jit/ir/ir.h>

#include "partition/partitioner.h"

namespace tvmbridge::partition {

// Original value -> the value that stands for it in the graph the nodes are copied into.
using ValueRemap = std::unordered_map<torch::jit::Value*, torch::jit::Value*>;

// What a value the nodes read from outside them (and outside `remap`) stands for in the new
// graph: a constant cloned in, a value computed there... It may copy further nodes in with
// CopyNodesInto (the producers of compile-time values), or throw to refuse the region.
using OutsideValue = std::function<torch::jit::Value*(torch::jit::Value*)>;

// Appends copies of `nodes` (in order, nested blocks included) to `graph`. `remap` holds what
// stands for the region's inputs; a value read from anywhere else is asked of `outside` once;
// every value the nodes define is added to `remap`, mapped to its copy.
void CopyNodesInto(torch::jit::Graph& graph, const std::vector<torch::jit::Node*>& nodes,
                   ValueRemap& remap, const OutsideValue& outside);

// For regions whose inputs `remap` already holds all of: reading anything else is a bug.
torch::jit::Value* NothingFromOutside(torch::jit::Value* value);

// What stands for a region in its graph: given the values its inputs are now, inserts the call
// (at the graph's insertion point) and returns one value per region output.
using RegionCall =
    std::function<std::vector<torch::jit::Value*>(const std::vector<torch::jit::Value*>&)>;

// Replaces `region`'s nodes by what `call` inserts before its first node. An input that a
// region replaced earlier produced is what `replaced` says stands for it now; the outputs'
// uses move to the call's results (which take their types and names), `replaced` records
// them, and the region's nodes go.
void ReplaceRegion(const Region& region, ValueRemap& replaced, const RegionCall& call);

}  // namespace tvmbridge::partition
