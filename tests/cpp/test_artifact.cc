#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/script.h>

#include "fixtures.h"
#include "runtime/cpu_features.h"
#include "runtime/elf_check.h"
#include "tvmbridge/artifact.h"

namespace tvmbridge {
namespace {

using testing::LoadFixture;
using testing::TvmModuleOf;

ArtifactMetadata SampleMetadata() {
  ArtifactMetadata meta;
  meta.target = R"({"kind": "llvm"})";
  meta.tvm_version = "0.27.0";
  meta.tvmbridge_version = "0.1.0";
  meta.inputs = {{"x", {1, 3, 224, 224}, c10::ScalarType::Float},
                 {"ids", {4}, c10::ScalarType::Long}};
  meta.outputs = {{"output_0", {1, 1000}, c10::ScalarType::Float}};
  meta.output_is_tuple = true;
  meta.artifact_sha256 = std::string(64, 'a');
  return meta;
}

TEST(ArtifactMetadata, JsonRoundTrip) {
  ArtifactMetadata meta = SampleMetadata();
  ArtifactMetadata back = ArtifactMetadata::FromJson(meta.ToJson());
  EXPECT_EQ(back.target, meta.target);
  EXPECT_EQ(back.tvm_version, meta.tvm_version);
  ASSERT_EQ(back.inputs.size(), 2u);
  EXPECT_EQ(back.inputs[1].name, "ids");
  EXPECT_EQ(back.inputs[1].dtype, c10::ScalarType::Long);
  EXPECT_EQ(back.inputs[0].shape, (std::vector<int64_t>{1, 3, 224, 224}));
  EXPECT_TRUE(back.output_is_tuple);
  EXPECT_EQ(back.artifact_sha256, meta.artifact_sha256);
}

TEST(ArtifactMetadata, RejectsMalformedJson) {
  EXPECT_THROW(
      {
        try {
          ArtifactMetadata::FromJson("{not json");
        } catch (const c10::Error& error) {
          EXPECT_NE(std::string(error.what()).find("corrupted artifact metadata"),
                    std::string::npos);
          throw;
        }
      },
      c10::Error);
}

TEST(ArtifactMetadata, RejectsMissingKey) {
  std::string json = SampleMetadata().ToJson();
  std::string without_target = json;
  auto at = without_target.find("\"target\"");
  ASSERT_NE(at, std::string::npos);
  without_target.replace(at, 8, "\"tarxet\"");
  try {
    ArtifactMetadata::FromJson(without_target);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("has no 'target'"), std::string::npos);
  }
}

TEST(ArtifactMetadata, RejectsOtherFormatVersion) {
  ArtifactMetadata meta = SampleMetadata();
  meta.format_version = kArtifactFormatVersion + 1;
  try {
    ArtifactMetadata::FromJson(meta.ToJson());
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("format version"), std::string::npos);
  }
}

TEST(Artifact, SaveLoadRoundTripGivesSameOutputs) {
  torch::jit::Module compiled = LoadFixture("small_compiled.pt");
  std::stringstream archive;
  compiled.save(archive);
  torch::jit::Module reloaded = torch::jit::load(archive);
  at::Tensor x = torch::randn({2, 3, 16, 16});
  at::Tensor expected = compiled.forward({x}).toTensor();
  EXPECT_TRUE(torch::equal(reloaded.forward({x}).toTensor(), expected));
}

TEST(Artifact, TamperedLibraryIsRefused) {
  auto state = TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize();
  at::Tensor library = std::get<2>(state).clone();
  library.data_ptr<uint8_t>()[library.numel() / 2] ^= 0x40;
  std::get<2>(state) = library;
  try {
    TVMModule::Deserialize(state);
    FAIL() << "a library with a flipped byte was loaded";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("altered or corrupted"), std::string::npos)
        << error.what();
  }
}

TEST(Artifact, OtherFormatVersionIsRefused) {
  auto state = TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize();
  std::get<0>(state) = kArtifactFormatVersion + 7;
  try {
    TVMModule::Deserialize(state);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("recompile the model"), std::string::npos);
  }
}

