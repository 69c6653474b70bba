// The compiler library's entry points, registered in tvm-ffi's global registry so that Python
// (tvm_ffi.get_global_func) and C++ reach them the same way.
#include <cstring>
#include <string>
#include <vector>

#include <ATen/Functions.h>
#include <c10/util/Exception.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include "compiler/compilation_group.h"
#include "compiler/compile.h"
#include "compiler/region_timing.h"
#include "compiler/torchscript_fallback.h"
#include "frontend/converter.h"
#include "partition/shape_observer.h"
#include "passes/passes.h"
#include "passes/pipeline.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

using tvm::ffi::Any;
using tvm::ffi::Array;
using tvm::ffi::Bytes;
using tvm::ffi::Map;
using tvm::ffi::String;

// Runs `body`, turning C++ exceptions into tvm-ffi errors that reach Python as exceptions
// (tvmbridge.UnsupportedOperatorError is registered under its kind by tvmbridge._native).
template <typename Body>
auto Guarded(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const tvm::ffi::Error&) {
    throw;
  } catch (const frontend::ConversionError& error) {
    TVM_FFI_THROW(UnsupportedOperatorError) << error.what();
  } catch (const c10::TypeError& error) {
    TVM_FFI_THROW(TypeError) << error.what_without_backtrace();
  } catch (const c10::Error& error) {
    TVM_FFI_THROW(ValueError) << error.what_without_backtrace();
  } catch (const std::exception& error) {
    TVM_FFI_THROW(RuntimeError) << error.what();
  }
  TVM_FFI_UNREACHABLE();
}

using InputDescriptions = Array<Map<String, Any>>;

template <typename T>
T Entry(const Map<String, Any>& description, const char* key, size_t index) {
  auto found = description.find(key);
  TORCH_CHECK(found != description.end(), "tvmbridge: input ", index, " has no '", key, "'");
  auto value = (*found).second.try_cast<T>();
  TORCH_CHECK(value.has_value(), "tvmbridge: input ", index, "'s '", key, "' has the wrong type");
  return *value;
}

