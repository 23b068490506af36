#include "auth/audit_log.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/background_thread.h"
#include "core/file_util.h"
#include "core/json_text.h"
#include "vigil/time.h"

namespace vigil::auth {
namespace {

constexpr size_t kMaxQueued = 10000;
constexpr size_t kMaxField = 512;  // longer fields are cut: an entry stays one short line
const std::string kGenesis(64, '0');

std::string Hex(const unsigned char* bytes, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes, n);
  out.pop_back();
  return out;
}

std::string ChainHash(const std::string& prev, std::string_view body) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(prev.data()), prev.size());
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(body.data()), body.size());
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, out);
  return Hex(out, sizeof out);
}

Status Errno(const std::string& what) {
  return Unavailable("the audit log: " + what + ": " + std::strerror(errno));
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first `max` bytes of `v` as valid UTF-8: cut at a character's boundary, and each byte
// that starts no valid character replaced by U+FFFD, so that every entry parses as JSON (a
// name given on the command line may hold any bytes).
std::string Utf8Prefix(std::string_view v, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < v.size()) {
    const auto c = static_cast<unsigned char>(v[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= v.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(v[i + k]) >> 6) == 2;
    if (ok && n == 2) ok = c >= 0xC2;  // no overlong forms
    if (ok && n == 3) {
      const auto c1 = static_cast<unsigned char>(v[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
    }
    if (ok && n == 4) {
      const auto c1 = static_cast<unsigned char>(v[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    const std::string_view piece = ok ? v.substr(i, n) : std::string_view("\xEF\xBF\xBD");
    if (out.size() + piece.size() > max) break;
    out += piece;
    i += ok ? n : 1;
  }
  return out;
}

void Field(std::string* b, const char* key, std::string_view v) {
  *b += ",\"";
  *b += key;
  *b += "\":";
  AppendJsonString(b, Utf8Prefix(v, kMaxField));
}

// The body of an entry, without its hash: {"seq", "ts", fields..., "prev"}.
std::string Body(uint64_t seq, int64_t ts_us, const AuditEvent& e, const std::string& prev) {
  std::string b = "{\"seq\":" + std::to_string(seq) + ",\"ts\":";
  AppendJsonString(&b, FormatRfc3339Micros(ts_us));
  Field(&b, "actor", e.actor.empty() ? "-" : e.actor);
  Field(&b, "action", e.action);
  Field(&b, "target", e.target);
  Field(&b, "outcome", e.outcome);
  Field(&b, "source", e.source.empty() ? "local" : e.source);
  Field(&b, "detail", e.detail);
  Field(&b, "prev", prev);
  return b + "}";
}

// An entry's line split into its body (as hashed) and its hash; false when it is not one.
bool SplitLine(std::string_view line, std::string* body, std::string* hash) {
  constexpr std::string_view kKey = ",\"hash\":\"";
  const size_t at = line.rfind(kKey);
  if (at == std::string_view::npos || line.size() != at + kKey.size() + 64 + 2 ||
      line.substr(line.size() - 2) != "\"}") {
    return false;
  }
  *body = std::string(line.substr(0, at)) + "}";
  *hash = std::string(line.substr(at + kKey.size(), 64));
  return true;
}

struct Tail {
  uint64_t seq = 0;
  std::string hash = kGenesis;
};

// The last entry of the open log `fd`: its sequence number and hash (the genesis when empty).
StatusOr<Tail> ReadTail(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Errno("stat");
  Tail t;
  if (st.st_size == 0) return t;
  const off_t want = std::min<off_t>(st.st_size, 64 * 1024);
  std::string buf(static_cast<size_t>(want), '\0');
  if (::pread(fd, buf.data(), buf.size(), st.st_size - want) != want) return Errno("read");
  while (!buf.empty() && buf.back() == '\n') buf.pop_back();
  const size_t nl = buf.rfind('\n');
  const std::string line = nl == std::string::npos ? buf : buf.substr(nl + 1);
  std::string body;
  if (!SplitLine(line, &body, &t.hash)) {
    return Internal("the audit log's last entry is damaged: run `vigil audit verify`");
  }
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j["seq"].is_number_unsigned()) {
    return Internal("the audit log's last entry is damaged: run `vigil audit verify`");
  }
  t.seq = j["seq"].get<uint64_t>();
  return t;
}

struct Anchor {
  bool present = false;
  uint64_t seq = 0;
  std::string hash;
};

Anchor ReadAnchor(const std::string& dir) {
  Anchor a;
  std::ifstream in((std::filesystem::path(dir) / "audit.anchor").string());
  a.present = static_cast<bool>(in >> a.seq >> a.hash);
  return a;
}

// Appending to a log whose end no longer matches its anchor would anchor the damage: refused.
// (An anchor behind the end is a crash between the two writes, and fine.)
Status CheckAnchor(const std::string& dir, const Tail& tail) {
  const Anchor a = ReadAnchor(dir);
  const bool broken =
      a.present ? a.seq > tail.seq || (a.seq == tail.seq && a.hash != tail.hash) : tail.seq > 0;
  if (!broken) return Status::Ok();
  return Internal(
      "the audit log does not match its anchor (entries removed or altered): nothing more is "
      "appended until an operator has looked (`vigil audit verify`)");
}

}  // namespace

AuditLog::AuditLog(std::string dir)
    : dir_(std::move(dir)), path_((std::filesystem::path(dir_) / "audit.log").string()) {
  writer_ = std::thread([this] { WriterLoop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  const std::string path = (std::filesystem::path(data_dir) / "audit.log").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open");
  const bool ok = ::fchmod(fd, 0600) == 0;
  ::close(fd);
  if (!ok) return Errno("chmod");
  return std::unique_ptr<AuditLog>(new AuditLog(data_dir));
}

void AuditLog::Record(AuditEvent event) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued &&
        (event.action == "auth.failed" || event.action == "auth.denied")) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(event));
    ++queued_;
  }
  cv_.notify_one();
}

Status AuditLog::Flush() {
  std::unique_lock lock(mu_);
  const uint64_t target = queued_;
  cv_.notify_one();
  written_cv_.wait(lock, [&] { return written_ >= target || stop_; });
  return write_status_;
}

void AuditLog::WriterLoop() {
  BecomeBackgroundThread("vigil-audit");
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty() || dropped_ > 0; });
    if (queue_.empty() && dropped_ == 0 && stop_) return;
    std::vector<AuditEvent> batch(std::make_move_iterator(queue_.begin()),
                                  std::make_move_iterator(queue_.end()));
    queue_.clear();
    const uint64_t dropped = std::exchange(dropped_, 0);
    lock.unlock();
    Status st = Append(batch, dropped);
    lock.lock();
    write_status_ = st;
    written_ += batch.size();
    written_cv_.notify_all();
  }
}

