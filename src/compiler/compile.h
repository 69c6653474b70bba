// Ahead-of-time compilation of a TorchScript module: partition, convert each region to
// Relax, build it with TVM (through the Python pipeline), and embed the results.
#pragma once

#include <string>
#include <vector>

#include <tvm/ffi/function.h>

#include "compiler/embed.h"
#include "partition/partitioner.h"
#include "passes/pipeline.h"
#include "tvmbridge/artifact.h"
#include "tvmbridge/tvm_module.h"

namespace tvmbridge {

struct CompileResult {
  std::string archive;      // torch.jit.save bytes of the compiled module
  std::string report_json;  // what explain() shows
  size_t tvm_regions = 0;   // TVM modules embedded
  // "aten::foo: reason" for every node left to PyTorch because TVM could not take it.
  std::vector<std::string> fallback_nodes;
};

// How each region is built: `build_library(IRModule) -> Bytes` is TVM's pipeline (Python's
// tvmbridge.build, with its target and tuning settings bound). `target_json` and
// `cpu_features` (the extensions the target enables, which loading will require) are
// recorded in each artifact.
struct BuildSettings {
  tvm::ffi::Function build_library;
  std::string target_json;
  std::string tvm_version;
  std::vector<std::string> cpu_features;
};

// A built region: its library, and its metadata completed and sealed.
struct BuiltRegion {
  ArtifactMetadata metadata;
  tvm::ffi::Bytes library;
};

// Builds `ir_module` (its entry function "main"); `metadata` gives its inputs, outputs and
// output_is_tuple, the rest (target, versions, CPU features, SHA-256) is filled in here.
// Every region is built here: compile's, enable's, and the export path's
// (tvmbridge.torch.build_region).
BuiltRegion BuildRegion(const tvm::ffi::ObjectRef& ir_module, ArtifactMetadata metadata,
                        const BuildSettings& build);
// BuildRegion's result loaded as a TVMModule.
c10::intrusive_ptr<TVMModule> BuildModule(const tvm::ffi::ObjectRef& ir_module,
                                          ArtifactMetadata metadata, const BuildSettings& build);

// A model ready to build: frozen, specialised to the input shapes, observed, partitioned.
struct Analysis {
  passes::PreparedGraph prepared;
  std::vector<TensorSpec> inputs;        // named after the graph's inputs where specs had no name
  std::vector<HeldTensor> held_tensors;  // see TensorsHeldByInputs
  // Inputs left out of the specs whose default (None, a number, a bool or a string) the graph
  // was specialised to; the forward still takes them, and raises if given another value.
  std::vector<size_t> fixed_to_default;
  partition::Observations observations;
  partition::Partition partition;
};

// A TorchScript archive, prepared for partitioning (frozen, weights folded).
passes::PreparedGraph PrepareArchive(const std::string& archive);
// `examples`: the inputs' values for the example runs (see ObserveTensors); the last run's
// values are kept in the observations for timing.
Analysis Analyse(passes::PreparedGraph prepared, const std::vector<TensorSpec>& inputs,
                 const partition::PartitionOptions& options,
                 const partition::ExampleInputs& examples = {});

// The analysis alone: where each node would run and why (JSON, see ReportJson).
std::string Explain(const std::string& archive, const std::vector<TensorSpec>& inputs,
                    const partition::PartitionOptions& options,
                    const partition::ExampleInputs& examples = {});

CompileResult Compile(const std::string& archive, const std::vector<TensorSpec>& inputs,
                      const partition::PartitionOptions& options, const BuildSettings& build,
                      const partition::ExampleInputs& examples = {});

// The same for a graph already prepared (passes/pipeline.h's contract: frozen, first input
// `self`), such as a compilation group's subgraph with its weights made constants.
CompileResult CompilePrepared(passes::PreparedGraph prepared, const std::vector<TensorSpec>& inputs,
                              const partition::PartitionOptions& options,
                              const BuildSettings& build,
                              const partition::ExampleInputs& examples = {});

}  // namespace tvmbridge