// Tensors as Python describes them (torch._input_specs, export._specs): name, dtype ("" for
// an input given by its value, see partition::IsValueInput), shape, and where extents vary
// each dim's symbol ("" for a fixed dim; its extent in shape is then not read) and, for a
// range of shapes, the [min, opt, max] of each dim. Symbols without ranges are unbounded.
std::vector<TensorSpec> SpecsFrom(const InputDescriptions& descriptions) {
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < descriptions.size(); ++i) {
    const Map<String, Any>& description = descriptions[i];
    TensorSpec spec;
    spec.name = std::string(Entry<String>(description, "name", i));
    for (int64_t dim : Entry<Array<int64_t>>(description, "shape", i)) {
      TORCH_CHECK(dim >= 0, "input ", i, " has a negative dimension ", dim);
      spec.shape.push_back(dim);
    }
    const std::string dtype(Entry<String>(description, "dtype", i));
    spec.dtype = dtype.empty() ? c10::ScalarType::Undefined : DtypeFromName(dtype);
    if (description.count("symbols") != 0) {
      auto symbols = Entry<Array<String>>(description, "symbols", i);
      TORCH_CHECK(symbols.size() == spec.shape.size(), "tvmbridge: input ", i,
                  " has symbols that do not match its rank");
      for (size_t d = 0; d < symbols.size(); ++d) {
        spec.dim_symbols.emplace_back(symbols[d]);
        if (!symbols[d].empty()) spec.shape[d] = kDynamicExtent;
      }
    }
    if (description.count("ranges") != 0) {
      auto ranges = Entry<Array<Array<int64_t>>>(description, "ranges", i);
      TORCH_CHECK(ranges.size() == spec.shape.size() && !spec.dim_symbols.empty(),
                  "tvmbridge: input ", i, " has ranges that do not match its rank, or no symbols");
      for (size_t d = 0; d < ranges.size(); ++d) {
        TORCH_CHECK(ranges[d].size() == 3, "tvmbridge: input ", i, " dim ", d,
                    ": a range is [min, opt, max]");
        spec.dim_ranges.push_back({ranges[d][0], ranges[d][1], ranges[d][2]});
      }
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

// A whole-graph conversion is for the given input shapes only: their sizes fold as compile's
// observation folds them, so loops over them (`[x[i] for i in range(x.size(0))]`) unroll and
// the lists they grow become functional. Nothing runs: shapes of intermediate tensors are
// the converters' to know.
void SpecializeToInputShapes(passes::PreparedGraph& prepared,
                             const std::vector<TensorSpec>& specs) {
  const auto& inputs = prepared.graph->inputs();
  if (inputs.size() != specs.size() + 1) return;  // ConvertGraph says what is wrong
  partition::Observations shapes;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (inputs[i + 1]->type()->kind() != c10::TypeKind::TensorType) continue;
    partition::ObservedTensor observed;
    observed.shape = specs[i].shape;
    observed.dim_symbols = specs[i].dim_symbols;  // symbolic sizes stay sizes
    observed.dtype = specs[i].dtype;
    observed.seen_defined = true;
    shapes[inputs[i + 1]] = observed;
  }
  partition::SpecializeToShapes(prepared.graph, shapes);
}

// Forward's arguments after the `given` inputs take their defaults (nn.TransformerEncoderLayer's
// `src_mask=None`), as compile's do, and leave the graph: the Relax function takes the given
// inputs only.
void DropOmittedArguments(passes::PreparedGraph& prepared, size_t given) {
  const std::vector<passes::OmittedArgument> omitted =
      passes::FoldOmittedArguments(prepared.graph, prepared.frozen, given);
  for (auto argument = omitted.rbegin(); argument != omitted.rend(); ++argument) {
    TORCH_CHECK_VALUE(argument->folded, "tvmbridge: from_torchscript was given ", given,
                      " input(s); input ", argument->index, " ('", argument->name,
                      "') left out defaults to a ", argument->value.type()->repr_str(),
                      ", which a Relax function cannot take as a constant: give it in inputs");
    prepared.graph->eraseInput(argument->index + 1);
  }
}

// from_torchscript(archive, inputs, keep_params_as_input)
//   -> [IRModule, param names, param tensors]
Array<Any> FromTorchScript(const Bytes& archive, const InputDescriptions& inputs,
                           bool keep_params_as_input) {
  return Guarded([&] {
    std::vector<TensorSpec> specs = SpecsFrom(inputs);
    // Weights returned as named parameters keep PyTorch's names, so nothing is folded then.
    passes::PreparedGraph prepared = passes::PrepareForConversion(
        passes::LoadModule(std::string(archive)), /*fold_weights=*/!keep_params_as_input);
    DropOmittedArguments(prepared, specs.size());
    SpecializeToInputShapes(prepared, specs);
    frontend::ConversionOptions options;
    options.keep_params_as_input = keep_params_as_input;
    frontend::ConversionResult converted =
        frontend::ConvertGraph(*prepared.graph, specs, prepared.weight_names, options);
    Array<String> param_names;
    Array<tvm::ffi::Tensor> param_values;
    for (size_t i = 0; i < converted.param_names.size(); ++i) {
      param_names.push_back(converted.param_names[i]);
      param_values.push_back(ToTvm(converted.param_values[i]));
    }
    return Array<Any>{converted.ir_module, param_names, param_values};
  });
}

partition::PartitionOptions OptionsFrom(const Map<String, Any>& given);

// An example value from Python: tensors as views of the caller's memory, lent for this call
// (each example run copies them); lists and tuples as lists of any type, dicts as dicts of
// any types (Analyse gives them forward's declared types).
c10::IValue ExampleValue(const Any& value) {
  switch (value.type_index()) {
    case kTVMFFINone:
      return {};
    case kTVMFFIBool:
      return value.cast<bool>();
    case kTVMFFIInt:
      return value.cast<int64_t>();
    case kTVMFFIFloat:
      return value.cast<double>();
    case kTVMFFISmallStr:
    case kTVMFFIStr:
      return std::string(value.cast<String>());
    case kTVMFFITensor:
      return ToTorch(value.cast<tvm::ffi::Tensor>());
    case kTVMFFIArray: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const Any& item : value.cast<Array<Any>>()) list.push_back(ExampleValue(item));
      return list;
    }
    case kTVMFFIMap: {
      c10::impl::GenericDict dict(c10::AnyType::get(), c10::AnyType::get());
      for (const auto& [key, item] : value.cast<tvm::ffi::Map<Any, Any>>()) {
        dict.insert(ExampleValue(key), ExampleValue(item));
      }
      return dict;
    }
    default:
      TORCH_CHECK_TYPE(false, "tvmbridge: an example input of type ", value.GetTypeKey(),
                       " has no TorchScript equivalent");
  }
  TORCH_INTERNAL_ASSERT(false, "unreachable");
}

