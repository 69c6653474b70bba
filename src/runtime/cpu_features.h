// Which instruction-set extensions this CPU has, so that a library compiled for another CPU
// is refused on load instead of dying of an illegal instruction.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace tvmbridge {

// True if this CPU has `feature` (LLVM's name: "avx2", "avx512f", ...); features this
// runtime cannot test are reported as present.
bool CpuHasFeature(const std::string& feature);

// The entries of `required` for which `has` is false.
std::vector<std::string> MissingCpuFeatures(
    const std::vector<std::string>& required,
    const std::function<bool(const std::string&)>& has = CpuHasFeature);

// Why code built for `target_json` (a TVM target as JSON) cannot run in this process, or an
// empty string if it can: it must be for a CPU (kind "llvm") of this architecture.
std::string TargetMismatch(const std::string& target_json);

// This build's architecture as the first component of an LLVM triple ("x86_64", "aarch64").
const char* HostArchitecture();

}  // namespace tvmbridge
