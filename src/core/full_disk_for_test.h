// For tests: a real disk that fills up. A small tmpfs is mounted on a folder (the tests run as
// root, on CI and in fresh-machine-check's chroot alike), and Fill() takes all of its free space
// with a filler file, so that the next write fails with ENOSPC exactly as on a full disk; Free()
// gives the space back. Unmounted (lazily, so a file still open cannot keep it) when destroyed.
#ifndef VIGIL_CORE_FULL_DISK_FOR_TEST_H_
#define VIGIL_CORE_FULL_DISK_FOR_TEST_H_

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace vigil {

class FullDiskForTest {
 public:
  // Mounts a tmpfs of `bytes` on `dir` (created if missing). mounted() says whether it worked;
  // error() why not.
  FullDiskForTest(const std::string& dir, size_t bytes) : dir_(dir) {
    std::filesystem::create_directories(dir);
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::string("mount -t tmpfs on '") + dir + "' failed: " + std::strerror(errno) +
               " (these tests need root)";
    }
  }
  ~FullDiskForTest() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  FullDiskForTest(const FullDiskForTest&) = delete;
  FullDiskForTest& operator=(const FullDiskForTest&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

  // Writes a filler file until the tmpfs is full.
  void Fill() {
    const std::string path = dir_ + "/filler";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const std::vector<char> block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    while (::write(fd, block.data(), 1) > 0) {  // the last partial page
    }
    ::close(fd);
  }
  void Free() { std::filesystem::remove(dir_ + "/filler"); }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace vigil

#endif  // VIGIL_CORE_FULL_DISK_FOR_TEST_H_
