#include "journal/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "core/crc32c.h"
#include "core/log.h"
#include "core/mutex.h"

namespace vigil {
namespace {

constexpr char kMagic[8] = {'V', 'I', 'G', 'I', 'L', 'J', 'N', 'L'};
constexpr uint32_t kVersion = 1;
constexpr size_t kSegmentHeaderBytes = 32;
constexpr size_t kRecordHeaderBytes = 24;
constexpr std::string_view kSuffix = ".jnl";
// A Reader reads a segment this many bytes at a time (more for a larger record).
constexpr size_t kReadChunk = size_t{1} << 20;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Put32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }  // x86-64: little-endian
void Put64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t Get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " '" + path + "': " + std::strerror(errno);
}

std::string SegmentName(uint64_t first_offset) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(first_offset));
  return std::string(name) + std::string(kSuffix);
}

// The first offset a segment file's name gives, or 0 when the name is not a segment's.
uint64_t ParseSegmentName(std::string_view name) {
  if (name.size() != 20 + kSuffix.size() || name.substr(20) != kSuffix) return 0;
  uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string EncodeSegmentHeader(uint64_t first_offset, int64_t created_us) {
  std::string h(kSegmentHeaderBytes, '\0');
  std::memcpy(h.data(), kMagic, 8);
  Put32(h.data() + 8, kVersion);
  Put64(h.data() + 16, first_offset);
  Put64(h.data() + 24, static_cast<uint64_t>(created_us));
  Put32(h.data() + 12, MaskCrc(Crc32c(std::string_view(h.data() + 16, 16))));
  return h;
}

bool DecodeSegmentHeader(std::string_view h, uint64_t* first_offset, int64_t* created_us) {
  if (h.size() < kSegmentHeaderBytes || std::memcmp(h.data(), kMagic, 8) != 0 ||
      Get32(h.data() + 8) != kVersion ||
      UnmaskCrc(Get32(h.data() + 12)) != Crc32c(h.substr(16, 16))) {
    return false;
  }
  *first_offset = Get64(h.data() + 16);
  *created_us = static_cast<int64_t>(Get64(h.data() + 24));
  return true;
}

// The checksum of a record: its header after the CRC field, continued over the payload.
uint32_t RecordCrc(const char* header_rest, std::string_view payload) {
  return Crc32c(payload, Crc32c(std::string_view(header_rest, kRecordHeaderBytes - 4)));
}

enum class Parsed { kOk, kNeedMore, kBad };

// Parses the record at the start of [p, p + avail): kOk with `entry` and `size` set; kNeedMore
// when its header or payload runs past `avail`; kBad when it fails its checksum or its offset is
// below min_offset. Its length is not held to max_record_bytes: that bounds what Append takes,
// and a record written under a higher limit is still a record (the checksum decides).
Parsed ParseRecord(const char* p, size_t avail, uint64_t min_offset, JournalEntry* entry,
                   size_t* size) {
  if (avail < kRecordHeaderBytes) return Parsed::kNeedMore;
  const uint32_t length = Get32(p + 4);
  if (avail - kRecordHeaderBytes < length) return Parsed::kNeedMore;
  const std::string_view payload(p + kRecordHeaderBytes, length);
  if (UnmaskCrc(Get32(p)) != RecordCrc(p + 4, payload)) return Parsed::kBad;
  const uint64_t offset = Get64(p + 8);
  if (offset < min_offset) return Parsed::kBad;
  entry->offset = offset;
  entry->time_us = static_cast<int64_t>(Get64(p + 16));
  entry->payload = payload;
  *size = kRecordHeaderBytes + length;
  return Parsed::kOk;
}

// A segment file as the journal knows it.
struct Segment {
  uint64_t first_offset = 0;
  int64_t created_us = 0;
  std::string path;
  uint64_t size = 0;  // bytes written and readable (the newest one's grows)
};

class FileJournal;

// Reads one segment's bytes through a buffer of pread chunks.
class SegmentBytes {
 public:
  ~SegmentBytes() { Close(); }
  Status Open(const std::string& path) {
    Close();
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Unavailable(Errno("journal: cannot open segment", path));
    path_ = path;
    buf_.clear();
    buf_start_ = 0;
    return Status::Ok();
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool is_open() const { return fd_ >= 0; }
  // Makes bytes [pos, pos + n) available (n clipped at `end`); returns a pointer to pos and sets
  // *avail to the bytes available from there.
  StatusOr<const char*> At(uint64_t pos, size_t n, uint64_t end, size_t* avail) {
    const uint64_t want_end = std::min<uint64_t>(end, pos + n);
    if (pos < buf_start_ || want_end > buf_start_ + buf_.size()) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(end - pos, std::max(n, kReadChunk)));
      buf_.resize(len);
      size_t done = 0;
      while (done < len) {
        const ssize_t r = ::pread(fd_, buf_.data() + done, len - done,
                                  static_cast<off_t>(pos + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return Unavailable(Errno("journal: cannot read segment", path_));
        if (r == 0) break;  // shorter than the journal believed: treated as the end
        done += static_cast<size_t>(r);
      }
      buf_.resize(done);
      buf_start_ = pos;
    }
    const uint64_t have_end = buf_start_ + buf_.size();
    *avail = pos >= have_end ? 0 : static_cast<size_t>(have_end - pos);
    return buf_.data() + (pos - buf_start_);
  }

 private:
  int fd_ = -1;
  std::string path_;
  std::string buf_;
  uint64_t buf_start_ = 0;
};

// Finds the next valid record at or after `pos` in bytes [pos, end) of a segment: its position,
// or `end` when there is none. `min_offset` is one past the last good record's offset.
StatusOr<uint64_t> Resync(SegmentBytes* bytes, uint64_t pos, uint64_t end, uint64_t min_offset) {
  for (uint64_t q = pos; q + kRecordHeaderBytes <= end; ++q) {
    size_t avail = 0;
    VIGIL_ASSIGN_OR_RETURN(const char* p, bytes->At(q, kRecordHeaderBytes, end, &avail));
    if (avail < kRecordHeaderBytes) break;
    const uint32_t length = Get32(p + 4);
    const uint64_t offset = Get64(p + 8);
    // Every skipped record took at least a header's bytes: the next one's offset is bounded.
    if (q + kRecordHeaderBytes + length > end || offset < min_offset ||
        offset > min_offset + (q - pos) / kRecordHeaderBytes + 1) {
      continue;
    }
    VIGIL_ASSIGN_OR_RETURN(p, bytes->At(q, kRecordHeaderBytes + length, end, &avail));
    JournalEntry e;
    size_t size = 0;
    if (ParseRecord(p, avail, min_offset, &e, &size) == Parsed::kOk) return q;
  }
  return end;
}

class FileJournal final : public Journal {
 public:
  explicit FileJournal(const JournalOptions& options) : options_(options) {}
  ~FileJournal() override;

  Status Init(JournalRecovery* recovery) NO_THREAD_SAFETY_ANALYSIS;

  StatusOr<uint64_t> Append(std::span<const std::string_view> records, int64_t time_us) override;
  Status Sync() override;
  void AfterSync(uint64_t offset, std::function<void(const Status&)> done) override;
  StatusOr<std::unique_ptr<Reader>> Read(uint64_t from) override;
  StatusOr<size_t> DropBefore(uint64_t offset) override;
  StatusOr<size_t> DropOlderThan(int64_t cutoff_us, uint64_t keep_from) override;
  uint64_t first_offset() const override {
    MutexLock lock(&mu_);
    return segments_.size() > 1 || segments_.back().size > kSegmentHeaderBytes
               ? segments_.front().first_offset
               : next_offset_;
  }
  uint64_t next_offset() const override {
    MutexLock lock(&mu_);
    return next_offset_;
  }
  int64_t first_segment_time_us() const override {
    MutexLock lock(&mu_);
    return segments_.front().created_us;
  }
  uint64_t size_bytes() const override {
    MutexLock lock(&mu_);
    uint64_t total = 0;
    for (const Segment& s : segments_) total += s.size;
    return total;
  }
  size_t segments() const override {
    MutexLock lock(&mu_);
    return segments_.size();
  }
  std::vector<uint64_t> segment_first_offsets() const override {
    MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    out.reserve(segments_.size());
    for (const Segment& s : segments_) out.push_back(s.first_offset);
    return out;
  }

  // For readers: the segment holding `offset` or the first after it (its index in the
  // snapshot returned), with its readable size; false when there is none.
  bool FindSegment(uint64_t offset, Segment* out, bool* newest) const EXCLUDES(mu_);
  bool NextSegment(uint64_t after_first, Segment* out, bool* newest) const EXCLUDES(mu_);
  uint64_t VisibleSize(uint64_t first_offset) const EXCLUDES(mu_);

 private:
  Status RecoverNewest(JournalRecovery* recovery) REQUIRES(mu_);
  Status CreateSegment(uint64_t first_offset, int64_t created_us) REQUIRES(mu_);
  void SyncLoop();
  // Syncs and closes the files of the segments closed since the last sync.
  void CloseClosedSegments();

  const JournalOptions options_;
  int lock_fd_ = -1;
  int dir_fd_ = -1;

  mutable Mutex mu_;
  std::vector<Segment> segments_ GUARDED_BY(mu_);  // oldest first; never empty after Init
  int fd_ GUARDED_BY(mu_) = -1;                    // the newest segment, for writing
  uint64_t next_offset_ GUARDED_BY(mu_) = 1;
  std::string scratch_ GUARDED_BY(mu_);
  // Closed segments not yet fdatasynced (their fds, kept open until they are), and whether a
  // segment file was created since the folder was last synced.
  std::vector<int> unsynced_fds_ GUARDED_BY(mu_);
  bool dir_unsynced_ GUARDED_BY(mu_) = false;
  Status sync_failure_ GUARDED_BY(mu_);  // sticky: after a failed fdatasync nothing is trusted

  Mutex sync_mu_;                       // held by the one thread syncing (the group's leader)
  std::atomic<uint64_t> synced_{0};     // every offset <= synced_ survives a power loss

  Mutex after_mu_;
  CondVar after_cv_;
  std::deque<std::pair<uint64_t, std::function<void(const Status&)>>> after_
      GUARDED_BY(after_mu_);
  bool after_stop_ GUARDED_BY(after_mu_) = false;
  std::thread syncer_;  // started by the first AfterSync
  std::once_flag syncer_once_;
};

FileJournal::~FileJournal() {
  if (syncer_.joinable()) {
    {
      MutexLock lock(&after_mu_);
      after_stop_ = true;
    }
    after_cv_.SignalAll();
    syncer_.join();
  }
  MutexLock lock(&mu_);
  for (int fd : unsynced_fds_) ::close(fd);
  if (fd_ >= 0) ::close(fd_);
  if (dir_fd_ >= 0) ::close(dir_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Status FileJournal::Init(JournalRecovery* recovery) {
  const std::string& dir = options_.dir;
  if (dir.empty()) return InvalidArgument("journal: the folder is empty");
  if (options_.segment_bytes < 4096) {
    return InvalidArgument("journal: segment_bytes must be at least 4096");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return errno == EACCES ? PermissionDenied(Errno("journal: cannot create folder", dir))
                           : InvalidArgument(Errno("journal: cannot create folder", dir));
  }
  dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) return InvalidArgument(Errno("journal: not a folder", dir));
  const std::string lock_path = dir + "/LOCK";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return PermissionDenied(Errno("journal: cannot open", lock_path));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Unavailable("journal '" + dir +
                       "' is in use by another process (one process per data folder)");
  }

  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Unavailable(Errno("journal: cannot list", dir));
  std::vector<uint64_t> firsts;
  while (dirent* e = ::readdir(d)) {
    if (uint64_t first = ParseSegmentName(e->d_name); first != 0) firsts.push_back(first);
  }
  ::closedir(d);
  std::sort(firsts.begin(), firsts.end());

  MutexLock lock(&mu_);
  uint64_t removed_first = 0;  // of a newest segment removed below
  for (uint64_t first : firsts) {
    Segment s;
    s.first_offset = first;
    s.path = dir + "/" + SegmentName(first);
    const int fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Unavailable(Errno("journal: cannot open segment", s.path));
    struct stat st {};
    char header[kSegmentHeaderBytes];
    const ssize_t got = ::fstat(fd, &st) == 0 ? ::pread(fd, header, sizeof header, 0) : -1;
    ::close(fd);
    if (got < 0) return Unavailable(Errno("journal: cannot read segment", s.path));
    uint64_t named = 0;
    const bool valid = DecodeSegmentHeader(std::string_view(header, static_cast<size_t>(got)),
                                           &named, &s.created_us) &&
                       named == first;
    if (!valid) {
      // Only the newest segment can hold a header cut short by a crash while it was created.
      if (first == firsts.back() && st.st_size <= static_cast<off_t>(kSegmentHeaderBytes)) {
        Log(LogLevel::kWarn, "journal: removed a segment whose creation a crash cut short",
            {{"segment", s.path}});
        if (::unlink(s.path.c_str()) != 0) {
          return Unavailable(Errno("journal: cannot remove", s.path));
        }
        removed_first = first;
        continue;
      }
      return InvalidArgument("journal: '" + s.path + "' is not a Vigil journal segment");
    }
    s.size = static_cast<uint64_t>(st.st_size);
    segments_.push_back(std::move(s));
  }
  if (segments_.empty()) {
    // Offsets never start again: after a removed segment, the journal goes on where it began.
    const uint64_t first = removed_first != 0 ? removed_first : 1;
    VIGIL_RETURN_IF_ERROR(CreateSegment(first, NowMicros()));
    next_offset_ = first;
    if (recovery != nullptr) *recovery = {};
    return Status::Ok();
  }
  return RecoverNewest(recovery);
}

Status FileJournal::RecoverNewest(JournalRecovery* recovery) {
  Segment& s = segments_.back();
  SegmentBytes bytes;
  VIGIL_RETURN_IF_ERROR(bytes.Open(s.path));
  JournalRecovery found;
  uint64_t pos = kSegmentHeaderBytes;
  uint64_t next = s.first_offset;
  const uint64_t end = s.size;
  while (pos < end) {
    size_t avail = 0;
    VIGIL_ASSIGN_OR_RETURN(const char* p, bytes.At(pos, kRecordHeaderBytes, end, &avail));
    size_t size = 0;
    JournalEntry e;
    Parsed r = ParseRecord(p, avail, next, &e, &size);
    if (r == Parsed::kNeedMore && avail >= kRecordHeaderBytes) {
      VIGIL_ASSIGN_OR_RETURN(p, bytes.At(pos, kRecordHeaderBytes + Get32(p + 4), end, &avail));
      r = ParseRecord(p, avail, next, &e, &size);
    }
    if (r == Parsed::kOk) {
      ++found.records;
      next = e.offset + 1;
      pos += size;
      continue;
    }
    VIGIL_ASSIGN_OR_RETURN(uint64_t q, Resync(&bytes, pos + 1, end, next));
    if (q == end) break;  // nothing valid after: a torn tail
    ++found.skipped_records;
    Log(LogLevel::kWarn, "journal: skipped a damaged record",
        {{"segment", s.path}, {"byte", pos}, {"bytes", q - pos}});
    pos = q;
  }
  bytes.Close();
  if (pos < end) {
    found.torn_tail_bytes = end - pos;
    Log(LogLevel::kWarn, "journal: cut off an incomplete record at the end (a write a crash cut short)",
        {{"segment", s.path}, {"byte", pos}, {"bytes", end - pos}});
  }
  fd_ = ::open(s.path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) return PermissionDenied(Errno("journal: cannot open for writing", s.path));
  if (pos < end && ::ftruncate(fd_, static_cast<off_t>(pos)) != 0) {
    return Unavailable(Errno("journal: cannot cut off the incomplete tail of", s.path));
  }
  s.size = pos;
  next_offset_ = next;
  synced_.store(0);
  if (recovery != nullptr) *recovery = found;
  return Status::Ok();
}

Status FileJournal::CreateSegment(uint64_t first_offset, int64_t created_us) {
  Segment s;
  s.first_offset = first_offset;
  s.created_us = created_us;
  s.path = options_.dir + "/" + SegmentName(first_offset);
  const int fd = ::open(s.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(Errno("journal: cannot create segment", s.path));
  const std::string header = EncodeSegmentHeader(first_offset, created_us);
  if (::pwrite(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size())) {
    Status st = Unavailable(Errno("journal: cannot write segment header", s.path));
    ::close(fd);
    ::unlink(s.path.c_str());
    return st;
  }
  s.size = kSegmentHeaderBytes;
  if (fd_ >= 0) unsynced_fds_.push_back(fd_);
  fd_ = fd;
  segments_.push_back(std::move(s));
  dir_unsynced_ = true;
  return Status::Ok();
}

StatusOr<uint64_t> FileJournal::Append(std::span<const std::string_view> records,
                                       int64_t time_us) {
  if (records.empty()) return next_offset();
  if (time_us == 0) time_us = NowMicros();
  size_t total = 0;
  for (std::string_view r : records) {
    if (r.size() > options_.max_record_bytes) {
      return InvalidArgument("journal: a record of " + std::to_string(r.size()) +
                             " bytes is over the limit of " +
                             std::to_string(options_.max_record_bytes));
    }
    total += kRecordHeaderBytes + r.size();
  }
  // The payloads' checksums and the frame are made outside the lock; the offsets, and the part
  // of the checksum that covers the header, under it.
  std::string buf(total, '\0');
  std::vector<uint32_t> payload_crcs(records.size());
  {
    char* p = buf.data();
    for (size_t i = 0; i < records.size(); ++i) {
      Put32(p + 4, static_cast<uint32_t>(records[i].size()));
      Put64(p + 16, static_cast<uint64_t>(time_us));
      std::memcpy(p + kRecordHeaderBytes, records[i].data(), records[i].size());
      p += kRecordHeaderBytes + records[i].size();
    }
  }
  ReleasableMutexLock lock(&mu_);
  if (!sync_failure_.ok()) return sync_failure_;
  bool rolled = false;
  if (segments_.back().size > kSegmentHeaderBytes &&
      segments_.back().size + total > options_.segment_bytes) {
    VIGIL_RETURN_IF_ERROR(CreateSegment(next_offset_, time_us));
    rolled = true;
  }
  const uint64_t first = next_offset_;
  {
    char* p = buf.data();
    for (size_t i = 0; i < records.size(); ++i) {
      Put64(p + 8, first + i);
      const std::string_view payload(p + kRecordHeaderBytes, records[i].size());
      Put32(p, MaskCrc(RecordCrc(p + 4, payload)));
      p += kRecordHeaderBytes + records[i].size();
    }
  }
  Segment& s = segments_.back();
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t w = ::pwrite(fd_, buf.data() + done, buf.size() - done,
                               static_cast<off_t>(s.size + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const Status failure = Unavailable(Errno("journal: cannot write to", s.path));
      // Cut off what was written of these records, so that the next append follows the last
      // whole record. Should that fail too, recovery at the next start finds a torn tail.
      if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(s.size)) != 0) {
        Log(LogLevel::kError, "journal: cannot cut off a partial write",
            {{"segment", s.path}, {"error", std::strerror(errno)}});
      }
      return failure;
    }
    done += static_cast<size_t>(w);
  }
  s.size += buf.size();
  next_offset_ = first + records.size();
  lock.Release();
  // The closed segment is synced and its file closed on the sync thread, whatever the caller's
  // durability: a journal that is never asked to sync must not keep every closed segment open
  // (nor the space of those retention drops).
  if (rolled) AfterSync(first - 1, [](const Status&) {});
  return first;
}

Status FileJournal::Sync() {
  uint64_t target;
  {
    MutexLock lock(&mu_);
    target = next_offset_ - 1;
  }
  MutexLock leader(&sync_mu_);
  if (synced_.load() >= target) return Status::Ok();  // a sync by the group's leader covered it
  std::vector<int> fds;
  int fd;
  bool dir;
  {
    MutexLock lock(&mu_);
    if (!sync_failure_.ok()) return sync_failure_;
    target = next_offset_ - 1;
    fds = std::move(unsynced_fds_);
    unsynced_fds_.clear();
    fd = ::dup(fd_);  // a roll meanwhile may hand fd_ to unsynced_fds_; the dup stays valid
    dir = dir_unsynced_;
    dir_unsynced_ = false;
  }
  Status s = Status::Ok();
  fds.push_back(fd);
  for (int f : fds) {
    if (f < 0 || ::fdatasync(f) != 0) {
      if (s.ok()) s = Unavailable(Errno("journal: cannot sync a segment in", options_.dir));
    }
    if (f >= 0) ::close(f);
  }
  if (dir && ::fsync(dir_fd_) != 0 && s.ok()) {
    s = Unavailable(Errno("journal: cannot sync folder", options_.dir));
  }
  if (!s.ok()) {
    // After a failed fdatasync the kernel may have dropped the dirty pages: what the journal
    // holds is no longer known to be on disk, so it takes no more writes until reopened.
    Log(LogLevel::kError, "journal: sync failed; no more appends until restart",
        {{"error", s.message()}});
    MutexLock lock(&mu_);
    sync_failure_ = s;
    return s;
  }
  synced_.store(target);
  return s;
}

void FileJournal::AfterSync(uint64_t offset, std::function<void(const Status&)> done) {
  if (synced_.load() >= offset) return done(Status::Ok());
  std::call_once(syncer_once_, [this] { syncer_ = std::thread([this] { SyncLoop(); }); });
  {
    MutexLock lock(&after_mu_);
    after_.emplace_back(offset, std::move(done));
  }
  after_cv_.Signal();
}

void FileJournal::SyncLoop() {
  for (;;) {
    std::deque<std::pair<uint64_t, std::function<void(const Status&)>>> batch;
    {
      MutexLock lock(&after_mu_);
      while (after_.empty() && !after_stop_) after_cv_.Wait(&after_mu_);
      if (after_.empty()) return;
      batch.swap(after_);
    }
    // One fdatasync covers every record appended before it began, so all of the batch.
    const Status s = Sync();
    for (auto& [offset, done] : batch) done(s);
    CloseClosedSegments();
  }
}

void FileJournal::CloseClosedSegments() {
  // Under the leader's lock, so that no Sync can count these segments synced while they are
  // being synced here.
  MutexLock leader(&sync_mu_);
  std::vector<int> fds;
  {
    MutexLock lock(&mu_);
    fds.swap(unsynced_fds_);
  }
  for (int f : fds) {
    if (::fdatasync(f) != 0) {
      Log(LogLevel::kError, "journal: cannot sync a closed segment",
          {{"folder", options_.dir}, {"error", std::strerror(errno)}});
      MutexLock lock(&mu_);
      sync_failure_ = Unavailable(Errno("journal: cannot sync a segment in", options_.dir));
    }
    ::close(f);
  }
}

bool FileJournal::FindSegment(uint64_t offset, Segment* out, bool* newest) const {
  MutexLock lock(&mu_);
  // The last segment whose first offset is <= offset, else the first.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](uint64_t o, const Segment& s) { return o < s.first_offset; });
  if (it != segments_.begin()) --it;
  *out = *it;
  *newest = it + 1 == segments_.end();
  return true;
}

bool FileJournal::NextSegment(uint64_t after_first, Segment* out, bool* newest) const {
  MutexLock lock(&mu_);
  auto it = std::upper_bound(segments_.begin(), segments_.end(), after_first,
                             [](uint64_t o, const Segment& s) { return o < s.first_offset; });
  if (it == segments_.end()) return false;
  *out = *it;
  *newest = it + 1 == segments_.end();
  return true;
}

uint64_t FileJournal::VisibleSize(uint64_t first_offset) const {
  MutexLock lock(&mu_);
  for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
    if (it->first_offset == first_offset) return it->size;
  }
  return 0;
}

