#include "runtime/elf_check.h"

#include <elf.h>

#include <cstdint>
#include <cstring>

namespace tvmbridge {
namespace {

#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
#else
constexpr uint16_t kHostMachine = EM_NONE;  // not checked
#endif

// Whether [offset, offset + length) lies within a file of `size` bytes, without overflow.
bool Within(uint64_t offset, uint64_t length, size_t size) {
  return offset <= size && length <= size - offset;
}

// Copies a header out of the image: the bytes carry no alignment guarantee.
template <typename Header>
Header Read(const uint8_t* image, uint64_t offset) {
  Header header;
  std::memcpy(&header, image + offset, sizeof(Header));
  return header;
}

}  // namespace

std::string SharedObjectProblem(const void* data, size_t size) {
  const auto* image = static_cast<const uint8_t*>(data);
  if (size < sizeof(Elf64_Ehdr) || std::memcmp(image, ELFMAG, SELFMAG) != 0) {
    return "it is not an ELF file";
  }
  const auto elf = Read<Elf64_Ehdr>(image, 0);
  if (elf.e_ident[EI_CLASS] != ELFCLASS64 || elf.e_ident[EI_DATA] != ELFDATA2LSB) {
    return "it is not a 64-bit little-endian ELF file";
  }
  if (elf.e_type != ET_DYN) return "it is not a shared object";
  if (kHostMachine != EM_NONE && elf.e_machine != kHostMachine) {
    return "it holds code for ELF machine " + std::to_string(elf.e_machine) +
           ", not for this one (" + std::to_string(kHostMachine) + ")";
  }
  if (elf.e_phentsize != sizeof(Elf64_Phdr) || elf.e_phnum == 0 ||
      !Within(elf.e_phoff, uint64_t{elf.e_phnum} * sizeof(Elf64_Phdr), size)) {
    return "its program headers are missing or lie outside the file (truncated?)";
  }
  if (elf.e_shoff != 0 &&
      (elf.e_shentsize != sizeof(Elf64_Shdr) ||
       !Within(elf.e_shoff, uint64_t{elf.e_shnum} * sizeof(Elf64_Shdr), size))) {
    return "its section headers lie outside the file (truncated?)";
  }
  bool has_dynamic = false;
  for (uint16_t i = 0; i < elf.e_phnum; ++i) {
    const auto segment = Read<Elf64_Phdr>(image, elf.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr));
    if (segment.p_type != PT_LOAD && segment.p_type != PT_DYNAMIC) continue;
    if (!Within(segment.p_offset, segment.p_filesz, size) || segment.p_filesz > segment.p_memsz) {
      return "segment " + std::to_string(i) + " lies outside the file (truncated?)";
    }
    has_dynamic = has_dynamic || segment.p_type == PT_DYNAMIC;
  }
  if (!has_dynamic) return "it has no dynamic section";
  return "";
}

}  // namespace tvmbridge
