// Files written safely: private temporary files, and whole-or-nothing replacement.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace tvmbridge {

// A temporary file only this user can read, removed when the object goes out of scope.
class PrivateFile {
 public:
  // Creates the file exclusively (mode 0600) in $TMPDIR (or /tmp) and writes `size` bytes.
  // Throws c10::Error with the path and the system's reason on failure; nothing is left behind.
  PrivateFile(const std::string& name_prefix, const void* data, size_t size);
  ~PrivateFile();
  PrivateFile(const PrivateFile&) = delete;
  PrivateFile& operator=(const PrivateFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `size` bytes to `path` so that readers see the old file or the whole new one, never a
// part: a temporary file beside it (created exclusively), flushed, given `mode` and renamed
// over it. A path that exists and is not a regular file (/dev/null, a pipe) is written in
// place. Throws c10::Error naming the path and the system's reason; a failure leaves no new
// file behind. kDefaultFileMode means what open(2) would give: 0666 less the umask.
constexpr mode_t kDefaultFileMode = static_cast<mode_t>(-1);
void WriteFileAtomically(const std::string& path, const void* data, size_t size,
                         mode_t mode = kDefaultFileMode);

}  // namespace tvmbridge
