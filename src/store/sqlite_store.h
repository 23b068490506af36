// The embedded Store backend: one SQLite file in WAL mode.
//
// Schema (version 3, recorded in `schema_version`; versions 1 and 2 are migrated in place):
//
//   schema_version(version INTEGER NOT NULL)            -- one row: 3
//   transactions(
//     sequence         INTEGER PRIMARY KEY,               -- the rowid: 1, 2, ... in commit order
//     transaction_id   TEXT NOT NULL UNIQUE,
//     customer_id      TEXT NOT NULL,
//     terminal_id      TEXT NOT NULL,
//     amount           REAL,                              -- NULL when NaN
//     timestamp        INTEGER NOT NULL,                  -- epoch seconds UTC
//     transaction_json TEXT NOT NULL,                     -- as received
//     score            REAL,                              -- NULL when NaN
//     decision         TEXT NOT NULL,                     -- approve | review | decline
//     anomaly_score    REAL,                              -- NULL when NaN (no anomaly model)
//     model_name       TEXT NOT NULL,
//     model_version    TEXT NOT NULL,
//     reply_json       TEXT NOT NULL,                     -- the exact reply body sent
//     latency_us       INTEGER NOT NULL,
//     recorded_at_us   INTEGER NOT NULL,                  -- wall clock when queued
//     idempotency_key  TEXT,                              -- unique when not NULL (v2)
//     request_fingerprint INTEGER,                        -- with a key: its request's hash (v3)
//     features         BLOB)                              -- float32s the model scored (v3)
//   store_probe(id INTEGER PRIMARY KEY, checked_at_us INTEGER NOT NULL)  -- CheckWritable's row
//
// One table holds a transaction and its prediction: they are written together, read together
// (GET /v1/transactions/{id}) and never updated. Feedback, models, runs and audit will get their
// own tables in later schema versions.
//
// Connections: one writer (owned by the writer thread), one reader for Get/Scan (WAL lets it
// read beside the writer; guarded by its own mutex), one for CheckWritable. A record's sequence
// is its journal offset: the index holds a prefix of the journal, and its largest sequence says
// where indexing resumes.
#ifndef VIGIL_STORE_SQLITE_STORE_H_
#define VIGIL_STORE_SQLITE_STORE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"
#include "vigil/store.h"

namespace vigil {

struct SqliteOptions {
  // The database file. Its folder must exist and be writable; the file is created if missing.
  std::string path = "data/vigil.db";
  // At most this many queued records are written in one transaction. REQUIRES: >= 1.
  size_t max_batch = 4096;
  // Once a record is queued, how long the writer waits for more before it writes them together
  // (0: at once). Flush and shutdown do not wait for it.
  std::chrono::microseconds commit_delay{0};
  // How long a write waits for a lock held by another connection before failing.
  int busy_timeout_ms = 5000;
  // 0: a batch whose transaction fails is reported to its callbacks (Unavailable). Longer: it is
  // kept and tried again after this long, until it succeeds or the index closes (then
  // reported), and records queued after it wait; Flush returns the failure meanwhile.
  std::chrono::milliseconds retry_after{0};
  // Called on the writer thread after each batch is written (or reported failed) and its `done`
  // callbacks ran, with its records and their outcomes: one call per batch, for a caller that
  // would otherwise take a lock in every record's `done`. Must be quick; must not call Flush.
  std::function<void(const std::vector<std::shared_ptr<const TransactionRecord>>& records,
                     const std::vector<Status>& results)>
      after_batch;
};

// The SQLite index of the journal's records: what Store::Get, FindReplyBy* and queries read.
// Written by one writer thread in batches, with PRAGMA synchronous=NORMAL: a power loss may undo
// its last batches, which the journal still holds and Store::Open indexes again.
// Thread-safe: every method may be called from any thread.
class SqliteIndex {
 public:
  SqliteIndex(const SqliteIndex&) = delete;
  SqliteIndex& operator=(const SqliteIndex&) = delete;

  // Opens (creating if needed) the index at options.path; migrates schema versions 1 and 2.
  static StatusOr<std::unique_ptr<SqliteIndex>> Open(const SqliteOptions& options);
  // Writes everything queued, then stops the writer.
  virtual ~SqliteIndex() = default;

  // A record to index (its sequence set), and what to call once it is written or not.
  struct Write {
    std::shared_ptr<const TransactionRecord> record;
    std::function<void(const Status&)> done;
  };
  // Queues records for the writer, which writes everything queued (up to max_batch) in one
  // transaction, then calls each `done` on its thread, in order:
  //   Ok             — written;
  //   AlreadyExists  — a record with this transaction_id, idempotency_key or sequence was
  //                    written before (or earlier in the same batch): the first is kept;
  //   InvalidArgument — the transaction_id is empty;
  //   Unavailable    — the batch's transaction failed (disk full, I/O error, lock timeout):
  //                    nothing of it was written; the message is SQLite's.
  // `done` may be empty; it must be quick and must not call Flush.
  virtual void AppendAll(std::vector<Write> writes) = 0;

  virtual StatusOr<std::optional<TransactionRecord>> Get(std::string_view transaction_id) = 0;
  virtual StatusOr<std::optional<std::string>> FindReplyById(std::string_view transaction_id) = 0;
  virtual StatusOr<std::optional<Store::KeyedReply>> FindReplyByKey(
      std::string_view idempotency_key) = 0;
  // Every record in sequence order; `fn` is called with no lock held.
  virtual Status Scan(const std::function<void(const TransactionRecord&)>& fn) = 0;
  // The largest sequence written (0 when there is none).
  virtual StatusOr<int64_t> LastSequence() = 0;
  // Deletes the records with a sequence above `sequence`; returns how many.
  virtual StatusOr<int64_t> DeleteAfter(int64_t sequence) = 0;
  // Deletes the records with a sequence below `sequence`, at most `max_rows` of them (the oldest)
  // in one transaction; returns how many. The writer goes on between calls.
  virtual StatusOr<int64_t> DeleteBefore(int64_t sequence, int64_t max_rows) = 0;

  // Records queued and not yet written (or failed).
  virtual size_t backlog() const = 0;
  // Waits until every record queued before the call has been written or failed, and its `done`
  // called. Returns the first failure among those records, else Ok.
  // REQUIRES: not called from a `done` callback (returns Internal if it is).
  virtual Status Flush() = 0;
  // A tiny write transaction on the database file succeeds now.
  virtual Status CheckWritable() = 0;
  // Records written since opened; write transactions committed since opened.
  virtual int64_t committed() const = 0;
  virtual int64_t commits() const = 0;

 protected:
  SqliteIndex() = default;
};

}  // namespace vigil

#endif  // VIGIL_STORE_SQLITE_STORE_H_
