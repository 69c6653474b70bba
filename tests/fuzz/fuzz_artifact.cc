// libFuzzer target over what loading a compiled module reads from the file before any of the
// embedded library's code can run: the metadata JSON and the checks on the library bytes.
//
// Input: metadata JSON, one NUL byte, library bytes (what TVMModule's __setstate__ receives).
// Expected: a c10::Error for anything malformed, metadata that parses serialises to a fixed
// point (parse(serialise(m)) serialises the same), and VerifyArtifact (SHA-256, target, CPU,
// ELF structure) never reading outside the bytes. It stops short of dlopen: the fuzzer can
// make the SHA-256 agree (it sees the comparison), as a forger can, and glibc's loader is not
// built for hostile files. Anything else is a finding.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <vector>

#include <c10/util/Exception.h>

#include "runtime/cpu_features.h"
#include "tvmbridge/artifact.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tvmbridge::ArtifactMetadata;
  const auto* begin = reinterpret_cast<const char*>(data);
  const char* separator = static_cast<const char*>(std::memchr(begin, 0, size));
  std::string json(begin, separator ? separator : begin + size);
  size_t library_offset = separator ? separator - begin + 1 : size;

  try {
    ArtifactMetadata meta = ArtifactMetadata::FromJson(json);
    std::string canonical = meta.ToJson();
    if (ArtifactMetadata::FromJson(canonical).ToJson() != canonical) std::abort();
    (void)tvmbridge::TargetMismatch(meta.target);
  } catch (const c10::Error&) {
  }

  // A copy of exactly the library's bytes, so that ASan sees any read past their end.
  std::vector<uint8_t> library(data + library_offset, data + size);
  try {
    tvmbridge::VerifyArtifact(ArtifactMetadata::FromJson(json), library.data(), library.size());
  } catch (const c10::Error&) {
  }
  return 0;
}
