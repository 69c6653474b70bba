#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/script.h>

#include "fixtures.h"

namespace tvmbridge {
namespace {

using testing::LoadFixture;
using testing::TvmModuleOf;

// Runs `body` and checks that it throws an error whose message contains every fragment. Called
// directly the runtime throws c10::Error; through a TorchScript method the interpreter rethrows
// it with the TorchScript traceback added.
template <typename Body>
void ExpectErrorMentioning(Body&& body, std::initializer_list<const char*> fragments) {
  try {
    body();
    FAIL() << "expected an error";
  } catch (const std::exception& error) {
    std::string message = error.what();
    for (const char* fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "'" << fragment << "' not in: " << message;
    }
  }
}

class SmallModel : public ::testing::Test {
 protected:
  torch::jit::Module compiled = LoadFixture("small_compiled.pt");
  torch::jit::Module reference = LoadFixture("small_reference.pt");
};

TEST_F(SmallModel, MatchesTorchScriptReference) {
  torch::manual_seed(1);
  at::Tensor x = torch::randn({2, 3, 16, 16});
  at::Tensor expected = reference.forward({x}).toTensor();
  at::Tensor actual = compiled.forward({x}).toTensor();
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-4))
      << "max abs diff " << (actual - expected).abs().max().item<float>();
}

TEST_F(SmallModel, OpTakesAListAndReturnsAList) {
  at::Tensor x = torch::randn({2, 3, 16, 16});
  auto outputs = TvmModuleOf(compiled)->Run({x});
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].sizes(), (c10::IntArrayRef{2, 5}));
}

// Every wrong way to call the compiled module, through its TorchScript forward (as a C++
// deployment calls it): each is refused with a message naming the input and the expectation.
struct BadCall {
  const char* name;
  std::function<std::vector<c10::IValue>()> arguments;
  std::vector<const char*> fragments;
};

const BadCall kBadCalls[] = {
    {"two inputs for one",
     [] {
       return std::vector<c10::IValue>{torch::randn({2, 3, 16, 16}), torch::randn({2, 3, 16, 16})};
     },
     {"forward", "2 argument"}},
    {"no input", [] { return std::vector<c10::IValue>{}; }, {"forward", "argument 'x'"}},
    {"wrong shape",
     [] {
       return std::vector<c10::IValue>{torch::randn({1, 3, 16, 16})};
     },
     {"input 0", "shape [1, 3, 16, 16]", "float32[2, 3, 16, 16]"}},
    {"wrong rank",
     [] {
       return std::vector<c10::IValue>{torch::randn({3, 16, 16})};
     },
     {"input 0", "shape [3, 16, 16]", "float32[2, 3, 16, 16]"}},
    {"zero-size",
     [] {
       return std::vector<c10::IValue>{torch::randn({0, 3, 16, 16})};
     },
     {"input 0", "shape [0, 3, 16, 16]"}},
    {"float64",
     [] {
       return std::vector<c10::IValue>{torch::randn({2, 3, 16, 16}, torch::kFloat64)};
     },
     {"input 0", "dtype float64", "float32[2, 3, 16, 16]"}},
    {"int64",
     [] {
       return std::vector<c10::IValue>{torch::zeros({2, 3, 16, 16}, torch::kLong)};
     },
     {"input 0", "dtype int64"}},
    {"non-contiguous",
     [] {
       return std::vector<c10::IValue>{torch::randn({2, 3, 16, 16}).transpose(2, 3)};
     },
     {"input 0", "not contiguous", ".contiguous()"}},
    {"meta device",
     [] {
       return std::vector<c10::IValue>{
           torch::empty({2, 3, 16, 16}, torch::TensorOptions().device(torch::kMeta))};
     },
     {"input 0", "meta", "CPU"}},
    {"undefined tensor", [] { return std::vector<c10::IValue>{at::Tensor()}; }, {"input 0"}},
    {"a list where a tensor goes",
     [] {
       return std::vector<c10::IValue>{c10::List<at::Tensor>({torch::randn({2, 3, 16, 16})})};
     },
     {"forward", "Tensor"}},
    {"an int where a tensor goes",
     [] { return std::vector<c10::IValue>{int64_t{3}}; },
     {"forward", "Tensor"}},
};

TEST_F(SmallModel, BadCallsAreRefusedWithClearErrors) {
  for (const BadCall& bad : kBadCalls) {
    SCOPED_TRACE(bad.name);
    try {
      compiled.forward(bad.arguments());
      ADD_FAILURE() << "accepted";
    } catch (const std::exception& error) {
      std::string message = error.what();
      for (const char* fragment : bad.fragments) {
        EXPECT_NE(message.find(fragment), std::string::npos)
            << "'" << fragment << "' not in: " << message;
      }
    }
  }
  // The module still works after every refusal.
  at::Tensor x = torch::randn({2, 3, 16, 16});
  EXPECT_TRUE(torch::allclose(compiled.forward({x}).toTensor(), reference.forward({x}).toTensor(),
                              1e-4, 1e-4));
}

