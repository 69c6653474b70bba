#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <torch/script.h>

#include "fixtures.h"
#include "runtime/private_file.h"
#include "tvmbridge/save.h"

namespace tvmbridge {
namespace {

namespace fs = std::filesystem;

class ScratchFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tvmbridge-files-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    folder = pattern;
  }
  void TearDown() override { fs::remove_all(folder); }

  std::string Read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  fs::path folder;
};

TEST_F(ScratchFolder, PrivateFileIsOwnerOnlyAndRemoved) {
  std::string path;
  {
    PrivateFile file("tvmbridge-test", "abc", 3);
    path = file.path();
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    EXPECT_EQ(Read(path), "abc");
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(ScratchFolder, AtomicWriteReplacesWholeAndLeavesNothingElse) {
  fs::path target = folder / "model.pt";
  WriteFileAtomically(target, "old", 3);
  WriteFileAtomically(target, "new contents", 12, 0640);
  EXPECT_EQ(Read(target), "new contents");
  struct stat info {};
  ASSERT_EQ(::stat(target.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0640u);
  EXPECT_EQ(std::distance(fs::directory_iterator(folder), fs::directory_iterator()), 1);
}

TEST_F(ScratchFolder, FailedWriteNamesThePathAndKeepsTheOldFile) {
  fs::path target = folder / "model.pt";
  WriteFileAtomically(target, "old", 3);
  try {
    WriteFileAtomically((folder / "missing" / "model.pt").string(), "x", 1);
    FAIL() << "wrote into a folder that does not exist";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("missing/model.pt"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(Read(target), "old");
}

TEST_F(ScratchFolder, SaveModuleWritesALoadableModule) {
  torch::jit::Module compiled = testing::LoadFixture("small_compiled.pt");
  fs::path target = folder / "copy.pt";
  SaveModule(compiled, target.string());
  torch::jit::Module loaded = torch::jit::load(target.string());
  at::Tensor x = torch::randn({2, 3, 16, 16});
  EXPECT_TRUE(torch::equal(loaded.forward({x}).toTensor(), compiled.forward({x}).toTensor()));
}

}  // namespace
}  // namespace tvmbridge
