// Files written whole or not at all, and small file helpers.
#ifndef VIGIL_CORE_FILE_UTIL_H_
#define VIGIL_CORE_FILE_UTIL_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "vigil/status.h"

namespace vigil {

// An AtomicFile writes to a temporary file beside `path` and renames it over `path` on Commit().
// If it is destroyed without a successful Commit(), the temporary file is removed, so a failed
// run leaves no partial output behind. Not thread-safe.
class AtomicFile {
 public:
  AtomicFile() = default;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  // Who may read the file: kShared as the umask allows; kOwnerOnly (secrets) mode 0600, the
  // temporary file made afresh (never one planted beside it, nor a link).
  enum class Access { kShared, kOwnerOnly };

  // Creates the temporary file; fails with a clear message if the folder is not writable.
  static StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path,
                                                      Access access = Access::kShared);

  // Buffered writes. Errors are sticky and reported by Commit().
  void Write(const char* data, size_t n);
  void Write(std::string_view s) { Write(s.data(), s.size()); }
  std::FILE* stream() { return file_; }
  // The temporary file, for a handler that must remove it when the process is being killed.
  const std::string& temp_path() const { return tmp_path_; }

  // Flushes, fsyncs and renames the temporary file to `path`.
  Status Commit();

 private:
  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// How far a job that writes one file through an AtomicFile has got, read by another thread (the
// one that takes a terminating signal) to remove the temporary file and say what was done.
struct FileJobProgress {
  // The temporary file while it exists ("" before and after). Thread-safe.
  void SetTempPath(std::string path);
  std::string TempPath() const;
  std::atomic<uint64_t> rows_done{0};
  std::atomic<uint64_t> rows_total{0};  // the input's, once read
  std::atomic<bool> committed{false};   // the output is in place: a signal now has nothing to undo
  // "D of T transactions scored; nothing was written to OUT": a stopped job's account.
  std::string StoppedAccount(const std::string& out) const;

 private:
  mutable std::mutex mu_;
  std::string temp_path_;
};

// Reads a whole regular file into a string. Refuses, without reading a byte, anything that is
// not a regular file (a folder, a FIFO, a device such as /dev/zero, a socket): InvalidArgument;
// and a file larger than max_bytes: ResourceExhausted. Never blocks on a FIFO (opened
// non-blocking, then refused). A file that grows while it is read is read up to max_bytes and
// refused beyond. NotFound when it does not exist, PermissionDenied when it cannot be opened.
StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes = SIZE_MAX);
// Writes a whole file atomically.
Status WriteFileAtomically(const std::string& path, const std::string& content,
                           AtomicFile::Access access = AtomicFile::Access::kShared);

}  // namespace vigil

#endif  // VIGIL_CORE_FILE_UTIL_H_
