// Which nodes TVM takes, grouped into regions; everything else stays TorchScript.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <torch/csrc/jit/ir/ir.h>

#include "frontend/converter.h"
#include "partition/shape_observer.h"

namespace tvmbridge::partition {

struct PartitionOptions {
  // Regions with fewer ops than this run in PyTorch: a boundary crossing costs more than
  // a tiny kernel gains.
  int64_t min_block_size = 3;
  std::unordered_set<std::string> torch_executed_ops;      // "aten::topk"
  std::unordered_set<std::string> torch_executed_modules;  // class or instance names
  bool require_full_compilation = false;
  // Used by Compile, not by PartitionGraph: measure each built region against PyTorch
  // running its nodes and keep PyTorch where TVM is slower (off under
  // require_full_compilation).
  bool never_slower = false;
};

// Where one node runs, and why it is not TVM when it is not.
struct NodePlacement {
  const torch::jit::Node* node = nullptr;
  int region = -1;     // index into Partition::regions, or -1: PyTorch
  std::string reason;  // why PyTorch (empty for TVM)
  // Runs in PyTorch for a reason (TVM could not take it, or was measured slower): false for
  // TVM nodes, constants and tuple/list bookkeeping.
  bool fallback = false;
};

// A run of consecutive nodes of one TorchScript block that becomes one TVM module.
struct Region {
  std::vector<torch::jit::Node*> nodes;
  std::vector<torch::jit::Value*> inputs;   // tensors from outside, in first-use order
  std::vector<torch::jit::Value*> outputs;  // tensors used after the region
};

struct Partition {
  std::vector<Region> regions;
  std::vector<NodePlacement> placements;  // every non-constant node, in graph order
  frontend::ValueMap constants;           // values known at compile time, for the regions
};

// Throws c10::Error for option mistakes (an unknown op name) and, under
// require_full_compilation, one error listing every node TVM cannot take.
Partition PartitionGraph(torch::jit::Graph& graph, const Observations& observations,
                         const PartitionOptions& options);

// Regions found without shapes, from op kinds alone (what a JIT pass sees before any call):
// a node is a TVM candidate when it has a converter or is scalar code TVM's side can fold;
// control flow, in-place ops on aliased tensors and attribute reads stay in PyTorch. Same
// region formation and evictions as PartitionGraph; whether each candidate really converts
// is decided later, by PartitionGraph on the region's subgraph with real shapes.
std::vector<Region> RegionsByOpKind(torch::jit::Graph& graph, int64_t min_block_size);

// The Relax module of one region: its inputs are the function's parameters (observed shapes),
// its outputs a tuple. `input_specs`/`output_specs` receive what the TVMModule checks.
tvm::ffi::ObjectRef BuildRegionModule(const Region& region, const Partition& partition,
                                      const Observations& observations,
                                      std::vector<TensorSpec>& input_specs,
                                      std::vector<TensorSpec>& output_specs);

// "file.py:12" or "" when TorchScript kept no location.
std::string SourceLocation(const torch::jit::Node& node);

}  // namespace tvmbridge::partition
