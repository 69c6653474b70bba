#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/sha256.h"

namespace tvmbridge {
namespace {

std::string Digest(const std::string& text) { return Sha256Hex(text.data(), text.size()); }

// Vectors from FIPS 180-4's examples and NIST's SHA test vectors.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Digest(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // 55, 56 and 64 bytes straddle the one- and two-block padding cases: all digests differ.
  EXPECT_NE(Digest(std::string(55, 'x')), Digest(std::string(56, 'x')));
  EXPECT_NE(Digest(std::string(56, 'x')), Digest(std::string(64, 'x')));
  EXPECT_EQ(Digest(std::string(64, 'x')).size(), 64u);
}

TEST(Sha256, PiecewiseUpdatesEqualOneShot) {
  std::string text;
  for (int i = 0; i < 300; ++i) text.push_back(static_cast<char>('a' + i % 26));
  for (size_t split : {0, 1, 55, 63, 64, 65, 128, 200, 300}) {
    Sha256 hash;
    hash.Update(text.data(), split);
    hash.Update(text.data() + split, text.size() - split);
    EXPECT_EQ(hash.HexDigest(), Digest(text)) << "split at " << split;
  }
}

// Generated inputs: the SHA-extension path and the portable one agree on 1 to 40 blocks of
// seeded random bytes, from random states. Where the CPU lacks the extensions the test says so.
TEST(Sha256, CpuExtensionsAgreeWithThePortableCode) {
  std::mt19937 random(20261205);
  std::array<uint32_t, 8> probe{};
  const uint8_t block[64] = {};
  if (!CompressBlocksWithCpuExtensions(probe, block, 1)) {
    GTEST_SKIP() << "this CPU has no SHA extensions: only the portable code runs here";
  }
  for (size_t count = 1; count <= 40; ++count) {
    std::vector<uint8_t> bytes(64 * count);
    for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random());
    std::array<uint32_t, 8> portable;
    for (uint32_t& word : portable) word = random();
    std::array<uint32_t, 8> accelerated = portable;
    CompressBlocksPortably(portable, bytes.data(), count);
    ASSERT_TRUE(CompressBlocksWithCpuExtensions(accelerated, bytes.data(), count));
    EXPECT_EQ(accelerated, portable) << count << " blocks";
  }
}

}  // namespace
}  // namespace tvmbridge
