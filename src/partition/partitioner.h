// Which nodes TVM takes, grouped into regions; everything else stays TorchScript.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
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

// Why a node runs where it runs: the report's `cause` (CauseName), the detail in its `reason`.
enum class PlacementCause {
  kTvm,                 // in a TVM region
  kConstant,            // computed from constants at compile time
  kUnsupported,         // no converter, or its converter refused these arguments
  kInputFromPyTorch,    // an input TVM cannot take from PyTorch code
  kDataDependentShape,  // its result's extents depend on tensor values
  kControlFlow,         // control flow decided at run time, or a loop too long to unroll
  kRaises,              // raises an exception
  kUserChoice,          // torch_executed_ops or torch_executed_modules
  kAliasedWrite,        // an in-place op on an aliased tensor, or a view such an op writes
  kResultForPyTorch,    // PyTorch code reads a result a region cannot hand over
  kBelowMinBlockSize,   // its region was smaller than min_block_size
  kBuildFailed,         // TVM could not build its region
  kMeasuredSlower,      // never_slower measured its region slower in TVM than in PyTorch
  kWriteBack,           // bookkeeping: copies a result into an input, as PyTorch would
  kPacksForPyTorch,     // bookkeeping: packs tensors for PyTorch code
};
// Every cause with its name in reports ("measured_slower"); Python's tvmbridge.torch.CAUSES
// lists the same names (tested).
const std::vector<std::pair<PlacementCause, const char*>>& CauseNames();
const char* CauseName(PlacementCause cause);
// Runs in PyTorch because TVM could not or may not take it: not TVM, constants or bookkeeping.
bool IsFallback(PlacementCause cause);

// Where one node runs, and why.
struct NodePlacement {
  const torch::jit::Node* node = nullptr;
  int region = -1;  // index into Partition::regions, or -1: PyTorch
  PlacementCause cause = PlacementCause::kTvm;
  std::string reason;  // the cause in words, with its detail (empty for TVM)
  bool fallback() const { return IsFallback(cause); }
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
