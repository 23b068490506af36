// The store: where every scored transaction is recorded durably, with the exact reply it got.
//
// The engine appends one TransactionRecord per scored transaction and, by default, answers only
// once that record is committed, so a `kill -9` loses no answered transaction. At start-up it
// rebuilds its online state by scanning the records in commit order.
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

#include "vigil/durability.h"
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
  int64_t recorded_at_us = 0;  // wall clock when recorded, microseconds since epoch; Append
                               // sets it when left at 0
  int64_t sequence = 0;        // set by the store on commit: its journal offset, increasing in
                               // commit order (ignored by Append; set by Get and Scan)
  std::string idempotency_key;  // the client's Idempotency-Key when it sent one, else empty;
                                // unique among records like transaction_id
  uint64_t request_fingerprint = 0;  // with a key: a hash of the request it was first used with
  std::vector<float> features;  // the feature values the model scored (FeatureNames(kAll)
                                // order); empty for records of older stores
};

// How a write is to be done. Callers say what they need; how writes are grouped and which thread
// writes is the store's affair.
struct WriteOptions {
  Durability durability = Durability::kProcessCrash;
};

struct StoreOptions {
  // The data folder (it must exist and be writable): the journal lives in <dir>/journal, the
  // index in <dir>/vigil.db.
  std::string dir = "data";
  // The journal's segments are about this large (retention drops whole segments).
  uint64_t segment_bytes = uint64_t{64} << 20;
  // How long the indexer gathers records before it writes them into the index together: larger
  // batches cost much less per record, and nothing waits for them.
  std::chrono::microseconds index_delay{5000};
  // Records journaled and not yet indexed are held in memory (so that Get finds them); past this
  // many, appends are refused (Unavailable) until the index catches up.
  size_t max_index_backlog = 200000;
  // How long an index write waits for a lock held by another connection (e.g. a reader in
  // another process) before it fails.
  int busy_timeout_ms = 5000;
};

// A Store records scored transactions durably and finds them again.
//
// The commit point is the journal (src/journal/journal.h): a record is committed once its frame
// is written there, one write(2) for all the records appended together, and fdatasynced when the
// write asks for Durability::kPowerLoss. Off the reply path an indexer copies the records into
// the index (SQLite, src/store/sqlite_store.h), which serves Get, FindReplyBy* and queries;
// records not indexed yet are found in memory. At Open, records the journal holds and the index
// lacks are indexed again, and an index that holds more than the journal (a power loss took the
// journal's tail) is cut back to it. Only one process has a data folder open at a time.
//
// The store does not check ids for uniqueness: the engine's idempotency does, before a record is
// made (the index keeps the first should a repeat ever reach it, and logs it).
//
// Thread-safe: every method may be called from any thread concurrently. Destroying the store
// while another thread still calls it is a bug.
class Store {
 public:
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens the store in options.dir, creating the journal and index if needed, and brings the
  // index level with the journal (a store of an older version, holding only the index, has its
  // records copied into a new journal first). Fails with a message naming the folder when it is
  // missing, not writable or in use by another process, or when a file in it is not of a version
  // this build reads.
  static StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);

  // Indexes what is journaled, then closes.
  virtual ~Store();

  // Commits a record; calls `done` once, when it is committed or not:
  //   Ok              — committed as `options` asks, and Get/FindReplyBy* find it;
  //   InvalidArgument — the transaction_id is empty: nothing written;
  //   Unavailable     — the write failed (disk full, I/O error, the index too far behind):
  //                     nothing of it is committed; the message says why (for the log).
  // `done` runs on this thread before Append returns (Durability::kProcessCrash) or on the
  // journal's sync thread; it must be quick and must not call Flush. The record's `sequence` is
  // set by the store: its journal offset.
  void Append(TransactionRecord record, const WriteOptions& options,
              std::function<void(const Status&)> done);

  // A record and what to call once it is committed (or not).
  struct Write {
    TransactionRecord record;
    std::function<void(const Status&)> done;
  };
  // Append of several records at once, in one journal write.
  virtual void AppendAll(std::vector<Write> writes, const WriteOptions& options) = 0;

  // The committed record with this id, or nullopt.
  virtual StatusOr<std::optional<TransactionRecord>> Get(std::string_view transaction_id) = 0;

  // How the engine finds the first reply to a replayed request once it has left its memory.
  // Transaction ids and idempotency keys are separate namespaces.
  // The reply_json of the committed record with this transaction_id, or nullopt.
  virtual StatusOr<std::optional<std::string>> FindReplyById(std::string_view transaction_id) = 0;
  // The reply_json and request_fingerprint of the committed record with this idempotency key.
  struct KeyedReply {
    std::string reply_json;
    uint64_t request_fingerprint = 0;
  };
  virtual StatusOr<std::optional<KeyedReply>> FindReplyByKey(std::string_view idempotency_key) = 0;

  // A reader of the committed records in commit order, from the journal: what rebuilds online
  // state at start-up and follows it afterwards. A record the journal finds damaged is skipped
  // and logged. Belongs to one thread at a time.
  class Cursor {
   public:
    virtual ~Cursor() = default;
    // The next record (its sequence set): true; false when there is none yet (a later call
    // sees records committed meanwhile); Unavailable on an I/O error.
    virtual StatusOr<bool> Next(TransactionRecord* record) = 0;
  };
  // A cursor at the first committed record whose sequence is `from` or later.
  virtual StatusOr<std::unique_ptr<Cursor>> Follow(int64_t from) = 0;

  // Calls `fn` for every committed record whose sequence is `from` or later, in commit order,
  // through a Cursor (records committed while the scan runs may be included).
  Status Scan(int64_t from, const std::function<void(const TransactionRecord&)>& fn);
  Status Scan(const std::function<void(const TransactionRecord&)>& fn) { return Scan(1, fn); }

  // The sequence of the last record committed (0 when there is none).
  virtual int64_t last_sequence() const = 0;

  // Retention: drops the records committed before `cutoff_us` (microseconds since the epoch),
  // whole journal segments at a time, never the newest segment and never a record with a
  // sequence of `keep_from` or later (what the newest snapshot does not hold yet); then deletes
  // them from the index too, in small transactions that let the indexer go on between them.
  // Returns the number of records dropped. Writes and reads go on meanwhile.
  virtual StatusOr<int64_t> Retain(int64_t cutoff_us, int64_t keep_from) = 0;
  // The sequence of the oldest record kept.
  virtual int64_t first_sequence() const = 0;
  // Every record retention has dropped was committed before this time (microseconds since the
  // epoch); 0 when none has been dropped.
  virtual int64_t dropped_before_us() const = 0;

  // Records committed and not yet indexed.
  virtual size_t backlog() const = 0;

  // Waits until every record committed before the call is indexed too. Returns the first index
  // failure since the last Flush, else Ok. REQUIRES: not called from a `done` callback.
  virtual Status Flush() = 0;

  // Readiness: the journal takes writes and the index's file does too.
  virtual Status CheckWritable() = 0;

  // Records committed since this store was opened.
  virtual int64_t committed() const = 0;
  // Journal writes since this store was opened: committed() / commits() is the mean number of
  // records per write.
  virtual int64_t commits() const = 0;

 protected:
  Store() = default;
};

}  // namespace vigil

#endif  // VIGIL_STORE_H_
