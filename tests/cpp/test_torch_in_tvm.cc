// PyTorch inside TVM, from C++: a TVM library whose program calls TorchScript regions (made by
// from_torchscript(fallback="torchscript"), see make_fixtures.py) loads with TVM's runtime —
// libtvmbridge_torch_runtime registers the function those calls name — and matches the model
// run by TorchScript.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "fixtures.h"
#include "tvmbridge/tensor_bridge.h"

namespace tvmbridge {
namespace {

constexpr int kPooledAllocator = 2;  // tvm.runtime.vm.VirtualMachine.POOLED_ALLOCATOR

TEST(TorchInTvm, ExportedLibraryRunsWithTvmRuntimeAndMatchesTorchScript) {
  tvm::ffi::Module library =
      tvm::ffi::Module::LoadFromFile(testing::FixturePath("detection_hybrid.so"));
  auto vm = (*library->GetFunction("vm_load_executable"))().cast<tvm::ffi::Module>();
  (*vm->GetFunction("vm_initialization"))(static_cast<int>(kDLCPU), 0, kPooledAllocator);
  tvm::ffi::Function main = *vm->GetFunction("main");
  torch::jit::Module reference = testing::LoadFixture("detection_reference.pt");

  for (int seed : {1, 2, 3}) {
    torch::manual_seed(seed);
    at::Tensor x = torch::randn({1, 3, 16, 16}) * seed;
    auto expected = reference.forward({x}).toTupleRef().elements();
    auto actual = main(ToTvm(x)).cast<tvm::ffi::Array<tvm::ffi::Any>>();
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      at::Tensor got = ToTorch(actual[i].cast<tvm::ffi::Tensor>());
      at::Tensor want = expected[i].toTensor();
      ASSERT_EQ(got.sizes(), want.sizes()) << "output " << i << ", seed " << seed;
      EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4)) << "output " << i << ", seed " << seed;
    }
  }
}

}  // namespace
}  // namespace tvmbridge
