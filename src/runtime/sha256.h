// SHA-256 (FIPS 180-4), used to check that an embedded library is the one that was compiled.
#pragma once

#include <cstddef>
#include <string>

namespace tvmbridge {

// Lower-case hex digest of `size` bytes at `data`.
std::string Sha256Hex(const void* data, size_t size);

}  // namespace tvmbridge
