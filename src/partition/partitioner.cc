#include "partition/partitioner.h"

#include "frontend/op_traits.h"
#include "passes/passes.h"

#include <algorithm>
#include <sstream>

#include <c10/util/Exception.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/scope.h>
#include <torch/csrc/jit/runtime/operator.h>

namespace tvmbridge::partition {
namespace {

using frontend::Value;
using frontend::ValueMap;
using torch::jit::Block;
using torch::jit::Node;

enum class Placement { kTvm, kTorch, kConstant };

bool IsTensor(const torch::jit::Value* value) {
  return value->type()->kind() == c10::TypeKind::TensorType;
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// Plain bookkeeping nodes: they do not count towards min_block_size.
bool IsStructural(const Node& node) { return node.kind().is_prim(); }

// An op that makes a region on its own, whatever min_block_size asks (OpTraits::whole_layer).
bool IsWholeLayer(const Node* node) {
  const frontend::RegisteredOp* op = frontend::Converters().Find(*node);
  return op != nullptr && op->traits.whole_layer;
}

// Why a node runs in PyTorch.
struct TorchCause {
  PlacementCause cause;
  std::string reason;
};
using TorchCauses = std::unordered_map<const Node*, TorchCause>;

// The result of trying every node: where it can run, why not TVM, and the values known at
// compile time (constants, folded scalars) that regions may use.
struct Probe {
  std::unordered_map<const Node*, Placement> placement;
  TorchCauses cause;
  ValueMap values;
};

class Prober {
 public:
  Prober(const Observations& observations, const TorchCauses& forced)
      : observations_(observations),
        forced_(forced),
        builder_({}),
        context_(builder_, symbols_, probe_.values, no_weights_) {}

  Probe Run(const torch::jit::Graph& graph) {
    ProbeBlock(*graph.block());
    return std::move(probe_);
  }

 private:
  void ToTorch(const Node& node, PlacementCause cause, std::string reason) {
    ToTorch(node, TorchCause{cause, std::move(reason)});
  }

  void ToTorch(const Node& node, TorchCause cause) {
    probe_.placement[&node] = Placement::kTorch;
    probe_.cause[&node] = std::move(cause);
  }

  // Makes a value computed by PyTorch available to a converter as a region input; returns
  // the reason when it cannot be one.
  std::string Bind(const torch::jit::Value* input) {
    if (probe_.values.count(input)) return "";
    if (!IsTensor(input)) {
      return "its input %" + input->debugName() + " is a " + input->type()->repr_str() +
             " computed by PyTorch";
    }
    auto observed = observations_.find(input);
    if (observed == observations_.end()) {
      return "its input %" + input->debugName() + " was not computed in the example runs";
    }
    if (!observed->second.static_shape) {
      return "its input %" + input->debugName() + " has a data-dependent shape";
    }
    if (c10::isQIntType(observed->second.dtype)) {
      return "its input %" + input->debugName() +
             " is a quantized tensor computed by PyTorch (quantized tensors stay inside one "
             "side)";
    }
    probe_.values[input] = Value::Tensor(
        frontend::MakeInputParam(ObservedSpec(input->debugName(), observed->second), symbols_));
    return "";
  }

  void ProbeBlock(const Block& block) {
    for (const Node* node : block.nodes()) ProbeNode(*node);
  }

  void ProbeNode(const Node& node) {
    if (node.kind() == c10::prim::Constant) {
      frontend::ConvertNode(node, context_, probe_.values);
      probe_.placement[&node] = Placement::kConstant;
      return;
    }
    auto forced = forced_.find(&node);
    if (forced != forced_.end()) {
      ToTorch(node, forced->second);
    } else if (!node.blocks().empty()) {
      const bool counted = node.kind() == c10::prim::Loop &&
                           torch::jit::constant_as<int64_t>(node.input(0)).has_value();
      ToTorch(node, PlacementCause::kControlFlow,
              counted ? "a loop too long to unroll stays in TorchScript (its body is "
                        "compiled once)"
                      : "control flow decided at run time (by tensor values or by "
                        "arguments) stays in TorchScript");
    } else if (node.kind() == c10::prim::RaiseException) {
      ToTorch(node, PlacementCause::kRaises, "raises an exception");

    } else {
      for (const torch::jit::Value* input : node.inputs()) {
        std::string problem = Bind(input);
        if (!problem.empty()) return ToTorch(node, PlacementCause::kInputFromPyTorch, problem);
      }
      try {
        const int value_decided = symbols_.DataDependentCount();
        frontend::ConvertNode(node, context_, probe_.values);
        if (symbols_.DataDependentCount() != value_decided) {
          // TVM computes extents that values decide (nonzero, unique) through Python
          // callbacks (relax.run.nonzero), which a module served from C++ does not have.
          for (const torch::jit::Value* output : node.outputs()) probe_.values.erase(output);
          return ToTorch(node, PlacementCause::kDataDependentShape,
                         "its result's extent depends on tensor values: PyTorch's kernel runs "
                         "it (TVM's needs Python; from_torchscript converts it)");
        }
        bool constant = std::all_of(
            node.outputs().begin(), node.outputs().end(), [&](const torch::jit::Value* output) {
              return probe_.values.at(output).kind == Value::Kind::kConstant;
            });
        probe_.placement[&node] = constant ? Placement::kConstant : Placement::kTvm;
      } catch (const std::exception& error) {
        ToTorch(node, PlacementCause::kUnsupported, FirstLine(frontend::ErrorText(error)));
      }
      return;
    }
    for (const Block* nested : node.blocks()) ProbeBlock(*nested);
  }

  const Observations& observations_;
  const TorchCauses& forced_;
  relax::FunctionBuilder builder_;  // never finished: conversions here are trials
  std::unordered_map<const torch::jit::Value*, relax::Expr> no_weights_;
  relax::Symbols symbols_;  // the trial parameters' extents
  Probe probe_;
  frontend::ConversionContext context_;
};

bool IsConstant(const Probe& probe, const torch::jit::Value* value) {
  auto it = probe.values.find(value);
  return it != probe.values.end() && it->second.kind == Value::Kind::kConstant;
}

void CloseRegion(Region& region, const Probe& probe, std::vector<Region>& regions) {
  if (region.nodes.empty()) return;
  std::unordered_set<const Node*> members(region.nodes.begin(), region.nodes.end());
  for (Node* node : region.nodes) {
    for (torch::jit::Value* input : node->inputs()) {
      if (members.count(input->node()) || IsConstant(probe, input)) continue;
      if (std::find(region.inputs.begin(), region.inputs.end(), input) == region.inputs.end()) {
        region.inputs.push_back(input);
      }
    }
    for (torch::jit::Value* output : node->outputs()) {
      bool used_outside =
          std::any_of(output->uses().begin(), output->uses().end(),
                      [&](const torch::jit::Use& use) { return members.count(use.user) == 0; });
      if (used_outside) region.outputs.push_back(output);
    }
  }
  regions.push_back(std::move(region));
  region = Region();
}

// Regions are runs of consecutive TVM nodes of one block (constants do not break a run), so
// every PyTorch node of the block is before or after a region: no cycle can form.
void FormRegions(Block& block, const Probe& probe, std::vector<Region>& regions) {
  Region current;
  for (Node* node : block.nodes()) {
    Placement placement = probe.placement.at(node);
    if (placement == Placement::kConstant) continue;
    if (placement == Placement::kTvm) {
      current.nodes.push_back(node);
      continue;
    }
    CloseRegion(current, probe, regions);
    for (Block* nested : node->blocks()) FormRegions(*nested, probe, regions);
  }
  CloseRegion(current, probe, regions);
}

// Nodes a region cannot keep: producers of non-tensor or quantized results that PyTorch
// reads, and all nodes of regions smaller than min_block_size.
TorchCauses Evictions(const std::vector<Region>& regions, int64_t min_block_size,
                      const Observations& observations) {
  TorchCauses evict;
  for (const Region& region : regions) {
    for (const torch::jit::Value* output : region.outputs) {
      auto observed = observations.find(output);
      if (observed != observations.end() && c10::isQIntType(observed->second.dtype)) {
        // Inside a region a quantized tensor is its float values (ops_quantized.cc).
        evict[output->node()] = {PlacementCause::kResultForPyTorch,
                                 "its quantized result is used by PyTorch code"};
      } else if (IsStructural(*output->node()) && !IsTensor(output)) {
        evict[output->node()] = {PlacementCause::kPacksForPyTorch,
                                 "packs tensors for PyTorch code"};
      } else if (!IsTensor(output)) {
        evict[output->node()] = {
            PlacementCause::kResultForPyTorch,
            "its " + output->type()->repr_str() + " result is used by PyTorch code"};
      }
    }
    auto ops = std::count_if(region.nodes.begin(), region.nodes.end(),
                             [](const Node* node) { return !IsStructural(*node); });
    if (ops < min_block_size &&
        std::none_of(region.nodes.begin(), region.nodes.end(), IsWholeLayer)) {
      for (const Node* node : region.nodes) {
        evict.emplace(
            node, TorchCause{PlacementCause::kBelowMinBlockSize,
                             "in a block of " + std::to_string(ops) +
                                 " op(s), below min_block_size=" + std::to_string(min_block_size)});
      }
    }
  }
  return evict;
}

bool InModule(const Node& node, const std::unordered_set<std::string>& modules,
              std::string& matched) {
  auto callstack = node.callstack();
  if (!callstack) return false;
  for (const auto& entry : (*callstack)->vec()) {
    const auto& info = std::get<torch::jit::kModuleInstanceInfo>(entry);
    if (!info) continue;
    std::string instance = info->instance_name();
    std::string class_name =
        info->class_type() && info->class_type()->name() ? info->class_type()->name()->name() : "";
    for (const std::string& name : {class_name, instance}) {
      if (!name.empty() && modules.count(name)) {
        matched = name;
        return true;
      }
    }
  }
  return false;
}

void ForceUserChoices(const Block& block, const PartitionOptions& options, TorchCauses& forced,
                      std::unordered_set<std::string>& modules_seen) {
  for (const Node* node : block.nodes()) {
    for (const Block* nested : node->blocks()) {
      ForceUserChoices(*nested, options, forced, modules_seen);
    }
    std::string kind = node->kind().toQualString();
    std::string module;
    if (passes::IsWriteBack(*node)) {
      const torch::jit::Value* input = node->input(0);
      forced[node] = {PlacementCause::kWriteBack,
                      "writes the result back into input '" +
                          frontend::UserName(input, input->offset() - 1) + "', as PyTorch would"};
    } else if (frontend::IsInPlace(*node) || frontend::OutArgument(*node) != nullptr) {
      // TorchScript could not make it functional, so its effect is observed elsewhere: keep
      // it, and the tensor (and the views) it writes through, where the aliasing is real.
      const torch::jit::Value* view =
          frontend::IsInPlace(*node) ? node->input(0) : frontend::OutArgument(*node);
      forced[node] = {PlacementCause::kAliasedWrite,
                      "in-place op on an aliased tensor (its effect must stay visible)"};
      if (view != node->input(0)) {
        forced[view->node()] = {PlacementCause::kAliasedWrite, "tensor written by an out= op"};
      }
      for (const torch::jit::Value* base = frontend::AliasedInput(view); base != nullptr;
           view = base, base = frontend::AliasedInput(view)) {
        forced[view->node()] = {PlacementCause::kAliasedWrite, "view written to by an in-place op"};
      }
    } else if (options.torch_executed_ops.count(kind)) {
      forced[node] = {PlacementCause::kUserChoice, "listed in torch_executed_ops"};
    } else if (InModule(*node, options.torch_executed_modules, module)) {
      forced[node] = {PlacementCause::kUserChoice,
                      "inside module '" + module + "' (torch_executed_modules)"};
      modules_seen.insert(module);
    }
  }
}

void CheckOpNames(const std::unordered_set<std::string>& names) {
  for (const std::string& name : names) {
    bool known = false;
    if (name.find("::") != std::string::npos) {
      known = !torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(name)).empty();
    }
    TORCH_CHECK_VALUE(known, "torch_executed_ops: '", name,
                      "' is not an operator TorchScript knows; expected a name like "
                      "'aten::topk'");
  }
}

void CollectPlacements(const Block& block, const Probe& probe,
                       const std::unordered_map<const Node*, int>& region_of,
                       std::vector<NodePlacement>& placements) {
  for (const Node* node : block.nodes()) {
    if (node->kind() == c10::prim::Constant) continue;
    NodePlacement placement;
    placement.node = node;
    auto region = region_of.find(node);
    if (region != region_of.end()) {
      placement.region = region->second;
    } else if (probe.placement.at(node) == Placement::kTorch) {
      const TorchCause& cause = probe.cause.at(node);
      placement.cause = cause.cause;
      placement.reason = cause.reason;
    } else {
      placement.cause = PlacementCause::kConstant;
      placement.reason = "computed from constants";
    }
    placements.push_back(std::move(placement));
    for (const Block* nested : node->blocks()) {
      CollectPlacements(*nested, probe, region_of, placements);
    }
  }
}

// `if <condition>: raise ...` with nothing else: scripted code's input checks. A group may
// hold one; with real shapes the condition usually folds away (SpecializeToShapes), and
// otherwise the check runs in TorchScript inside the compiled graph.
bool IsCheck(const Node& node) {
  if (node.kind() != c10::prim::If || !node.outputs().empty()) return false;
  return std::all_of(node.blocks().begin(), node.blocks().end(), [](const Block* block) {
    return std::all_of(block->nodes().begin(), block->nodes().end(), [](const Node* inner) {
      return inner->kind() == c10::prim::RaiseException || inner->kind() == c10::prim::Constant;
    });
  });
}

// Placements from op kinds alone (see RegionsByOpKind).
Probe ProbeKinds(const Block& block, const TorchCauses& forced, Probe probe = {}) {
  for (const Node* node : block.nodes()) {
    std::string kind = node->kind().toQualString();
    if (node->kind() == c10::prim::Constant) {
      probe.placement[node] = Placement::kConstant;
      probe.values[node->output()] = Value::Constant(*torch::jit::toIValue(node->output()));
    } else if (forced.count(node)) {
      probe.placement[node] = Placement::kTorch;
    } else if (IsCheck(*node)) {
      probe.placement[node] = Placement::kTvm;
      continue;
    } else if (!node->blocks().empty() || node->kind() == c10::prim::GetAttr ||
               node->kind() == c10::prim::RaiseException) {
      probe.placement[node] = Placement::kTorch;
    } else {
      bool candidate = frontend::Converters().Find(*node) != nullptr || frontend::CanFold(*node);
      probe.placement[node] = candidate ? Placement::kTvm : Placement::kTorch;
    }
    for (const Block* nested : node->blocks())
      probe = ProbeKinds(*nested, forced, std::move(probe));
  }
  return probe;
}

}  // namespace

std::vector<Region> RegionsByOpKind(torch::jit::Graph& graph, int64_t min_block_size) {
  TorchCauses forced;
  std::unordered_set<std::string> no_modules;
  ForceUserChoices(*graph.block(), PartitionOptions{}, forced, no_modules);
  std::vector<Region> regions;
  while (true) {
    Probe probe = ProbeKinds(*graph.block(), forced);
    regions.clear();
    FormRegions(*graph.block(), probe, regions);
    auto evict = Evictions(regions, min_block_size, Observations{});
    size_t before = forced.size();
    forced.insert(evict.begin(), evict.end());
    if (forced.size() == before) return regions;
  }
}

std::string SourceLocation(const Node& node) {
  auto location = node.sourceRange().file_line_col();
  if (!location) return "";
  const auto& [file, line, column] = *location;
  return file + ":" + std::to_string(line);
}

const std::vector<std::pair<PlacementCause, const char*>>& CauseNames() {
  static const std::vector<std::pair<PlacementCause, const char*>> names = {
      {PlacementCause::kTvm, "tvm"},
      {PlacementCause::kConstant, "constant"},
      {PlacementCause::kUnsupported, "unsupported"},
      {PlacementCause::kInputFromPyTorch, "input_from_pytorch"},
      {PlacementCause::kDataDependentShape, "data_dependent_shape"},
      {PlacementCause::kControlFlow, "control_flow"},
      {PlacementCause::kRaises, "raises"},
      {PlacementCause::kUserChoice, "user_choice"},
      {PlacementCause::kAliasedWrite, "aliased_write"},
      {PlacementCause::kResultForPyTorch, "result_for_pytorch"},
      {PlacementCause::kBelowMinBlockSize, "below_min_block_size"},
      {PlacementCause::kBuildFailed, "build_failed"},
      {PlacementCause::kMeasuredSlower, "measured_slower"},
      {PlacementCause::kWriteBack, "write_back"},
      {PlacementCause::kPacksForPyTorch, "packs_for_pytorch"},
  };
  return names;
}

const char* CauseName(PlacementCause cause) {
  for (const auto& [known, name] : CauseNames()) {
    if (known == cause) return name;
  }
  TORCH_INTERNAL_ASSERT(false, "a placement cause without a name");
}

bool IsFallback(PlacementCause cause) {
  return cause != PlacementCause::kTvm && cause != PlacementCause::kConstant &&
         cause != PlacementCause::kWriteBack && cause != PlacementCause::kPacksForPyTorch;
}

Partition PartitionGraph(torch::jit::Graph& graph, const Observations& observations,
                         const PartitionOptions& options) {
  CheckOpNames(options.torch_executed_ops);
  TorchCauses forced;
  std::unordered_set<std::string> modules_seen;
  ForceUserChoices(*graph.block(), options, forced, modules_seen);
  for (const std::string& module : options.torch_executed_modules) {
    TORCH_CHECK_VALUE(modules_seen.count(module),
                      "torch_executed_modules: no op of the model "
                      "runs inside a submodule named '",
                      module,
                      "' (give a class name like "
                      "'MyHead' or an attribute path like 'head')");
  }

  // Trying nodes, forming regions and evicting what regions cannot keep, until stable: each
  // round only grows the set of PyTorch nodes, so it ends.
  Probe probe;
  std::vector<Region> regions;
  while (true) {
    probe = Prober(observations, forced).Run(graph);
    regions.clear();
    FormRegions(*graph.block(), probe, regions);
    auto evict = Evictions(regions, options.require_full_compilation ? 0 : options.min_block_size,
                           observations);
    size_t before = forced.size();
    forced.insert(evict.begin(), evict.end());
    if (forced.size() == before) break;
  }

  Partition partition;
  std::unordered_map<const Node*, int> region_of;
  for (size_t i = 0; i < regions.size(); ++i) {
    for (const Node* node : regions[i].nodes) region_of[node] = static_cast<int>(i);
  }
  CollectPlacements(*graph.block(), probe, region_of, partition.placements);
  partition.regions = std::move(regions);
  for (const auto& [value, converted] : probe.values) {
    if (converted.kind == Value::Kind::kConstant) partition.constants.emplace(value, converted);
  }

  if (options.require_full_compilation) {
    std::ostringstream message;
    size_t count = 0;
    for (const NodePlacement& placement : partition.placements) {
      if (!placement.fallback()) continue;
      ++count;
      std::string where = SourceLocation(*placement.node);
      message << "\n  " << placement.node->kind().toQualString()
              << (where.empty() ? "" : " at " + where) << ": " << placement.reason;
    }
    if (count > 0) {
      throw frontend::ConversionError("tvmbridge: require_full_compilation=True, but " +
                                      std::to_string(count) +
                                      " node(s) cannot run in TVM:" + message.str());
    }
  }
  return partition;
}

tvm::ffi::ObjectRef BuildRegionModule(const Region& region, const Partition& partition,
                                      const Observations& observations,
                                      std::vector<TensorSpec>& input_specs,
                                      std::vector<TensorSpec>& output_specs) {
  std::vector<frontend::FunctionAssembler::Input> inputs;
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    const torch::jit::Value* input = region.inputs[i];
    inputs.push_back({input, ObservedSpec(frontend::UserName(input, i), observations.at(input))});
    input_specs.push_back(inputs.back().spec);
  }
  frontend::FunctionAssembler function(inputs, partition.constants);
  for (const Node* node : region.nodes) {
    frontend::ConvertNode(*node, function.context(), function.values());
  }
  std::vector<relax::Expr> outputs;
  for (const torch::jit::Value* output : region.outputs) {
    outputs.push_back(function.context().Tensor(output));
  }
  return function.Finish(outputs, /*as_tuple=*/true, "main", output_specs);
}

}  // namespace tvmbridge::partition