// The example runs' values, one per input (see partition::ExampleInputs).
partition::ExampleInputs ExamplesFrom(const Array<Any>& examples) {
  partition::ExampleInputs result;
  for (const Any& example : examples) result.push_back(ExampleValue(example));
  return result;
}

// from_torchscript(archive, inputs, options, examples) with
// fallback="torchscript" -> IRModule (weights embedded)
tvm::ffi::ObjectRef FromTorchScriptWithFallback(const Bytes& archive,
                                                const InputDescriptions& inputs,
                                                const Map<String, Any>& options,
                                                const Array<Any>& examples) {
  return Guarded([&] {
    return ConvertWithTorchScriptFallback(std::string(archive), SpecsFrom(inputs),
                                          OptionsFrom(options), ExamplesFrom(examples))
        .ir_module;
  });
}

// The partitioning options as Python's `_partition_options` gives them (checked there):
// typed values by name.
partition::PartitionOptions OptionsFrom(const Map<String, Any>& given) {
  partition::PartitionOptions options;
  auto names = [&](const char* key) {
    std::unordered_set<std::string> values;
    for (const String& name : given.at(key).cast<Array<String>>()) values.insert(name);
    return values;
  };
  options.min_block_size = given.at("min_block_size").cast<int64_t>();
  options.require_full_compilation = given.at("require_full_compilation").cast<bool>();
  options.torch_executed_ops = names("torch_executed_ops");
  options.torch_executed_modules = names("torch_executed_modules");
  options.never_slower = given.at("never_slower").cast<bool>();
  return options;
}

// What regions are built with, as Python's build.settings gives it.
BuildSettings BuildSettingsFrom(const Map<String, Any>& given) {
  Array<String> cpu_features = given.at("cpu_features").cast<Array<String>>();
  return {given.at("build_library").cast<tvm::ffi::Function>(),
          std::string(given.at("target").cast<String>()),
          std::string(given.at("tvm_version").cast<String>()),
          std::vector<std::string>(cpu_features.begin(), cpu_features.end())};
}

// compile(archive, inputs, options, build settings, examples)
//   -> [compiled module bytes, report JSON]
Array<Any> CompileFfi(const Bytes& archive, const InputDescriptions& inputs,
                      const Map<String, Any>& options, const Map<String, Any>& build,
                      const Array<Any>& examples) {
  return Guarded([&] {
    CompileResult result = Compile(std::string(archive), SpecsFrom(inputs), OptionsFrom(options),
                                   BuildSettingsFrom(build), ExamplesFrom(examples));
    return Array<Any>{Bytes(result.archive), String(result.report_json)};
  });
}

// enable(options, build settings, cache folder ("" for none), fingerprint, dynamic shapes):
// graphs TorchScript optimises from now on get compilation groups (see compilation_group.h).
void EnableFfi(const Map<String, Any>& options, const Map<String, Any>& build,
               const String& cache_dir, const String& fingerprint, bool dynamic_shapes) {
  Guarded([&] {
    GroupSettings settings;
    settings.options = OptionsFrom(options);
    settings.build = BuildSettingsFrom(build);
    settings.cache_dir = std::string(cache_dir);
    settings.fingerprint = std::string(fingerprint);
    settings.dynamic_shapes = dynamic_shapes;
    EnableCompilationGroups(std::move(settings));
  });
}

// The counters of compilation groups, as a JSON object.
String GroupStatisticsJson() {
  namespace json = tvm::ffi::json;
  GroupStats stats = CompilationGroupStatistics();
  return json::Stringify(json::Object{{"groups", stats.groups},
                                      {"compiles", stats.compiles},
                                      {"symbolic_compiles", stats.symbolic_compiles},
                                      {"disk_loads", stats.disk_loads},
                                      {"fallbacks", stats.fallbacks},
                                      {"grad_calls", stats.grad_calls}});
}

