#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <utility>

namespace vigil {

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path, Access access) {
  if (path.empty()) return InvalidArgument("output path is empty");
  auto f = std::make_unique<AtomicFile>();
  f->path_ = path;
  f->tmp_path_ = path + ".tmp." + std::to_string(::getpid());
  if (access == Access::kShared) {
    f->file_ = std::fopen(f->tmp_path_.c_str(), "wb");
  } else {
    ::unlink(f->tmp_path_.c_str());
    const int fd =
        ::open(f->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    // fchmod: the mode stands whatever the umask.
    if (fd >= 0 && (::fchmod(fd, 0600) != 0 || (f->file_ = ::fdopen(fd, "wb")) == nullptr)) {
      const int err = errno;
      ::close(fd);
      errno = err;
    }
  }
  if (f->file_ == nullptr) {
    int err = errno;
    f->tmp_path_.clear();
    return PermissionDenied("cannot write '" + path + "': " + std::strerror(err));
  }
  static constexpr size_t kBuffer = 1 << 20;
  std::setvbuf(f->file_, nullptr, _IOFBF, kBuffer);
  return f;
}

void AtomicFile::Write(const char* data, size_t n) {
  if (file_ != nullptr && n > 0) std::fwrite(data, 1, n, file_);
}

Status AtomicFile::Commit() {
  if (file_ == nullptr) return Internal("'" + path_ + "' is already closed");
  bool failed = std::ferror(file_) != 0 || std::fflush(file_) != 0;
  int err = errno;
  if (!failed && ::fsync(::fileno(file_)) != 0) {
    failed = true;
    err = errno;
  }
  std::fclose(file_);
  file_ = nullptr;
  if (failed) return Unavailable("cannot write '" + path_ + "': " + std::strerror(err));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return PermissionDenied("cannot create '" + path_ + "': " + std::strerror(errno));
  }
  committed_ = true;
  return Status::Ok();
}

StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      return NotFound("cannot open '" + path + "': it does not exist");
    if (err == EACCES || err == EPERM) return PermissionDenied("cannot open '" + path + "'");
    return Unavailable("cannot open '" + path + "': " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return Unavailable("cannot stat '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgument("'" + path + "' is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return ResourceExhausted("'" + path + "' is " + std::to_string(st.st_size) +
                             " bytes, over the limit of " + std::to_string(max_bytes));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (true) {
    if (got == out.size()) {
      // Grown since fstat? Read on, within the limit.
      if (out.size() >= max_bytes) {
        char probe;
        const ssize_t n = ::read(fd, &probe, 1);
        if (n == 0) break;
        if (n > 0) {
          return ResourceExhausted("'" + path + "' grew past the limit of " +
                                   std::to_string(max_bytes) + " bytes while being read");
        }
        if (errno == EINTR) continue;
        return Unavailable("cannot read '" + path + "': " + std::strerror(errno));
      }
      out.resize(std::min(max_bytes, std::max<size_t>(out.size() * 2, 4096)));
    }
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable("cannot read '" + path + "': " + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

void FileJobProgress::SetTempPath(std::string path) {
  std::lock_guard<std::mutex> lock(mu_);
  temp_path_ = std::move(path);
}

std::string FileJobProgress::TempPath() const {
  std::lock_guard<std::mutex> lock(mu_);
  return temp_path_;
}

std::string FileJobProgress::StoppedAccount(const std::string& out) const {
  return std::to_string(rows_done.load()) + " of " + std::to_string(rows_total.load()) +
         " transactions scored; nothing was written to " + out;
}

Status WriteFileAtomically(const std::string& path, const std::string& content,
                           AtomicFile::Access access) {
  VIGIL_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path, access));
  file->Write(content);
  return file->Commit();
}

}  // namespace vigil
