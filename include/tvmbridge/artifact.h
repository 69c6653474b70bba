// The compiled artifact: one TVM Relax VM library plus the metadata needed to call it safely.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

namespace tvmbridge {

// Bumped whenever the pickled layout or the metadata keys change incompatibly.
// 2: one SHA-256 covers the metadata and the library together.
constexpr int64_t kArtifactFormatVersion = 2;

// The extents one dynamic dim takes: min <= extent <= max; compiled and timed at opt.
struct ExtentRange {
  int64_t min = 0;
  int64_t opt = 0;
  int64_t max = 0;
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // kDynamicExtent where the extent varies between calls
  c10::ScalarType dtype = c10::ScalarType::Float;
  // Empty when every extent is static; otherwise one entry per dim: "" for a static extent,
  // the symbol of a dynamic one ("batch"; dims with one symbol have one extent per call).
  std::vector<std::string> dim_symbols = {};
  // Empty when unbounded or static; otherwise one per dim (a static extent n: n, n, n).
  std::vector<ExtentRange> dim_ranges = {};

  std::string Describe() const;  // "x: float32[batch, 3, 224, 224]"
};

constexpr int64_t kDynamicExtent = -1;

// The concrete shape of `spec` with each ranged extent at its `which` (&ExtentRange::opt...).
std::vector<int64_t> ShapeAt(const TensorSpec& spec, int64_t ExtentRange::*which);

struct ArtifactMetadata {
  int64_t format_version = kArtifactFormatVersion;
  std::string target;             // TVM target string the library was built for
  std::string tvm_version;        // TVM that built it
  std::string tvmbridge_version;  // tvmbridge that built it
  std::string entry = "main";     // Relax function to call
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  bool output_is_tuple = false;  // the TorchScript graph returned a tuple, not one tensor
  // Hex SHA-256 over this metadata (with this field empty) followed by the library's bytes:
  // an edit of either, such as input shapes that no longer match the code, is refused on load.
  std::string artifact_sha256;
  // Instruction-set extensions the library's code uses (LLVM names), checked on load.
  std::vector<std::string> cpu_features;

  std::string ToJson() const;
  // The artifact_sha256 that this metadata and `library` should carry.
  std::string Digest(const void* library, size_t size) const;
  // Throws c10::Error naming what is missing or malformed.
  static ArtifactMetadata FromJson(const std::string& json);
};

// Everything checked before an artifact's library is handed to dlopen, so before any of its
// code runs: the SHA-256 over metadata and library, the target (a CPU of this architecture),
// this CPU's instruction-set extensions, and the library's ELF structure. Throws c10::Error
// naming the check that failed. The SHA-256 detects corruption and naive edits, not a
// deliberate forger, who can recompute it: loading still means trusting the file.
void VerifyArtifact(const ArtifactMetadata& metadata, const void* library, size_t size);

// "float32", "int64", ...: the names TVM uses, which users also read in our error messages.
std::string DtypeName(c10::ScalarType dtype);
c10::ScalarType DtypeFromName(const std::string& name);

// "[1, 3, 224, 224]"; a dynamic extent shows as its symbol, or "?" without one.
std::string ShapeString(const std::vector<int64_t>& shape,
                        const std::vector<std::string>& dim_symbols = {});

}  // namespace tvmbridge
