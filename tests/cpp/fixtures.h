// Compiled modules written by tests/cpp/make_fixtures.py (make test-cpp runs it first).
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/script.h>

#include "tvmbridge/tvm_module.h"

namespace tvmbridge::testing {

inline std::string FixturePath(const std::string& file) {
  const char* dir = std::getenv("TVMBRIDGE_FIXTURES");
  EXPECT_NE(dir, nullptr) << "TVMBRIDGE_FIXTURES is not set; run the tests with 'make test-cpp'";
  std::string path = std::string(dir ? dir : ".") + "/" + file;
  EXPECT_TRUE(std::ifstream(path).good()) << "missing fixture " << path;
  return path;
}

inline torch::jit::Module LoadFixture(const std::string& file) {
  return torch::jit::load(FixturePath(file));
}

inline c10::intrusive_ptr<TVMModule> TvmModuleOf(const torch::jit::Module& compiled) {
  return compiled.attr("tvm_module_0").toCustomClass<TVMModule>();
}

}  // namespace tvmbridge::testing
