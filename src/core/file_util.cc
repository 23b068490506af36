#include "core/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace vigil {

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  if (path.empty()) return InvalidArgument("output path is empty");
  auto f = std::make_unique<AtomicFile>();
  f->path_ = path;
  f->tmp_path_ = path + ".tmp." + std::to_string(::getpid());
  f->file_ = std::fopen(f->tmp_path_.c_str(), "wb");
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

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Unavailable("cannot read '" + path + "'");
  return ss.str();
}

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  VIGIL_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  file->Write(content);
  return file->Commit();
}

}  // namespace vigil
