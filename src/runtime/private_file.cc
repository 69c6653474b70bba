#include "runtime/private_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <c10/util/Exception.h>

namespace tvmbridge {

PrivateFile::PrivateFile(const std::string& name_prefix, const void* data, size_t size) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/" + name_prefix + "-XXXXXX.so";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  // mkstemps opens with O_CREAT | O_EXCL and mode 0600.
  int fd = ::mkstemps(name.data(), 3);
  TORCH_CHECK(fd >= 0, "tvmbridge: cannot create a private temporary file like ", pattern, ": ",
              std::strerror(errno));
  path_ = name.data();
  const char* cursor = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t written = ::write(fd, cursor, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      int error = errno;
      ::close(fd);
      ::unlink(path_.c_str());
      TORCH_CHECK(false, "tvmbridge: cannot write the temporary file ", path_, ": ",
                  std::strerror(error));
    }
    cursor += written;
    left -= static_cast<size_t>(written);
  }
  if (::close(fd) != 0) {
    int error = errno;
    ::unlink(path_.c_str());
    TORCH_CHECK(false, "tvmbridge: cannot write the temporary file ", path_, ": ",
                std::strerror(error));
  }
}

PrivateFile::~PrivateFile() { ::unlink(path_.c_str()); }

}  // namespace tvmbridge