class FileReader final : public Journal::Reader {
 public:
  FileReader(const FileJournal* journal, uint64_t from) : journal_(journal), from_(from) {}

  StatusOr<bool> Next(JournalEntry* entry) override {
    for (;;) {
      if (!bytes_.is_open()) {
        bool newest = false;
        if (!journal_->FindSegment(std::max(from_, min_offset_), &segment_, &newest)) return false;
        VIGIL_RETURN_IF_ERROR(bytes_.Open(segment_.path));
        pos_ = kSegmentHeaderBytes;
        min_offset_ = std::max(min_offset_, segment_.first_offset);
      }
      const uint64_t end = journal_->VisibleSize(segment_.first_offset);
      if (pos_ >= end) {
        bool newest = false;
        Segment next;
        if (!journal_->NextSegment(segment_.first_offset, &next, &newest)) return false;
        // Records may have gone into this segment since `end` was read, just before the next one
        // began: now that it has, this one's size is final.
        if (journal_->VisibleSize(segment_.first_offset) > pos_) continue;
        segment_ = next;
        VIGIL_RETURN_IF_ERROR(bytes_.Open(segment_.path));
        pos_ = kSegmentHeaderBytes;
        min_offset_ = std::max(min_offset_, segment_.first_offset);
        continue;
      }
      size_t avail = 0;
      VIGIL_ASSIGN_OR_RETURN(const char* p, bytes_.At(pos_, kRecordHeaderBytes, end, &avail));
      size_t size = 0;
      Parsed r = ParseRecord(p, avail, min_offset_, entry, &size);
      if (r == Parsed::kNeedMore && avail >= kRecordHeaderBytes) {
        VIGIL_ASSIGN_OR_RETURN(p, bytes_.At(pos_, kRecordHeaderBytes + Get32(p + 4), end, &avail));
        r = ParseRecord(p, avail, min_offset_, entry, &size);
      }
      if (r == Parsed::kOk) {
        pos_ += size;
        min_offset_ = entry->offset + 1;
        if (entry->offset < from_) continue;
        return true;
      }
      // A whole record that fails its checksum, or one running past what was written (only
      // damage can do that: Open cut off the torn tail). Skip to the next valid one.
      VIGIL_ASSIGN_OR_RETURN(uint64_t q, Resync(&bytes_, pos_ + 1, end, min_offset_));
      ++skipped_;
      Log(LogLevel::kWarn, "journal: skipped a damaged record",
          {{"segment", segment_.path}, {"byte", pos_}, {"bytes", q - pos_}});
      pos_ = q;
    }
  }
  uint64_t skipped() const override { return skipped_; }