Status AuditLog::Append(const std::vector<AuditEvent>& events, uint64_t dropped) {
  const int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open");
  // One chain across processes: `vigil keys` appends under the same lock.
  if (::flock(fd, LOCK_EX) != 0) {
    ::close(fd);
    return Errno("lock");
  }
  auto tail = ReadTail(fd);
  Status st = tail.status();
  if (st.ok()) st = CheckAnchor(dir_, *tail);
  std::string text;
  if (st.ok()) {
    std::vector<AuditEvent> all = events;
    if (dropped > 0) {
      all.push_back({"-", "auth.failed", "-", "denied", "-",
                     std::to_string(dropped) +
                         " failed authentications and refused calls not recorded one by one "
                         "(the log's queue was full)"});
    }
    const int64_t ts = NowMicros();
    for (const AuditEvent& e : all) {
      const std::string body = Body(++tail->seq, ts, e, tail->hash);
      tail->hash = ChainHash(tail->hash, body);
      text += body.substr(0, body.size() - 1) + ",\"hash\":\"" + tail->hash + "\"}\n";
    }
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::fdatasync(fd) != 0) {
      st = Errno("write");
    }
  }
  if (st.ok()) {
    // The anchor: the last entry, so that entries cut from the end are missed.
    const std::string anchor = (std::filesystem::path(dir_) / "audit.anchor").string();
    const std::string line = std::to_string(tail->seq) + " " + tail->hash + "\n";
    st = WriteFileAtomically(anchor, line, AtomicFile::Access::kOwnerOnly);
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return st;
}

StatusOr<std::vector<std::string>> AuditLog::Read(uint64_t after, size_t limit) const {
  std::ifstream in(path_);
  if (!in) return Unavailable("the audit log cannot be read");
  std::vector<std::string> out;
  std::string line;
  while (out.size() < limit && std::getline(in, line)) {
    // "{"seq":N,..." : the number is at a fixed place. A line still being written (no hash
    // yet) is left for the next read.
    std::string body, hash;
    if (!line.starts_with("{\"seq\":") || !SplitLine(line, &body, &hash)) continue;
    const uint64_t seq = std::strtoull(line.c_str() + 7, nullptr, 10);
    if (seq > after) out.push_back(line);
  }
  return out;
}

StatusOr<AuditVerification> AuditLog::Verify(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "audit.log").string();
  std::ifstream in(path);
  if (!in) return NotFound("no audit log in the data dir");
  AuditVerification v;
  const Anchor anchor = ReadAnchor(data_dir);
  std::string prev = kGenesis, line, body, hash, hash_at_anchor;
  uint64_t expected = 1;
  auto broken = [&](const std::string& why) {
    v.intact = false;
    v.problem = "entry " + std::to_string(expected) + ": " + why;
    return v;
  };
  while (std::getline(in, line)) {
    if (!SplitLine(line, &body, &hash)) return broken("not an audit entry (damaged)");
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object() || !j["seq"].is_number_unsigned() || !j["prev"].is_string()) {
      return broken("not an audit entry (damaged)");
    }
    const uint64_t seq = j["seq"].get<uint64_t>();
    if (seq != expected) {
      return broken(seq > expected ? "missing (the next entry is " + std::to_string(seq) + ")"
                                   : "out of order (found " + std::to_string(seq) + ")");
    }
    if (j["prev"].get<std::string>() != prev) return broken("does not follow the entry before it");
    if (ChainHash(prev, body) != hash) return broken("altered (its hash does not match)");
    prev = hash;
    if (seq == anchor.seq) hash_at_anchor = hash;
    ++v.entries;
    ++expected;
  }
  if (!anchor.present) {
    if (v.entries > 0) {
      v.intact = false;
      v.problem = "the anchor (audit.anchor) is missing";
    }
  } else if (anchor.seq > v.entries) {
    v.intact = false;
    v.problem = "entries " + std::to_string(v.entries + 1) + " to " + std::to_string(anchor.seq) +
                " are missing from the end";
  } else if (anchor.seq > 0 && hash_at_anchor != anchor.hash) {
    v.intact = false;
    v.problem = "entry " + std::to_string(anchor.seq) + " differs from the one anchored";
  }
  return v;
}

}  // namespace vigil::auth
