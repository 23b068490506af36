// The store: where every scored transaction is recorded durably, with the exact reply it got.
//
// The scoring service appends one TransactionRecord per scored transaction and, by default,
// answers only once that record is committed, so a `kill -9` loses no answered transaction.
// Appends from concurrent requests are committed together (group commit) by one writer thread.
// At start-up the service rebuilds its online state by scanning the records in arrival order.
//
// The embedded backend is SQLite in WAL mode (src/store/sqlite_store.h documents its schema).
#ifndef VIGIL_STORE_H_
#define VIGIL_STORE_H_

#include <cstddef>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil {

// What the service records for every scored transaction.
struct TransactionRecord {
  std::string transaction_id;  // primary key; must not be empty
  std::string customer_id;
  std::string terminal_id;
  double amount = 0;
  int64_t timestamp = 0;         // epoch seconds UTC (the transaction's time)
  std::string transaction_json;  // the transaction as received (unknown fields kept)
  double score = 0;
  std::string decision;      // approve | review | decline
  double anomaly_score = 0;  // NaN when there is none (NaN round-trips as NaN)
  std::string model_name;
  std::string model_version;
  std::string reply_json;  // the exact reply body sent (idempotent replays return it)
  int64_t latency_us = 0;
  int64_t recorded_at_us = 0;  // wall clock when queued, microseconds since epoch; Append sets
                               // it when left at 0
  int64_t sequence = 0;        // assigned by the store on commit: order of arrival 1, 2, ...
                               // (ignored by Append; set by Get and Scan)
  std::string idempotency_key;  // the client's Idempotency-Key when it sent one, else empty;
                                // unique among records like transaction_id
  uint64_t request_fingerprint = 0;  // with a key: a hash of the request it was first used with
  std::vector<float> features;  // the feature values the model scored (FeatureNames(kAll)
                                // order); empty for records of older stores
};

// PRAGMA synchronous. In WAL mode, kNormal survives a process crash (kill -9) but a power loss
// may undo the last commits; kFull fsyncs the log on every commit and survives both.
enum class SyncMode { kNormal, kFull };

struct StoreOptions {
  // The database file. Its folder must exist and be writable; the file is created if missing.
  std::string path = "data/vigil.db";
  SyncMode sync = SyncMode::kNormal;
  // At most this many queued records are committed in one transaction. REQUIRES: >= 1.
  size_t max_batch = 4096;
  // Once a record is queued, how long the writer waits for more before it commits them together
  // (0: commit at once). Fewer, larger commits cost much less per record; worth it when no reply
  // waits for the commit (the service's --record async). Flush and shutdown wait for it too.
  std::chrono::microseconds commit_delay{0};
  // How long a write waits for a lock held by another connection (e.g. another process)
  // before failing with Unavailable.
  int busy_timeout_ms = 5000;
};

// A Store records scored transactions durably.
// Thread-safe: Append, Get, Scan, Flush, CheckWritable, backlog and committed may be called from
// any thread concurrently. Destroying the store while another thread still calls it is a bug.
class Store {
 public:
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens the store at options.path, creating the file and its schema if needed. Fails with a
  // message naming the path when its folder is missing or not writable, or the file is not a
  // store of a schema version this build reads.
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);

  // Commits everything already queued (calling each `done`), then stops the writer.
  virtual ~Store();

  // Queues a record. The writer commits everything queued (up to max_batch) in one transaction,
  // then calls `done` for each record, on the thread that committed, in the order of arrival:
  //   Ok             — committed: it survives a crash (and with SyncMode::kFull a power loss);
  //   AlreadyExists  — a record with this transaction_id (or this non-empty idempotency_key)
  //                    was committed before (or earlier in the same batch); the first one is
  //                    kept, this one is not written, and FindReplyById/ByKey already return
  //                    the first's reply_json (the one to replay);
  //   InvalidArgument — the transaction_id is empty;
  //   Unavailable    — the batch's commit failed (disk full, I/O error, lock timeout): nothing
  //                    of that batch was written; the message is SQLite's.
  // `done` may be empty. It must be quick and must not throw or call Flush (it runs on the
  // thread that commits, which waits for it); it may call Get or Append.
  //
  // `by` says who commits, and when:
  //   kWriter: the writer thread, woken now.
  //   kCaller: when no commit is running, this thread, now, before Append returns, with whatever
  //            else is queued (one batch; commit_delay does not apply); otherwise as kWriter.
  //            It saves the two thread switches of a hand-off to the writer and back, most of a
  //            commit's latency on a lightly loaded machine. `done` may run inside this call.
  //   kLater:  the writer thread, but not woken until Kick() (as a safety net, 20 ms): a
  //            caller that appends a burst of records (an I/O thread working through the
  //            requests ready at once) kicks once after it, and they are committed together
  //            rather than the first alone. A commit already running takes them too.
  enum class CommitBy { kWriter, kCaller, kLater };
  void Append(TransactionRecord record, std::function<void(const Status&)> done,
              CommitBy by = CommitBy::kWriter);

  // A record and what to call once it is committed (or not).
  struct Write {
    TransactionRecord record;
    std::function<void(const Status&)> done;
  };
  // Append of several records at once, queued together so that they are committed together.
  virtual void AppendAll(std::vector<Write> writes, CommitBy by = CommitBy::kWriter) = 0;

  // Wakes the writer for records appended with CommitBy::kLater.
  virtual void Kick() = 0;

  // The committed record with this id, or nullopt. Reads run beside the writer.
  virtual StatusOr<std::optional<TransactionRecord>> Get(std::string_view transaction_id) = 0;

  // How the engine finds the first reply to a replayed request once it has left its memory.
  // Transaction ids and idempotency keys are separate namespaces. Reads run beside the writer.
  // The reply_json of the committed record with this transaction_id, or nullopt.
  virtual StatusOr<std::optional<std::string>> FindReplyById(std::string_view transaction_id) = 0;
  // The reply_json and request_fingerprint of the committed record with this idempotency key.
  struct KeyedReply {
    std::string reply_json;
    uint64_t request_fingerprint = 0;
  };
  virtual StatusOr<std::optional<KeyedReply>> FindReplyByKey(std::string_view idempotency_key) = 0;

  // Calls `fn` for every committed record in arrival order (sequence 1, 2, ...), to rebuild
  // online state at start-up. Records committed while the scan runs may be included. `fn` is
  // called without any lock held and may call Get.
  virtual Status Scan(const std::function<void(const TransactionRecord&)>& fn) = 0;

  // Records queued and not yet committed (or failed).
  virtual size_t backlog() const = 0;

  // Waits until every record queued before the call has been committed or failed, and its
  // `done` called. Returns the first commit failure among those records, else Ok.
  // REQUIRES: not called from a `done` callback (returns Internal if it is).
  virtual Status Flush() = 0;

  // Readiness: a tiny write transaction on the database file succeeds now.
  virtual Status CheckWritable() = 0;

  // Records committed (done called with Ok) since this store was opened.
  virtual int64_t committed() const = 0;
  // Write transactions committed since this store was opened: committed() / commits() is the
  // mean group-commit size.
  virtual int64_t commits() const = 0;

 protected:
  Store() = default;
};

}  // namespace vigil

#endif  // VIGIL_STORE_H_
