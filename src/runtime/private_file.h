// A temporary file only this user can read, removed when the object goes out of scope.
#pragma once

#include <string>

namespace tvmbridge {

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

}  // namespace tvmbridge