// Runs `load`, expecting a c10::Error whose message contains `fragment`.
template <typename Load>
void ExpectRefused(Load load, const std::string& fragment) {
  try {
    load();
    ADD_FAILURE() << "loaded; expected an error containing '" << fragment << "'";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(Artifact, MetadataThatDisagreesWithTheLibraryIsRefused) {
  auto state = TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize();
  ArtifactMetadata meta = ArtifactMetadata::FromJson(std::get<1>(state));
  meta.inputs[0].shape[0] += 1;  // the code was compiled for the old shape
  std::get<1>(state) = meta.ToJson();
  ExpectRefused([&] { TVMModule::Deserialize(state); }, "altered or corrupted");
}

// A library that would fail in dlopen, with a valid digest: refusals show the checks come first.
std::pair<ArtifactMetadata, at::Tensor> GarbageArtifactFor(const std::string& target) {
  at::Tensor garbage = torch::full({4096}, 7, torch::kByte);
  ArtifactMetadata meta = SampleMetadata();
  meta.target = target;
  meta.artifact_sha256 = meta.Digest(garbage.data_ptr(), garbage.numel());
  return {meta, garbage};
}

TEST(Artifact, LibraryForAnotherArchitectureIsRefusedBeforeLoading) {
  std::string other = std::string(HostArchitecture()) == "x86_64" ? "aarch64" : "x86_64";
  auto [meta, library] =
      GarbageArtifactFor(R"({"kind": "llvm", "mtriple": ")" + other + R"(-linux-gnu"})");
  ExpectRefused([&] { TVMModule(meta.ToJson(), library); }, "compiled for " + other);
}

TEST(Artifact, LibraryForAGpuIsRefusedBeforeLoading) {
  auto [meta, library] = GarbageArtifactFor(R"({"kind": "cuda", "arch": "sm_90"})");
  ExpectRefused([&] { TVMModule(meta.ToJson(), library); }, "target kind 'cuda'");
}

TEST(Artifact, TruncatedOrFlippedSavedFilesAreRefused) {
  std::stringstream saved;
  LoadFixture("small_compiled.pt").save(saved);
  const std::string bytes = saved.str();
  for (double fraction : {0.0, 0.1, 0.5, 0.9, 0.999}) {
    std::istringstream truncated(bytes.substr(0, static_cast<size_t>(bytes.size() * fraction)));
    EXPECT_THROW(torch::jit::load(truncated), c10::Error) << "kept " << fraction;
  }
  // The library is the archive's largest record; a byte flipped in the middle lands in it.
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x01;
  std::istringstream flipped_stream(flipped);
  EXPECT_THROW(torch::jit::load(flipped_stream), c10::Error);
}

TEST(TargetMismatch, AcceptsThisCpuAndNamesWhatIsWrong) {
  EXPECT_EQ(TargetMismatch(R"({"kind": "llvm", "mcpu": "znver5"})"), "");
  EXPECT_EQ(TargetMismatch(std::string(R"({"kind": "llvm", "mtriple": ")") + HostArchitecture() +
                           R"(-pc-linux-gnu"})"),
            "");
  EXPECT_NE(TargetMismatch("llvm -mcpu=znver5").find("not a TVM target in JSON"),
            std::string::npos);
  EXPECT_NE(TargetMismatch(R"({"kind": "llvm", "mtriple": "riscv64-linux-gnu"})")
                .find("riscv64-linux-gnu"),
            std::string::npos);
}

TEST(Artifact, TruncatedLibraryIsRefused) {
  auto state = TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize();
  std::get<2>(state) = std::get<2>(state).slice(0, 0, 1000).clone();
  EXPECT_THROW(TVMModule::Deserialize(state), c10::Error);
}

TEST(CpuFeatures, MissingOnesAreListed) {
  auto has = [](const std::string& feature) { return feature != "avx512f"; };
  EXPECT_EQ(MissingCpuFeatures({"avx2", "avx512f", "fma"}, has),
            (std::vector<std::string>{"avx512f"}));
  EXPECT_TRUE(MissingCpuFeatures({}, has).empty());
}

TEST(CpuFeatures, UntestableFeaturesCountAsPresent) {
  EXPECT_TRUE(CpuHasFeature("some-future-extension"));
  EXPECT_TRUE(CpuHasFeature("sse3"));  // every x86-64 CPU this runs on has it
}

TEST(CpuFeatures, CompiledModulesRecordWhatTheyNeed) {
  auto tvm_module = testing::TvmModuleOf(testing::LoadFixture("small_compiled.pt"));
  const auto& features = tvm_module->metadata().cpu_features;
#if defined(__x86_64__)
  EXPECT_NE(std::find(features.begin(), features.end(), "sse4.2"), features.end());
#endif
  EXPECT_TRUE(MissingCpuFeatures(features).empty());
}

TEST(CpuFeatures, MetadataRoundTripKeepsThem) {
  ArtifactMetadata meta = SampleMetadata();
  meta.cpu_features = {"avx2", "fma"};
  EXPECT_EQ(ArtifactMetadata::FromJson(meta.ToJson()).cpu_features, meta.cpu_features);
}

TEST(Artifact, TemporaryLibraryIsRemovedWhenLoadingFails) {
  // A real library whose ELF version byte glibc rejects: it passes every check of ours and
  // fails in dlopen, after the temporary file was written.
  auto state = TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize();
  at::Tensor library = std::get<2>(state).clone();
  library.data_ptr<uint8_t>()[6] = 0;  // e_ident[EI_VERSION]
  ArtifactMetadata meta = ArtifactMetadata::FromJson(std::get<1>(state));
  meta.artifact_sha256 = meta.Digest(library.data_ptr(), library.numel());
  char dir_template[] = "/tmp/tvmbridge-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  const char* old_tmpdir = std::getenv("TMPDIR");
  std::string saved = old_tmpdir ? old_tmpdir : "";
  setenv("TMPDIR", dir.c_str(), 1);
  ExpectRefused([&] { TVMModule(meta.ToJson(), library); }, "cannot load the embedded");
  if (old_tmpdir) {
    setenv("TMPDIR", saved.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
  EXPECT_EQ(rmdir(dir.c_str()), 0) << "the temporary library was left behind in " << dir;
}

TEST(SharedObjectProblem, AcceptsACompiledLibraryAndNamesWhatIsWrong) {
  at::Tensor library = std::get<2>(TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize());
  const auto* bytes = library.data_ptr<uint8_t>();
  const size_t size = library.numel();
  EXPECT_EQ(SharedObjectProblem(bytes, size), "");
  EXPECT_NE(SharedObjectProblem(bytes, size / 2).find("outside the file"), std::string::npos);
  EXPECT_NE(SharedObjectProblem(bytes, 40).find("not an ELF file"), std::string::npos);
  std::vector<uint8_t> other_machine(bytes, bytes + size);
  other_machine[18] = 0xb7;  // e_machine = EM_AARCH64 (or EM_X86_64's 0x3e on arm)
  if (std::string(HostArchitecture()) == "aarch64") other_machine[18] = 0x3e;
  EXPECT_NE(SharedObjectProblem(other_machine.data(), size).find("ELF machine"), std::string::npos);
}

TEST(Artifact, SelfConsistentButTruncatedLibraryIsRefusedBeforeLoading) {
  // What make fuzz found: the digest recomputed over a truncated library (as a forger can)
  // got the bytes to dlopen, which crashed mapping segments past the end of the file.
  auto state = TvmModuleOf(LoadFixture("small_compiled.pt"))->Serialize();
  at::Tensor library = std::get<2>(state).slice(0, 0, 4096).clone();
  ArtifactMetadata meta = ArtifactMetadata::FromJson(std::get<1>(state));
  meta.artifact_sha256 = meta.Digest(library.data_ptr(), library.numel());
  ExpectRefused([&] { TVMModule(meta.ToJson(), library); }, "outside the file");
}

}  // namespace
}  // namespace tvmbridge
