#include "compiler/compile.h"

#include <cstring>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include "compiler/compilation_group.h"
#include "compiler/embed.h"
#include "compiler/region_timing.h"
#include "passes/passes.h"
#include "passes/pipeline.h"

namespace tvmbridge {
namespace {

namespace json = tvm::ffi::json;
using tvm::ffi::String;

// Whether built regions are timed against PyTorch (and the example runs keep their values).
bool TimesRegions(const partition::PartitionOptions& options) {
  return options.never_slower && !options.require_full_compilation;
}

// `value` (an example from Python: lists and tuples arrive as lists of any type) as forward's
// declared `type`; a TypeError naming `where` when it is not one.
c10::IValue AsDeclared(const c10::IValue& value, const c10::TypePtr& type,
                       const std::string& where) {
  auto mismatch = [&] {
    return c10::str("tvmbridge: ", where, " is declared ", type->repr_str(),
                    " by forward; the example given is a ", value.type()->repr_str());
  };
  switch (type->kind()) {
    case c10::TypeKind::OptionalType:
      return value.isNone() ? value : AsDeclared(value, type->containedType(0), where);
    case c10::TypeKind::TensorType:
    case c10::TypeKind::IntType:
    case c10::TypeKind::NumberType:
    case c10::TypeKind::BoolType:
    case c10::TypeKind::StringType:
      TORCH_CHECK_TYPE(value.type()->isSubtypeOf(*type), mismatch());
      return value;
    case c10::TypeKind::FloatType:  // Python's 1 for a float, as TorchScript takes it
      TORCH_CHECK_TYPE(value.isDouble() || value.isInt(), mismatch());
      return value.isInt() ? c10::IValue(static_cast<double>(value.toInt())) : value;
    case c10::TypeKind::ListType: {
      TORCH_CHECK_TYPE(value.isList(), mismatch());
      const c10::TypePtr& element = type->containedType(0);
      c10::impl::GenericList list(element);
      int64_t k = 0;
      for (const c10::IValue& item : value.toListRef()) {
        list.push_back(AsDeclared(item, element, c10::str(where, "[", k++, "]")));
      }
      return list;
    }
    case c10::TypeKind::TupleType: {
      const auto elements = type->containedTypes();
      const bool sequence = value.isList() || value.isTuple();
      const size_t size = value.isList()    ? value.toListRef().size()
                          : value.isTuple() ? value.toTupleRef().elements().size()
                                            : 0;
      TORCH_CHECK_TYPE(sequence && size == elements.size(), mismatch(), " (", elements.size(),
                       " elements expected)");
      std::vector<c10::IValue> items;
      for (size_t k = 0; k < elements.size(); ++k) {
        const c10::IValue& item =
            value.isList() ? value.toListRef()[k] : value.toTupleRef().elements()[k];
        items.push_back(AsDeclared(item, elements[k], c10::str(where, "[", k, "]")));
      }
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case c10::TypeKind::DictType: {
      TORCH_CHECK_TYPE(value.isGenericDict(), mismatch());
      c10::impl::GenericDict dict(type->containedType(0), type->containedType(1));
      for (const auto& entry : value.toGenericDict()) {
        c10::IValue key = AsDeclared(entry.key(), type->containedType(0), where + " (a key)");
        dict.insert(
            key, AsDeclared(entry.value(), type->containedType(1), c10::str(where, "[", key, "]")));
      }
      return dict;
    }
    default:
      TORCH_CHECK_TYPE(false, "tvmbridge: ", where, " is declared ", type->repr_str(),
                       " by forward; compile takes tensors, numbers, strings, and optionals, "
                       "lists, tuples and dicts of them");
  }
  TORCH_INTERNAL_ASSERT(false, "unreachable");
}

// Tensors that come out of a non-tensor input (an optional, a list, a dict; a branch on a
// bool): the tensor outputs of nodes that read such an input or what was taken from it.
// Their shapes are specialised like a tensor input's, so the compiled module checks them.
std::vector<HeldTensor> TensorsHeldByInputs(const torch::jit::Graph& graph,
                                            const std::vector<TensorSpec>& inputs,
                                            const partition::Observations& observations) {
  // Non-tensor values carrying what an argument passed, with the argument's index.
  std::unordered_map<const torch::jit::Value*, size_t> from_input;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const torch::jit::Value* input = graph.inputs()[i + 1];
    if (input->type()->kind() != c10::TypeKind::TensorType) from_input[input] = i;
  }
  std::vector<HeldTensor> held;
  std::function<void(const torch::jit::Block*)> visit = [&](const torch::jit::Block* block) {
    for (const torch::jit::Node* node : block->nodes()) {
      std::optional<size_t> source;
      for (const torch::jit::Value* input : node->inputs()) {
        if (auto found = from_input.find(input); found != from_input.end()) source = found->second;
      }
      if (source) {
        // What carries the containers on (a slice of a list, a branch's or a loop's result,
        // the loop's own view of them) is one too.
        auto mark = [&](const torch::jit::Value* value) {
          if (value->type()->kind() != c10::TypeKind::TensorType) from_input[value] = *source;
        };
        for (const torch::jit::Value* output : node->outputs()) mark(output);
        for (const torch::jit::Block* nested : node->blocks()) {
          for (const torch::jit::Value* param : nested->inputs()) mark(param);
        }
        for (const torch::jit::Value* output : node->outputs()) {
          auto observed = observations.find(output);
          if (output->type()->kind() != c10::TypeKind::TensorType ||
              observed == observations.end() || !observed->second.static_shape) {
            continue;  // never specialised: nothing to check
          }
          TensorSpec spec =
              partition::ObservedSpec("a tensor from " + inputs[*source].name, observed->second);
          held.push_back({const_cast<torch::jit::Value*>(output), static_cast<int64_t>(*source),
                          std::move(spec)});
        }
      }
      for (const torch::jit::Block* nested : node->blocks()) visit(nested);
    }
  };
  visit(graph.block());
  return held;
}

}  // namespace

Analysis Analyse(passes::PreparedGraph prepared, const std::vector<TensorSpec>& specs,
                 const partition::PartitionOptions& options,
                 const partition::ExampleInputs& examples) {
  Analysis analysis;
  analysis.prepared = std::move(prepared);
  torch::jit::Graph& graph = *analysis.prepared.graph;
  std::vector<TensorSpec> given = specs;
  partition::ExampleInputs values = examples;
  const std::vector<passes::OmittedArgument> omitted =
      passes::FoldOmittedArguments(analysis.prepared.graph, analysis.prepared.frozen, specs.size());
  if (!omitted.empty()) values.resize(given.size());
  for (const passes::OmittedArgument& argument : omitted) {
    // Passed as a value at run time where the graph could not take it as a constant.
    given.push_back(TensorSpec{argument.name, {}, c10::ScalarType::Undefined});
    values.push_back(argument.value);
    if (argument.folded) analysis.fixed_to_default.push_back(argument.index);
  }
  for (size_t i = 0; i < given.size(); ++i) {
    const torch::jit::Value* input = graph.inputs()[i + 1];
    TensorSpec spec = given[i];
    if (spec.name.empty()) spec.name = frontend::UserName(input, i);
    const std::string where = c10::str("input ", i, " ('", spec.name, "')");
    if (partition::IsValueInput(spec)) {
      TORCH_CHECK_VALUE(i < values.size(), "tvmbridge: ", where, " has no example value");
      TORCH_CHECK_TYPE(input->type()->kind() != c10::TypeKind::TensorType, "tvmbridge: ", where,
                       " of forward is a Tensor; give a tensor or a tvmbridge.Input "
                       "for it, not a ",
                       values.at(i).type()->repr_str());
      values.at(i) = AsDeclared(values.at(i), input->type(), where);
    } else {
      // A tensor spec also serves an Optional[Tensor] input (called with a tensor).
      TORCH_CHECK_TYPE(c10::TensorType::get()->isSubtypeOf(*input->type()), "tvmbridge: ", where,
                       " of forward is a ", input->type()->repr_str(),
                       "; give its example value in inputs, not a tensor spec");
    }
    analysis.inputs.push_back(spec);
  }
  c10::IValue self = analysis.prepared.frozen._ivalue();
  // Observe, fold what the shapes decide, then observe the simplified graph.
  auto first = partition::ObserveTensors(graph, self, analysis.inputs, values);
  partition::SpecializeToShapes(analysis.prepared.graph, first);
  passes::FoldReadOnlyAttributes(analysis.prepared.graph, analysis.prepared.frozen);
  analysis.observations =
      partition::ObserveTensors(graph, self, analysis.inputs, values, TimesRegions(options));
  analysis.held_tensors = TensorsHeldByInputs(graph, analysis.inputs, analysis.observations);
  analysis.partition = partition::PartitionGraph(graph, analysis.observations, options);
  return analysis;
}

namespace {

// The default value of each of forward's inputs after `self`; none for a graph that is not a
// module's forward (a compilation group's).
std::vector<std::optional<c10::IValue>> ForwardDefaults(const torch::jit::Module& module) {
  std::vector<std::optional<c10::IValue>> defaults;
  std::optional<torch::jit::Method> forward = module.find_method("forward");
  if (!forward) return defaults;
  const std::vector<c10::Argument>& arguments = forward->function().getSchema().arguments();
  for (size_t i = 1; i < arguments.size(); ++i) defaults.push_back(arguments[i].default_value());
  return defaults;
}

// A region TVM failed to build, which runs in PyTorch instead.
struct BuildFailure {
  size_t nodes = 0;
  std::string error;  // TVM's error kind and message, without its backtrace
};

// A region the never-slower check returned to PyTorch, with what it measured.
struct SlowerRegion {
  size_t nodes = 0;
  RegionTimes times;
};

// The error a region's conversion or build raised, in one line.
std::string BuildErrorText(const std::exception& error) {
  std::string text;
  if (const auto* tvm_error = dynamic_cast<const tvm::ffi::Error*>(&error)) {
    text = tvm_error->kind() + ": " + tvm_error->message();
  } else {
    text = frontend::ErrorText(error);
  }
  return text.substr(0, text.find('\n'));
}

// `times[k]`, when given and measured, adds "tvm_ms" and "torch_ms" to region k;
// `build_failures` and `measured_slower` list the regions returned to PyTorch.
std::string ReportJson(const partition::Partition& partition,
                       const std::vector<std::optional<RegionTimes>>& times = {},
                       const std::vector<BuildFailure>& build_failures = {},
                       const std::vector<SlowerRegion>& measured_slower = {}) {
  json::Array regions;
  for (size_t k = 0; k < partition.regions.size(); ++k) {
    const partition::Region& region = partition.regions[k];
    json::Object entry{{"index", static_cast<int64_t>(k)},
                       {"nodes", static_cast<int64_t>(region.nodes.size())},
                       {"inputs", static_cast<int64_t>(region.inputs.size())},
                       {"outputs", static_cast<int64_t>(region.outputs.size())}};
    if (k < times.size() && times[k]) {
      entry.Set(String("tvm_ms"), times[k]->tvm_ms);
      entry.Set(String("torch_ms"), times[k]->torch_ms);
    }
    regions.push_back(entry);
  }
  json::Array nodes;
  for (const partition::NodePlacement& placement : partition.placements) {
    nodes.push_back(json::Object{{"kind", String(placement.node->kind().toQualString())},
                                 {"region", static_cast<int64_t>(placement.region)},
                                 {"cause", String(partition::CauseName(placement.cause))},
                                 {"reason", String(placement.reason)},
                                 {"fallback", placement.fallback()},
                                 {"source", String(partition::SourceLocation(*placement.node))}});
  }
  json::Array failures;
  for (const BuildFailure& failure : build_failures) {
    failures.push_back(json::Object{{"nodes", static_cast<int64_t>(failure.nodes)},
                                    {"error", String(failure.error)}});
  }
  json::Array slower;
  for (const SlowerRegion& region : measured_slower) {
    slower.push_back(json::Object{{"nodes", static_cast<int64_t>(region.nodes)},
                                  {"tvm_ms", region.times.tvm_ms},
                                  {"torch_ms", region.times.torch_ms}});
  }
  return std::string(json::Stringify(json::Object{{"regions", regions},
                                                  {"nodes", nodes},
                                                  {"build_failures", failures},
                                                  {"measured_slower", slower}}));
}

}  // namespace

passes::PreparedGraph PrepareArchive(const std::string& archive) {
  return passes::PrepareForConversion(passes::LoadModule(archive), /*fold_weights=*/true,
                                      passes::InputWrites::kWriteBack);
}

std::string Explain(const std::string& archive, const std::vector<TensorSpec>& inputs,
                    const partition::PartitionOptions& options,
                    const partition::ExampleInputs& examples) {
  partition::PartitionOptions unmeasured = options;
  unmeasured.never_slower = false;  // nothing is timed here: keep no samples
  return ReportJson(Analyse(PrepareArchive(archive), inputs, unmeasured, examples).partition);
}

CompileResult Compile(const std::string& archive, const std::vector<TensorSpec>& inputs,
                      const partition::PartitionOptions& options, const BuildSettings& build,
                      const partition::ExampleInputs& examples) {
  return CompilePrepared(PrepareArchive(archive), inputs, options, build, examples);
}

BuiltRegion BuildRegion(const tvm::ffi::ObjectRef& ir_module, ArtifactMetadata metadata,
                        const BuildSettings& build) {
  auto library = build.build_library(ir_module).cast<tvm::ffi::Bytes>();
  metadata.target = build.target_json;
  metadata.tvm_version = build.tvm_version;
  metadata.tvmbridge_version = TVMBRIDGE_VERSION;
  metadata.cpu_features = build.cpu_features;
  metadata.artifact_sha256 = metadata.Digest(library.data(), library.size());
  return {std::move(metadata), std::move(library)};
}

c10::intrusive_ptr<TVMModule> BuildModule(const tvm::ffi::ObjectRef& ir_module,
                                          ArtifactMetadata metadata, const BuildSettings& build) {
  BuiltRegion built = BuildRegion(ir_module, std::move(metadata), build);
  at::Tensor bytes = at::empty({static_cast<int64_t>(built.library.size())}, at::kByte);
  std::memcpy(bytes.data_ptr(), built.library.data(), built.library.size());
  return c10::make_intrusive<TVMModule>(built.metadata.ToJson(), bytes);
}

CompileResult CompilePrepared(passes::PreparedGraph prepared, const std::vector<TensorSpec>& inputs,
                              const partition::PartitionOptions& options,
                              const BuildSettings& build,
                              const partition::ExampleInputs& examples) {
  CompilationGroupsSuspended no_nested_groups;
  Analysis analysis = Analyse(std::move(prepared), inputs, options, examples);
  std::vector<c10::intrusive_ptr<TVMModule>> modules;  // null where the build failed
  std::vector<std::optional<RegionTimes>> times;
  std::vector<std::string> errors;  // per region: why TVM could not build it, or empty
  for (const partition::Region& region : analysis.partition.regions) {
    ArtifactMetadata metadata;
    try {
      tvm::ffi::ObjectRef ir_module = partition::BuildRegionModule(
          region, analysis.partition, analysis.observations, metadata.inputs, metadata.outputs);
      metadata.output_is_tuple = true;
      modules.push_back(BuildModule(ir_module, std::move(metadata), build));
    } catch (const std::exception& error) {
      // One region TVM cannot build must not cost the user the others.
      if (options.require_full_compilation) throw;
      modules.emplace_back();
      times.emplace_back();
      errors.push_back(BuildErrorText(error));
      continue;
    }
    errors.emplace_back();
    times.push_back(TimesRegions(options)
                        ? TimeRegion(region, analysis.observations, *modules.back())
                        : std::nullopt);
  }
  std::vector<BuildFailure> build_failures;
  std::vector<SlowerRegion> measured_slower;
  for (size_t k = times.size(); k-- > 0;) {  // from the back: removal shifts later indices
    const size_t nodes = analysis.partition.regions[k].nodes.size();
    if (!errors[k].empty()) {
      build_failures.insert(build_failures.begin(), {nodes, errors[k]});
      ReturnRegionToPyTorch(analysis.partition, k, partition::PlacementCause::kBuildFailed,
                            "TVM could not build this region: " + errors[k]);
    } else if (times[k] && times[k]->torch_ms <= times[k]->tvm_ms) {
      measured_slower.insert(measured_slower.begin(), {nodes, *times[k]});
      ReturnRegionToPyTorch(analysis.partition, k, partition::PlacementCause::kMeasuredSlower,
                            c10::str("TVM measured slower here (", times[k]->tvm_ms,
                                     " ms vs PyTorch ", times[k]->torch_ms, " ms)"));
    } else {
      continue;
    }
    modules.erase(modules.begin() + static_cast<std::ptrdiff_t>(k));
    times.erase(times.begin() + static_cast<std::ptrdiff_t>(k));
  }
  CompileResult result;
  result.report_json = ReportJson(analysis.partition, times, build_failures, measured_slower);
  result.tvm_regions = modules.size();
  for (const partition::NodePlacement& placement : analysis.partition.placements) {
    if (placement.fallback() && placement.cause != partition::PlacementCause::kMeasuredSlower) {
      result.fallback_nodes.push_back(std::string(placement.node->kind().toQualString()) + ": " +
                                      placement.reason);
    }
  }
  ForwardSignature signature{analysis.inputs, analysis.held_tensors,
                             analysis.prepared.written_back_inputs,
                             ForwardDefaults(analysis.prepared.frozen), analysis.fixed_to_default};
  result.archive = EmbedRegions(analysis.prepared.graph, analysis.partition.regions, modules,
                                signature, analysis.prepared.frozen, result.report_json);
  return result;
}

}  // namespace tvmbridge
