// The compiled artifact: one TVM Relax VM library plus the metadata needed to call it safely.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

namespace tvmbridge {

// Bumped whenever the pickled layout or the metadata keys change incompatibly.
constexpr int64_t kArtifactFormatVersion = 1;

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  c10::ScalarType dtype = c10::ScalarType::Float;

  std::string Describe() const;  // "x: float32[1, 3, 224, 224]"
};

struct ArtifactMetadata {
  int64_t format_version = kArtifactFormatVersion;
  std::string target;             // TVM target string the library was built for
  std::string tvm_version;        // TVM that built it
  std::string tvmbridge_version;  // tvmbridge that built it
  std::string entry = "main";     // Relax function to call
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  bool output_is_tuple = false;  // the TorchScript graph returned a tuple, not one tensor
  std::string library_sha256;    // hex digest of the embedded shared library
  // Instruction-set extensions the library's code uses (LLVM names), checked on load.
  std::vector<std::string> cpu_features;

  std::string ToJson() const;
  // Throws c10::Error naming what is missing or malformed.
  static ArtifactMetadata FromJson(const std::string& json);
};

// "float32", "int64", ...: the names TVM uses, which users also read in our error messages.
std::string DtypeName(c10::ScalarType dtype);
c10::ScalarType DtypeFromName(const std::string& name);

std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace tvmbridge
