#include "runtime/cpu_features.h"

#include <unordered_map>

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
      {"f16c", __builtin_cpu_supports("f16c")},
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
      {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
      {"gfni", __builtin_cpu_supports("gfni")},
      {"vaes", __builtin_cpu_supports("vaes")},
      {"vpclmulqdq", __builtin_cpu_supports("vpclmulqdq")},
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

}  // namespace tvmbridge
