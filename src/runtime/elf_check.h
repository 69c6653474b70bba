// A structural check of a shared library's ELF image before dlopen sees it: glibc trusts the
// headers it maps, and a truncated or malformed file can crash the loading process.
#pragma once

#include <cstddef>
#include <string>

namespace tvmbridge {

// Why `size` bytes at `data` are not a 64-bit little-endian shared object for this machine
// whose headers and loadable segments lie within the file, or an empty string if they are.
// Reads only inside [data, data + size).
std::string SharedObjectProblem(const void* data, size_t size);

}  // namespace tvmbridge