// explain(archive, inputs, options, examples) -> report JSON
String ExplainFfi(const Bytes& archive, const InputDescriptions& inputs,
                  const Map<String, Any>& options, const Array<Any>& examples) {
  return Guarded([&] {
    return String(Explain(std::string(archive), SpecsFrom(inputs), OptionsFrom(options),
                          ExamplesFrom(examples)));
  });
}

// The kinds of nodes in the prepared graph that have no converter.
Array<String> UnsupportedOps(const Bytes& archive) {
  return Guarded([&] {
    passes::PreparedGraph prepared =
        passes::PrepareForConversion(passes::LoadModule(std::string(archive)));
    Array<String> kinds;
    for (const std::string& kind : frontend::UnsupportedOps(*prepared.graph)) {
      kinds.push_back(kind);
    }
    return kinds;
  });
}

Array<String> RequiredGlobals() {
  Array<String> names;
  for (const std::string& name : relax::RequiredGlobalNames()) names.push_back(name);
  return names;
}

// The names of the placement causes reports give (partition::CauseNames).
Array<String> PlacementCauses() {
  Array<String> names;
  for (const auto& [cause, name] : partition::CauseNames()) names.push_back(name);
  return names;
}

Array<String> SupportedOps() {
  Array<String> kinds;
  for (const auto& [kind, op] : frontend::Converters()) kinds.push_back(kind);
  return kinds;
}

// build_region(IRModule, inputs, outputs, build settings) -> [metadata JSON, library]: a
// region of the export path (tvmbridge/export.py, imported by TVM's own translator), built
// and sealed as compile's regions are. Its function returns a tuple.
Array<Any> BuildRegionFfi(const tvm::ffi::ObjectRef& ir_module, const InputDescriptions& inputs,
                          const InputDescriptions& outputs, const Map<String, Any>& build) {
  return Guarded([&] {
    ArtifactMetadata metadata;
    metadata.inputs = SpecsFrom(inputs);
    metadata.outputs = SpecsFrom(outputs);
    metadata.output_is_tuple = true;
    BuiltRegion built = BuildRegion(ir_module, std::move(metadata), BuildSettingsFrom(build));
    return Array<Any>{String(built.metadata.ToJson()), built.library};
  });
}

// time_alternately(run_torch, run_tvm) -> [tvm_ms, torch_ms]: the export path's regions timed
// by the loop that times TorchScript regions.
Array<double> TimeAlternatelyFfi(const tvm::ffi::Function& run_torch,
                                 const tvm::ffi::Function& run_tvm) {
  RegionTimes times = TimeAlternately([&] { run_torch(); }, [&] { run_tvm(); });
  return Array<double>{times.tvm_ms, times.torch_ms};
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("tvmbridge.frontend.from_torchscript", FromTorchScript)
      .def("tvmbridge.frontend.from_torchscript_with_fallback", FromTorchScriptWithFallback)
      .def("tvmbridge.frontend.unsupported_ops", UnsupportedOps)
      .def("tvmbridge.frontend.supported_ops", SupportedOps)
      .def("tvmbridge.torch.placement_causes", PlacementCauses)
      .def("tvmbridge.frontend.required_tvm_globals", RequiredGlobals)
      .def("tvmbridge.torch.compile", CompileFfi)
      .def("tvmbridge.torch.build_region", BuildRegionFfi)
      .def("tvmbridge.torch.explain", ExplainFfi)
      .def("tvmbridge.torch.time_alternately", TimeAlternatelyFfi)
      .def("tvmbridge.torch.enable", EnableFfi)
      .def("tvmbridge.torch.disable", DisableCompilationGroups)
      .def("tvmbridge.torch.release_enable_settings", ReleaseCompilationSettings)
      .def("tvmbridge.torch.is_enabled", CompilationGroupsEnabled)
      .def("tvmbridge.torch.enable_statistics", GroupStatisticsJson);
}

}  // namespace tvmbridge
