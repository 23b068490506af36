// The audit log: every admin action, key event, model reload, refused call and failed
// authentication, appended to `DATA_DIR/audit.log` (JSON lines, readable by its owner only).
//
// Each entry carries a sequence number, the hash of the entry before it and its own hash
// (SHA-256 of the previous hash and the entry's text), so that an entry removed from the middle,
// altered or reordered breaks the chain (`vigil audit verify`). The last sequence number and hash
// are also kept beside the log (`audit.anchor`), so that entries cut from the end are detected
// too. Someone who can rewrite both files can forge a chain: ship the log to a store they cannot
// reach for that.
//
// Record never blocks a request: a background thread appends (under an advisory lock, so that
// `vigil keys` in another process appends to the same chain) and syncs the file. Flush waits for
// what was recorded before it; admin actions call it before they answer.
#ifndef VIGIL_AUTH_AUDIT_LOG_H_
#define VIGIL_AUTH_AUDIT_LOG_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vigil/status.h"

namespace vigil::auth {

struct AuditEvent {
  std::string actor;   // a key's id, a token's subject, "cli", or "-" when unknown
  std::string action;  // "key.create", "key.revoke", "key.roll", "model.reload", "auth.failed", ...
  std::string target;  // what it acted on: a key id, a model, a route
  std::string outcome;  // "ok", "failed", "denied"
  std::string source;   // the caller's address, or "local"
  std::string detail;   // why, for a failure; never a secret
};

struct AuditVerification {
  uint64_t entries = 0;
  bool intact = true;
  std::string problem;  // the first break, when not intact
};

class AuditLog {
 public:
  // Opens (creating when missing) `data_dir`/audit.log and starts its writer.
  static StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& data_dir);
  ~AuditLog();  // writes what is queued
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues `event`, timestamped now. Never blocks on I/O. Beyond 10,000 queued events, failed
  // authentications are counted instead of queued, and the count is written as one entry.
  void Record(AuditEvent event);
  // Waits until everything recorded before it is written and synced; the write's error, if any.
  Status Flush();

  // The entries after sequence number `after`, at most `limit`, oldest first (JSON lines).
  StatusOr<std::vector<std::string>> Read(uint64_t after, size_t limit) const;

  // Checks the chain of `data_dir`'s log against its anchor.
  static StatusOr<AuditVerification> Verify(const std::string& data_dir);

 private:
  explicit AuditLog(std::string dir);
  void WriterLoop();
  Status Append(const std::vector<AuditEvent>& events, uint64_t dropped);

  const std::string dir_, path_;
  std::mutex mu_;
  std::condition_variable cv_, written_cv_;
  std::deque<AuditEvent> queue_;                     // under mu_
  uint64_t queued_ = 0, written_ = 0, dropped_ = 0;  // under mu_; events, in order
  Status write_status_;                              // under mu_: the last write's
  bool stop_ = false;                                // under mu_
  std::thread writer_;
};

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_AUDIT_LOG_H_
