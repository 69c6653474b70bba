// Ahead-of-time compilation of a TorchScript module: partition, convert each region to
// Relax, build it with TVM (through the Python pipeline), and embed the results.
#pragma once

#include <string>
#include <vector>

#include <tvm/ffi/function.h>

#include "partition/partitioner.h"
#include "tvmbridge/artifact.h"

namespace tvmbridge {

struct CompileResult {
  std::string archive;      // torch.jit.save bytes of the compiled module
  std::string report_json;  // what explain() shows
};

// The analysis alone: where each node would run and why (JSON, see ReportJson).
std::string Explain(const std::string& archive, const std::vector<TensorSpec>& inputs,
                    const partition::PartitionOptions& options);

// `build_library(IRModule) -> Bytes` is TVM's pipeline (Python's tvmbridge.build, with its
// target and tuning settings bound): it builds one region and returns the exported library.
// `target_json` and `cpu_features` (the extensions the target enables, which loading will
// require) are recorded in each artifact.
CompileResult Compile(const std::string& archive, const std::vector<TensorSpec>& inputs,
                      const partition::PartitionOptions& options,
                      const tvm::ffi::Function& build_library, const std::string& target_json,
                      const std::string& tvm_version, const std::vector<std::string>& cpu_features);

}  // namespace tvmbridge