TEST_F(SmallModel, WrongInputCountCalledDirectly) {
  at::Tensor x = torch::randn({2, 3, 16, 16});
  ExpectErrorMentioning(
      [&] {
        TvmModuleOf(compiled)->Run({x, x});
      },
      {"takes 1 input(s)", "given 2"});
}

TEST_F(SmallModel, RequiresGradInputStillComputes) {
  at::Tensor x = torch::randn({2, 3, 16, 16}).requires_grad_();
  EXPECT_TRUE(torch::allclose(compiled.forward({x}).toTensor(), reference.forward({x}).toTensor(),
                              1e-4, 1e-4));
}

TEST_F(SmallModel, MisalignedInputIsCopiedOnceAndStillCorrect) {
  at::Tensor storage = torch::randn({2 * 3 * 16 * 16 + 1});
  at::Tensor x = storage.slice(0, 1).view({2, 3, 16, 16});  // data 4 bytes past alignment
  auto tvm_module = TvmModuleOf(compiled);
  int64_t before = tvm_module->AlignmentCopies();
  at::Tensor actual = compiled.forward({x}).toTensor();
  EXPECT_EQ(tvm_module->AlignmentCopies(), before + 1);
  EXPECT_TRUE(torch::allclose(actual, reference.forward({x}).toTensor(), 1e-4, 1e-4));
}

TEST(TwoInputs, TupleOutputsMatchReference) {
  torch::jit::Module compiled = LoadFixture("two_inputs_compiled.pt");
  torch::jit::Module reference = LoadFixture("two_inputs_reference.pt");
  at::Tensor x = torch::randn({4, 8});
  at::Tensor y = torch::randn({4, 8});
  auto actual = compiled.forward({x, y}).toTuple();
  auto expected = reference.forward({x, y}).toTuple();
  ASSERT_EQ(actual->elements().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::allclose(actual->elements()[i].toTensor(),
                                expected->elements()[i].toTensor(), 1e-5, 1e-5));
  }
}

TEST(TwoInputs, SecondInputIsNamedInErrors) {
  torch::jit::Module compiled = LoadFixture("two_inputs_compiled.pt");
  ExpectErrorMentioning(
      [&] {
        compiled.forward({torch::randn({4, 8}), torch::randn({4, 9})});
      },
      {"input 1", "'y'", "shape [4, 9]"});
}

}  // namespace
}  // namespace tvmbridge

namespace tvmbridge {
namespace {

// 8 threads x 10,000 calls of one loaded module: every answer right; concurrent calls get
// VMs of their own (at most one per thread), or wait for the one VM under a limit of 1.
void CallFromThreads(torch::jit::Module& compiled, torch::jit::Module& reference, int calls) {
  constexpr int kThreads = 8;
  std::vector<at::Tensor> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(torch::randn({2, 3, 16, 16}));
    expected.push_back(reference.forward({inputs.back()}).toTensor());
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int call = 0; call < calls; ++call) {
        at::Tensor out = compiled.forward({inputs[t]}).toTensor();
        if (!torch::allclose(out, expected[t], 1e-4, 1e-4)) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  int64_t machines = TvmModuleOf(compiled)->VirtualMachines();
  EXPECT_GE(machines, 1);
  EXPECT_LE(machines, kThreads);
}

TEST(Concurrency, ThreadsShareOneModuleAndGetTheirOwnAnswers) {
  torch::jit::Module compiled = testing::LoadFixture("small_compiled.pt");
  torch::jit::Module reference = testing::LoadFixture("small_reference.pt");
  CallFromThreads(compiled, reference, 10000);
}

TEST(Concurrency, ALimitOfOneVirtualMachineSerialisesCalls) {
  torch::jit::Module compiled = testing::LoadFixture("small_compiled.pt");
  torch::jit::Module reference = testing::LoadFixture("small_reference.pt");
  TvmModuleOf(compiled)->SetVirtualMachineLimit(1);
  CallFromThreads(compiled, reference, 200);
  EXPECT_EQ(TvmModuleOf(compiled)->VirtualMachines(), 1);
  EXPECT_THROW(TvmModuleOf(compiled)->SetVirtualMachineLimit(-1), c10::Error);
}

}  // namespace
}  // namespace tvmbridge
