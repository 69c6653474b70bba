#include "runtime/private_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <c10/util/Exception.h>

namespace tvmbridge {

namespace {

// Writes all of `data` to `fd`, fsyncs it if `durable`, and closes it in any case. Returns 0 or
// the first errno.
int WriteAndClose(int fd, const void* data, size_t size, bool durable) {
  int error = 0;
  for (const char* cursor = static_cast<const char*>(data); size > 0 && !error;) {
    ssize_t written = ::write(fd, cursor, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      error = written == 0 ? EIO : errno;
    } else {
      cursor += written;
      size -= static_cast<size_t>(written);
    }
  }
  if (!error && durable && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  return error;
}

mode_t CurrentUmask() {
  // /proc says it without changing it (umask(2) can only set, racing other threads).
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Umask:", 0) == 0) {
      return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
    }
  }
  return 022;
}

[[noreturn]] void FailWriting(const std::string& what, const std::string& path, int error) {
  TORCH_CHECK(false, "tvmbridge: cannot ", what, " ", path, ": ", std::strerror(error));
}

}  // namespace

PrivateFile::PrivateFile(const std::string& name_prefix, const void* data, size_t size) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/" + name_prefix + "-XXXXXX.so";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  // mkstemps opens with O_CREAT | O_EXCL and mode 0600.
  int fd = ::mkstemps(name.data(), 3);
  if (fd < 0) FailWriting("create a private temporary file like", pattern, errno);
  path_ = name.data();
  if (int error = WriteAndClose(fd, data, size, /*durable=*/false)) {
    ::unlink(path_.c_str());
    FailWriting("write the temporary file", path_, error);
  }
}

void WriteFileAtomically(const std::string& path, const void* data, size_t size, mode_t mode) {
  if (mode == kDefaultFileMode) mode = 0666 & ~CurrentUmask();
  std::error_code ignored;
  std::filesystem::path target = std::filesystem::weakly_canonical(path, ignored);
  if (target.empty()) target = path;  // the calls below report why the place is unusable
  struct stat existing {};
  if (::stat(target.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode)) {
    int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) FailWriting("open", target, errno);
    if (int error = WriteAndClose(fd, data, size, /*durable=*/false)) {
      FailWriting("write", target, error);
    }
    return;
  }
  std::string pattern = target.string() + ".tmp-XXXXXX";
  std::vector<char> temporary(pattern.begin(), pattern.end());
  temporary.push_back('\0');
  int fd = ::mkstemp(temporary.data());  // O_EXCL; readers never look at this name
  if (fd < 0) FailWriting("create a file beside", target, errno);
  int error = ::fchmod(fd, mode) == 0 ? 0 : errno;
  if (error) {
    ::close(fd);
  } else {
    error = WriteAndClose(fd, data, size, /*durable=*/true);
  }
  if (!error && ::rename(temporary.data(), target.c_str()) != 0) error = errno;
  if (error) {
    ::unlink(temporary.data());
    FailWriting("write", target, error);
  }
}

PrivateFile::~PrivateFile() { ::unlink(path_.c_str()); }

}  // namespace tvmbridge
