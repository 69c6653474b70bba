// tvmbridge-run: load a compiled TorchScript module and run it with libtorch and TVM's runtime
// only (no Python). Prints each output's shape and checksum, and the latency.
//
//   tvmbridge-run model.pt --input 1x3x224x224:float32 [--repeat 100] [--warmup 10]
//                 [--seed 0] [--threads N] [--save-output out.pkl]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include "tvmbridge/artifact.h"

namespace {

struct Options {
  std::string model;
  std::vector<tvmbridge::TensorSpec> inputs;
  int repeat = 20;
  int warmup = 3;
  int64_t seed = 0;
  int threads = 0;  // 0: one per core
  std::string save_output;
};

constexpr const char* kUsage =
    "usage: tvmbridge-run MODEL.pt --input SHAPE:DTYPE [--input ...] [--repeat N] [--warmup N]\n"
    "                     [--seed S] [--threads N] [--save-output FILE]\n"
    "  SHAPE is like 1x3x224x224; DTYPE is float32, int64, ... (default float32).\n"
    "  Inputs are random (torch.manual_seed(S); torch.randn), as Python would make them.\n"
    "  --save-output writes the outputs with torch::pickle_save (torch.load reads it).\n";

[[noreturn]] void UsageError(const std::string& message) {
  std::cerr << "tvmbridge-run: " << message << "\n" << kUsage;
  std::exit(2);
}

int ParseInt(const std::string& text, const char* flag) {
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used == text.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  UsageError(std::string(flag) + " takes a non-negative integer, got '" + text + "'");
}

tvmbridge::TensorSpec ParseInput(const std::string& text, size_t index) {
  tvmbridge::TensorSpec spec;
  spec.name = "input_" + std::to_string(index);
  std::string shape = text;
  auto colon = text.find(':');
  if (colon != std::string::npos) {
    shape = text.substr(0, colon);
    try {
      spec.dtype = tvmbridge::DtypeFromName(text.substr(colon + 1));
    } catch (const c10::Error&) {
      UsageError("unknown dtype in --input " + text);
    }
  }
  size_t start = 0;
  while (start <= shape.size()) {
    size_t end = shape.find('x', start);
    std::string extent = shape.substr(start, end == std::string::npos ? end : end - start);
    if (extent.empty()) UsageError("bad shape in --input " + text);
    spec.shape.push_back(ParseInt(extent, "--input"));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return spec;
}

Options ParseArgs(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--input") {
      options.inputs.push_back(ParseInput(value(), options.inputs.size()));
    } else if (arg == "--repeat") {
      options.repeat = std::max(1, ParseInt(value(), "--repeat"));
    } else if (arg == "--warmup") {
      options.warmup = ParseInt(value(), "--warmup");
    } else if (arg == "--seed") {
      options.seed = ParseInt(value(), "--seed");
    } else if (arg == "--threads") {
      options.threads = ParseInt(value(), "--threads");
    } else if (arg == "--save-output") {
      options.save_output = value();
    } else if (!arg.empty() && arg[0] == '-') {
      UsageError("unknown option " + arg);
    } else if (options.model.empty()) {
      options.model = arg;
    } else {
      UsageError("more than one model given");
    }
  }
  if (options.model.empty()) UsageError("no model given");
  if (options.inputs.empty()) UsageError("no --input given");
  return options;
}

std::vector<torch::jit::IValue> MakeInputs(const Options& options) {
  torch::manual_seed(options.seed);
  std::vector<torch::jit::IValue> inputs;
  for (const auto& spec : options.inputs) {
    if (c10::isFloatingType(spec.dtype)) {
      inputs.emplace_back(torch::randn(spec.shape).to(spec.dtype));
    } else if (spec.dtype == c10::ScalarType::Bool) {
      inputs.emplace_back(torch::randint(0, 2, spec.shape).to(spec.dtype));
    } else {
      inputs.emplace_back(torch::randint(0, 10, spec.shape).to(spec.dtype));
    }
  }
  return inputs;
}

std::vector<at::Tensor> Flatten(const torch::jit::IValue& result) {
  if (result.isTensor()) return {result.toTensor()};
  std::vector<at::Tensor> tensors;
  if (result.isTuple()) {
    for (const auto& item : result.toTupleRef().elements()) tensors.push_back(item.toTensor());
  } else if (result.isTensorList()) {
    tensors = result.toTensorVector();
  } else {
    throw std::runtime_error("the model returned a " + result.tagKind() + "; expected tensors");
  }
  return tensors;
}

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseArgs(argc, argv);
  int threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  setenv("TVM_NUM_THREADS", std::to_string(threads).c_str(), /*overwrite=*/0);
  try {
    torch::jit::Module module = torch::jit::load(options.model);
    module.eval();
    std::vector<torch::jit::IValue> inputs = MakeInputs(options);
    torch::NoGradGuard no_grad;
    torch::jit::IValue result;
    for (int i = 0; i < options.warmup; ++i) module.forward(inputs);
    std::vector<double> millis;
    for (int i = 0; i < options.repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      result = module.forward(inputs);
      millis.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::vector<at::Tensor> outputs = Flatten(result);
    for (size_t i = 0; i < outputs.size(); ++i) {
      const at::Tensor& out = outputs[i];
      at::Tensor as_double = out.to(at::kDouble);
      std::printf("output %zu: shape %s dtype %s sum %.9g abs_sum %.9g\n", i,
                  tvmbridge::ShapeString(out.sizes().vec()).c_str(),
                  tvmbridge::DtypeName(out.scalar_type()).c_str(), as_double.sum().item<double>(),
                  as_double.abs().sum().item<double>());
    }
    std::sort(millis.begin(), millis.end());
    double median = millis[millis.size() / 2];
    std::printf("latency: median %.3f ms, min %.3f ms, max %.3f ms over %d runs (%d threads)\n",
                median, millis.front(), millis.back(), options.repeat, threads);
    if (!options.save_output.empty()) {
      std::vector<c10::IValue> elements(outputs.begin(), outputs.end());
      std::vector<char> bytes = torch::pickle_save(c10::ivalue::Tuple::create(elements));
      std::ofstream file(options.save_output, std::ios::binary);
      file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!file) throw std::runtime_error("cannot write " + options.save_output);
    }
  } catch (const c10::Error& error) {
    std::cerr << "tvmbridge-run: " << error.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "tvmbridge-run: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
