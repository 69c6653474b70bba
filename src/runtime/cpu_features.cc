#include "runtime/cpu_features.h"

#include <unordered_map>

#include <tvm/ffi/extra/json.h>

namespace tvmbridge {

bool CpuHasFeature(const std::string& feature) {
#if defined(__x86_64__) && defined(__GNUC__)
  // __builtin_cpu_supports needs literal names: one entry per extension a TVM kernel may use.
  static const std::unordered_map<std::string, bool> kSupported = {
    {"sse3", __builtin_cpu_supports("sse3")},
    {"ssse3", __builtin_cpu_supports("ssse3")},
    {"sse4.1", __builtin_cpu_supports("sse4.1")},
    {"sse4.2", __builtin_cpu_supports("sse4.2")},
    {"popcnt", __builtin_cpu_supports("popcnt")},
    {"avx", __builtin_cpu_supports("avx")},
    {"avx2", __builtin_cpu_supports("avx2")},
    {"fma", __builtin_cpu_supports("fma")},
    {"bmi", __builtin_cpu_supports("bmi")},
    {"bmi2", __builtin_cpu_supports("bmi2")},
    {"avx512f", __builtin_cpu_supports("avx512f")},
    {"avx512bw", __builtin_cpu_supports("avx512bw")},
    {"avx512cd", __builtin_cpu_supports("avx512cd")},
    {"avx512dq", __builtin_cpu_supports("avx512dq")},
    {"avx512vl", __builtin_cpu_supports("avx512vl")},
    {"avx512vnni", __builtin_cpu_supports("avx512vnni")},
    {"avx512ifma", __builtin_cpu_supports("avx512ifma")},
    {"avx512vbmi", __builtin_cpu_supports("avx512vbmi")},
    {"avx512vbmi2", __builtin_cpu_supports("avx512vbmi2")},
    {"avx512bitalg", __builtin_cpu_supports("avx512bitalg")},
    {"avx512vpopcntdq", __builtin_cpu_supports("avx512vpopcntdq")},
    {"gfni", __builtin_cpu_supports("gfni")},
    {"vpclmulqdq", __builtin_cpu_supports("vpclmulqdq")},
#if !defined(__clang__) || __clang_major__ >= 16  // clang 14 (make fuzz) cannot test these
    {"f16c", __builtin_cpu_supports("f16c")},
    {"vaes", __builtin_cpu_supports("vaes")},
    {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
#endif
  };
  auto it = kSupported.find(feature);
  return it == kSupported.end() || it->second;
#else
  (void)feature;
  return true;
#endif
}

std::vector<std::string> MissingCpuFeatures(const std::vector<std::string>& required,
                                            const std::function<bool(const std::string&)>& has) {
  std::vector<std::string> missing;
  for (const std::string& feature : required) {
    if (!has(feature)) missing.push_back(feature);
  }
  return missing;
}

const char* HostArchitecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

std::string TargetMismatch(const std::string& target_json) {
  namespace json = tvm::ffi::json;
  tvm::ffi::String error;
  auto target = json::Parse(target_json, &error).try_cast<json::Object>();
  if (!error.empty() || !target.has_value()) return "its target is not a TVM target in JSON";
  auto text_field = [&](const char* key) -> std::string {
    auto it = target->find(tvm::ffi::String(key));
    if (it == target->end()) return "";
    auto value = (*it).second.try_cast<tvm::ffi::String>();
    return value.has_value() ? std::string(*value) : "";
  };
  std::string kind = text_field("kind");
  if (kind != "llvm") {
    return "it was compiled for TVM target kind '" + kind + "', not for a CPU ('llvm')";
  }
  // A triple names its architecture first: "x86_64-pc-linux-gnu", "aarch64-linux-gnu".
  std::string triple = text_field("mtriple");
  std::string architecture = triple.substr(0, triple.find('-'));
  if (architecture == "arm64") architecture = "aarch64";
  if (!triple.empty() && architecture != HostArchitecture()) {
    return "it was compiled for " + triple + ", and this machine is " + HostArchitecture();
  }
  return "";
}

}  // namespace tvmbridge