 private:
  const FileJournal* journal_;
  const uint64_t from_;
  uint64_t min_offset_ = 0;  // one past the last record returned or passed
  Segment segment_;
  SegmentBytes bytes_;
  uint64_t pos_ = 0;
  uint64_t skipped_ = 0;
};

StatusOr<std::unique_ptr<Journal::Reader>> FileJournal::Read(uint64_t from) {
  return std::unique_ptr<Reader>(std::make_unique<FileReader>(this, from));
}

StatusOr<size_t> FileJournal::DropBefore(uint64_t offset) {
  MutexLock lock(&mu_);
  size_t dropped = 0;
  while (segments_.size() > 1 && segments_[1].first_offset <= offset) {
    if (::unlink(segments_.front().path.c_str()) != 0 && errno != ENOENT) {
      return Unavailable(Errno("journal: cannot remove", segments_.front().path));
    }
    segments_.erase(segments_.begin());
    ++dropped;
  }
  return dropped;
}

StatusOr<size_t> FileJournal::DropOlderThan(int64_t cutoff_us, uint64_t keep_from) {
  uint64_t before = 0;
  {
    MutexLock lock(&mu_);
    for (size_t i = 1; i < segments_.size() && segments_[i].created_us <= cutoff_us &&
                       segments_[i].first_offset <= keep_from;
         ++i) {
      before = segments_[i].first_offset;
    }
  }
  return before == 0 ? StatusOr<size_t>(size_t{0}) : DropBefore(before);
}

}  // namespace

StatusOr<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& options,
                                                 JournalRecovery* recovery) {
  auto journal = std::make_unique<FileJournal>(options);
  VIGIL_RETURN_IF_ERROR(journal->Init(recovery));
  return std::unique_ptr<Journal>(std::move(journal));
}

}  // namespace vigil
