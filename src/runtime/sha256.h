// SHA-256 (FIPS 180-4), used to check that an embedded library is the one that was compiled.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tvmbridge {

// Incremental SHA-256: Update() with the pieces in order, then HexDigest() once.
class Sha256 {
 public:
  void Update(const void* data, size_t size);
  std::string HexDigest();  // lower-case hex; the object is spent afterwards

 private:
  std::array<uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> pending_{};  // bytes not yet making up a whole block
  size_t pending_size_ = 0;
  uint64_t total_size_ = 0;
};

// The compression function over `count` 64-byte blocks, as Sha256 runs it: with the CPU's
// SHA extensions where it has them (CompressBlocksWithCpuExtensions returns false, and does
// nothing, where not), portably otherwise. Declared for the tests that hold one to the other.
void CompressBlocksPortably(std::array<uint32_t, 8>& state, const uint8_t* blocks, size_t count);
bool CompressBlocksWithCpuExtensions(std::array<uint32_t, 8>& state, const uint8_t* blocks,
                                     size_t count);

// Lower-case hex digest of `size` bytes at `data`.
std::string Sha256Hex(const void* data, size_t size);

}  // namespace tvmbridge
