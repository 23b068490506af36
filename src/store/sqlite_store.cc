#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <list>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/background_thread.h"
#include "core/log.h"
#include "core/mutex.h"

namespace vigil {
namespace {

constexpr int kSchemaVersion = 3;
// Scan reads this many rows per read transaction, then calls `fn` with no lock held.
constexpr int kScanPageRows = 1024;
// Log pages (4 KiB each) after which a checkpoint copies the log into the database file: SQLite's
// own default.
constexpr int kCheckpointPages = 1000;

// The columns of `transactions`, in the order BindRecord and ReadRecord use.
constexpr const char* kColumns =
    "transaction_id, sequence, customer_id, terminal_id, amount, timestamp, transaction_json, "
    "score, decision, anomaly_score, model_name, model_version, reply_json, latency_us, "
    "recorded_at_us, idempotency_key, request_fingerprint, features";

// Version 2: `sequence` is the rowid (one B-tree fewer per insert than a UNIQUE column, and the
// next value needs no lookup), and the Idempotency-Key a client sent is kept, so that a replay is
// found in the store however long ago the first request came.
constexpr const char* kTransactionsTable = R"sql(
CREATE TABLE transactions (
  sequence         INTEGER PRIMARY KEY,
  transaction_id   TEXT NOT NULL UNIQUE,
  customer_id      TEXT NOT NULL,
  terminal_id      TEXT NOT NULL,
  amount           REAL,
  timestamp        INTEGER NOT NULL,
  transaction_json TEXT NOT NULL,
  score            REAL,
  decision         TEXT NOT NULL,
  anomaly_score    REAL,
  model_name       TEXT NOT NULL,
  model_version    TEXT NOT NULL,
  reply_json       TEXT NOT NULL,
  latency_us       INTEGER NOT NULL,
  recorded_at_us   INTEGER NOT NULL,
  idempotency_key  TEXT,
  request_fingerprint INTEGER,
  features         BLOB
);
CREATE UNIQUE INDEX transactions_idempotency_key ON transactions (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
)sql";

constexpr const char* kCreateSchemaRest = R"sql(
CREATE TABLE store_probe (id INTEGER PRIMARY KEY, checked_at_us INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (3);
)sql";

// Version 1 -> 2, in the set-up transaction: the same records, in the same sequence.
constexpr const char* kMigrateFrom1 = R"sql(
ALTER TABLE transactions RENAME TO transactions_v1;
)sql";
constexpr const char* kMigrateFrom1Copy = R"sql(
INSERT INTO transactions (sequence, transaction_id, customer_id, terminal_id, amount, timestamp,
    transaction_json, score, decision, anomaly_score, model_name, model_version, reply_json,
    latency_us, recorded_at_us)
  SELECT sequence, transaction_id, customer_id, terminal_id, amount, timestamp, transaction_json,
    score, decision, anomaly_score, model_name, model_version, reply_json, latency_us,
    recorded_at_us
  FROM transactions_v1 ORDER BY sequence;
DROP TABLE transactions_v1;
UPDATE schema_version SET version = 3;
)sql";

// Version 2 -> 3: the fingerprint of the request an Idempotency-Key was first used with (so that
// the key reused for another request is refused, not answered with the first reply), and the
// feature values the model scored (GET /v1/transactions/{id} shows them). Older rows have
// neither: NULL.
constexpr const char* kMigrateFrom2 = R"sql(
ALTER TABLE transactions ADD COLUMN request_fingerprint INTEGER;
ALTER TABLE transactions ADD COLUMN features BLOB;
UPDATE schema_version SET version = 3;
)sql";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Resets a statement when leaving a scope, which also ends the read transaction it holds.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "store 'data/vigil.db': <what>: <SQLite's message>".
Status SqliteError(sqlite3* db, const std::string& path, std::string_view what) {
  std::string m = "store '" + path + "': ";
  m += what;
  m += ": ";
  m += db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  return Unavailable(std::move(m));
}

Status Exec(sqlite3* db, const std::string& path, const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string m = "store '" + path + "': " + (error != nullptr ? error : sqlite3_errstr(rc));
  sqlite3_free(error);
  return Unavailable(std::move(m));
}

// PRAGMA synchronous is per connection: every connection that writes (commits or checkpoints)
// needs it. NORMAL: in WAL mode a commit survives a process crash; a power loss may undo the
// last ones, which the journal still has.
Status SetSynchronous(sqlite3* db, const std::string& path) {
  return Exec(db, path, "PRAGMA synchronous=NORMAL");
}

StatusOr<StmtPtr> Prepare(sqlite3* db, const std::string& path, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, path, "preparing '" + sql + "'");
  return StmtPtr(stmt);
}

StatusOr<DbPtr> OpenConnection(const std::string& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  // NOMUTEX: each connection is used by one thread at a time (the writer thread, or a caller
  // holding the connection's mutex), so SQLite's own per-connection mutex is not needed.
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return SqliteError(db.get(), path, "cannot open");
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  return db;
}

// Fails with a message naming the path when the database file cannot be created or written
// there; SQLite itself would only say "unable to open database file".
Status CheckLocation(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return InvalidArgument("store: the database path is empty");
  fs::path file(path);
  fs::path folder = file.parent_path();
  if (folder.empty()) folder = ".";
  std::error_code ec;
  fs::file_status st = fs::status(folder, ec);
  if (!fs::exists(st)) {
    return InvalidArgument("store '" + path + "': folder '" + folder.string() + "' does not exist");
  }
  if (!fs::is_directory(st)) {
    return InvalidArgument("store '" + path + "': '" + folder.string() + "' is not a folder");
  }
  // The folder must be writable even when the file exists: WAL mode creates -wal and -shm
  // files beside it.
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    return PermissionDenied("store '" + path + "': folder '" + folder.string() +
                            "' is not writable");
  }
  if (fs::is_directory(fs::status(file, ec))) {
    return InvalidArgument("store '" + path + "' is a folder, not a database file");
  }
  return Status::Ok();
}

void BindText(sqlite3_stmt* stmt, int index, const std::string& s) {
  // SQLITE_STATIC: the record outlives the statement's step.
  sqlite3_bind_text(stmt, index, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
}

// NaN is bound as NULL explicitly (SQLite would do the same silently).
void BindDouble(sqlite3_stmt* stmt, int index, double v) {
  if (std::isnan(v)) {
    sqlite3_bind_null(stmt, index);
  } else {
    sqlite3_bind_double(stmt, index, v);
  }
}

// Binds every column of kColumns (`sequence` as ?18).
void BindRecord(sqlite3_stmt* stmt, const TransactionRecord& r) {
  sqlite3_bind_int64(stmt, 18, r.sequence);
  BindText(stmt, 1, r.transaction_id);
  BindText(stmt, 2, r.customer_id);
  BindText(stmt, 3, r.terminal_id);
  BindDouble(stmt, 4, r.amount);
  sqlite3_bind_int64(stmt, 5, r.timestamp);
  BindText(stmt, 6, r.transaction_json);
  BindDouble(stmt, 7, r.score);
  BindText(stmt, 8, r.decision);
  BindDouble(stmt, 9, r.anomaly_score);
  BindText(stmt, 10, r.model_name);
  BindText(stmt, 11, r.model_version);
  BindText(stmt, 12, r.reply_json);
  sqlite3_bind_int64(stmt, 13, r.latency_us);
  sqlite3_bind_int64(stmt, 14, r.recorded_at_us);
  if (r.idempotency_key.empty()) {
    sqlite3_bind_null(stmt, 15);
    sqlite3_bind_null(stmt, 16);
  } else {
    BindText(stmt, 15, r.idempotency_key);
    sqlite3_bind_int64(stmt, 16, static_cast<int64_t>(r.request_fingerprint));
  }
  if (r.features.empty()) {
    sqlite3_bind_null(stmt, 17);
  } else {
    sqlite3_bind_blob(stmt, 17, r.features.data(),
                      static_cast<int>(r.features.size() * sizeof(float)), SQLITE_STATIC);
  }
}

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const unsigned char* text = sqlite3_column_text(stmt, col);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, col));
}

double ColumnDouble(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return sqlite3_column_double(stmt, col);
}

// Reads a row selected as kColumns.
TransactionRecord ReadRecord(sqlite3_stmt* stmt) {
  TransactionRecord r;
  r.transaction_id = ColumnText(stmt, 0);
  r.sequence = sqlite3_column_int64(stmt, 1);
  r.customer_id = ColumnText(stmt, 2);
  r.terminal_id = ColumnText(stmt, 3);
  r.amount = ColumnDouble(stmt, 4);
  r.timestamp = sqlite3_column_int64(stmt, 5);
  r.transaction_json = ColumnText(stmt, 6);
  r.score = ColumnDouble(stmt, 7);
  r.decision = ColumnText(stmt, 8);
  r.anomaly_score = ColumnDouble(stmt, 9);
  r.model_name = ColumnText(stmt, 10);
  r.model_version = ColumnText(stmt, 11);
  r.reply_json = ColumnText(stmt, 12);
  r.idempotency_key = ColumnText(stmt, 15);
  r.latency_us = sqlite3_column_int64(stmt, 13);
  r.recorded_at_us = sqlite3_column_int64(stmt, 14);
  r.request_fingerprint = static_cast<uint64_t>(sqlite3_column_int64(stmt, 16));
  // Native float32s, as written: the store file is not meant to move between machines of
  // another byte order.
  const int bytes = sqlite3_column_bytes(stmt, 17);
  if (const void* blob = sqlite3_column_blob(stmt, 17); blob != nullptr && bytes > 0) {
    r.features.resize(static_cast<size_t>(bytes) / sizeof(float));
    std::memcpy(r.features.data(), blob, r.features.size() * sizeof(float));
  }
  return r;
}

// Sets WAL mode and the sync level, and creates or checks the schema.
Status SetUpDatabase(sqlite3* db, const SqliteOptions& options) {
  const std::string& path = options.path;
  // journal_mode answers with the mode in force: anything but "wal" (e.g. a file system without
  // shared memory, or ":memory:") would silently lose WAL's concurrent reads.
  {
    VIGIL_ASSIGN_OR_RETURN(StmtPtr wal, Prepare(db, path, "PRAGMA journal_mode=WAL"));
    int rc = sqlite3_step(wal.get());
    if (rc != SQLITE_ROW) return SqliteError(db, path, "cannot set WAL mode");
    std::string mode = ColumnText(wal.get(), 0);
    if (mode != "wal") {
      return Unavailable("store '" + path + "': WAL mode is not available (journal_mode is '" +
                         mode + "')");
    }
  }
  VIGIL_RETURN_IF_ERROR(SetSynchronous(db, path));

  VIGIL_RETURN_IF_ERROR(Exec(db, path, "BEGIN IMMEDIATE"));
  Status s = [&]() -> Status {
    VIGIL_RETURN_IF_ERROR(Exec(db, path,
                               "CREATE TABLE IF NOT EXISTS schema_version "
                               "(version INTEGER NOT NULL)"));
    VIGIL_ASSIGN_OR_RETURN(StmtPtr version,
                           Prepare(db, path, "SELECT MAX(version), COUNT(*) FROM schema_version"));
    if (sqlite3_step(version.get()) != SQLITE_ROW) {
      return SqliteError(db, path, "cannot read the schema version");
    }
    if (sqlite3_column_int64(version.get(), 1) == 0) {
      VIGIL_RETURN_IF_ERROR(Exec(db, path, kTransactionsTable));
      return Exec(db, path, kCreateSchemaRest);
    }
    int64_t found = sqlite3_column_int64(version.get(), 0);
    version.reset();  // a statement left open would keep the table locked against the migration
    if (found == 1) {
      VIGIL_RETURN_IF_ERROR(Exec(db, path, kMigrateFrom1));
      VIGIL_RETURN_IF_ERROR(Exec(db, path, kTransactionsTable));
      return Exec(db, path, kMigrateFrom1Copy);
    }
    if (found == 2) return Exec(db, path, kMigrateFrom2);
    if (found != kSchemaVersion) {
      return InvalidArgument("store '" + path + "' has schema version " + std::to_string(found) +
                             "; this build of Vigil reads version " +
                             std::to_string(kSchemaVersion));
    }
    return Status::Ok();
  }();
  if (!s.ok()) {
    if (sqlite3_get_autocommit(db) == 0) (void)Exec(db, path, "ROLLBACK");
    return s;
  }
  return Exec(db, path, "COMMIT");
}

// A record waiting for the writer.
using Pending = SqliteIndex::Write;

// A caller of Flush, waiting for the writer to complete tickets up to `target`.
struct FlushWaiter {
  uint64_t start = 0;   // tickets <= start were complete when Flush was called
  uint64_t target = 0;  // the last ticket queued when Flush was called
  Status status;        // the first failure of a batch holding a ticket in (start, target]
  bool finished = false;
};

// The SQLite index. See sqlite_store.h for the schema and connections.
// Thread-safe: the queue and counters are guarded by mu_, the reader connection by read_mu_, the
// probe connection by probe_mu_; the writer connection is touched only by the writer thread once
// it runs.
class SqliteStore final : public SqliteIndex {
 public:
  explicit SqliteStore(const SqliteOptions& options) : options_(options) {}
  ~SqliteStore() override;

  // Opens the connections, sets up the schema, prepares statements, starts the writer.
  // Not analysed: it sets up the guarded connections before any other thread can see them.
  Status Init() NO_THREAD_SAFETY_ANALYSIS;

  void AppendAll(std::vector<Write> writes) override;
  StatusOr<std::optional<TransactionRecord>> Get(std::string_view transaction_id) override;
  StatusOr<std::optional<std::string>> FindReplyById(std::string_view transaction_id) override;
  StatusOr<std::optional<Store::KeyedReply>> FindReplyByKey(std::string_view idempotency_key) override;
  Status Scan(const std::function<void(const TransactionRecord&)>& fn) override;
  StatusOr<int64_t> LastSequence() override;
  StatusOr<int64_t> DeleteAfter(int64_t sequence) override;
  StatusOr<int64_t> DeleteBefore(int64_t sequence, int64_t max_rows) override;
  size_t backlog() const override { return backlog_.load(std::memory_order_relaxed); }
  Status Flush() override;
  Status CheckWritable() override;
  int64_t committed() const override { return committed_.load(std::memory_order_relaxed); }
  int64_t commits() const override { return commits_.load(std::memory_order_relaxed); }

 private:
  void WriterLoop();
  // Commits the queue, batch after batch, until it is empty, calling the `done` callbacks, with
  // mu_ released while a batch commits. Writer thread only. Returns with mu_ held.
  void DrainQueue() REQUIRES(mu_);
  // Checkpoints run on their own thread and connection, off the commit path: a commit never
  // waits while the log is copied into the database file and synced, which showed as a
  // several-millisecond stall every ~1,000 pages. Commits on the writer and probe connections
  // call OnWalCommit (sqlite3_wal_hook), which wakes the checkpointer past kCheckpointPages.
  void CheckpointLoop();
  static int OnWalCommit(void* store, sqlite3* db, const char* schema, int pages);
  // On the writer thread between batches: finishes the copy when the log has grown too long.
  void CatchUpCheckpoint();
  // Writes `batch` in one transaction; fills `results` (one per record). Returns the failure
  // that rolled the whole batch back, or Ok.
  Status CommitBatch(std::vector<Pending>& batch, std::vector<Status>* results);
  // Runs a statement that returns no rows (BEGIN, COMMIT, ...).
  Status StepDone(sqlite3* db, sqlite3_stmt* stmt, std::string_view what);

  const SqliteOptions options_;

  // Writer connection and its statements: writer thread only (Init before it starts).
  DbPtr write_db_;
  StmtPtr begin_;
  StmtPtr insert_;
  StmtPtr commit_;
  StmtPtr rollback_;

  Mutex read_mu_;
  DbPtr read_db_ GUARDED_BY(read_mu_);
  StmtPtr get_ GUARDED_BY(read_mu_);
  StmtPtr scan_page_ GUARDED_BY(read_mu_);
  StmtPtr find_by_id_ GUARDED_BY(read_mu_);
  StmtPtr find_by_key_ GUARDED_BY(read_mu_);
  StmtPtr last_sequence_ GUARDED_BY(read_mu_);

  Mutex probe_mu_;
  DbPtr probe_db_ GUARDED_BY(probe_mu_);
  StmtPtr probe_begin_ GUARDED_BY(probe_mu_);
  StmtPtr probe_write_ GUARDED_BY(probe_mu_);
  StmtPtr probe_commit_ GUARDED_BY(probe_mu_);
  StmtPtr probe_rollback_ GUARDED_BY(probe_mu_);

  Mutex mu_;
  CondVar work_cv_;  // the writer waits: queue_ not empty, or stopping_
  CondVar done_cv_;  // Flush waits: its FlushWaiter finished
  std::deque<Pending> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool hurry_ GUARDED_BY(mu_) = false;  // a Flush waits: no commit_delay
  CondVar delay_cv_;                     // the writer waits commit_delay (or for hurry_, stopping_)
  CondVar retry_cv_;                     // a failed batch waits retry_after (or for stopping_)
  std::atomic<bool> retrying_{false};    // the last batch failed and waits to be tried again
  // Every appended record gets a ticket 1, 2, ...; tickets <= completed_ have had `done` called.
  uint64_t enqueued_ GUARDED_BY(mu_) = 0;
  uint64_t completed_ GUARDED_BY(mu_) = 0;
  std::list<FlushWaiter*> flush_waiters_ GUARDED_BY(mu_);

  std::atomic<size_t> backlog_{0};
  std::atomic<int64_t> committed_{0};
  std::atomic<int64_t> commits_{0};

  std::thread writer_;  // set by Init, joined by the destructor

  DbPtr checkpoint_db_;  // checkpointer thread only (Init before it starts)
  Mutex checkpoint_mu_;
  CondVar checkpoint_cv_;
  bool checkpoint_wanted_ GUARDED_BY(checkpoint_mu_) = false;
  bool checkpoint_stop_ GUARDED_BY(checkpoint_mu_) = false;
  Mutex checkpoint_run_mu_;         // held while a checkpoint runs (one at a time)
  std::atomic<int> wal_pages_{0};   // log size after the last commit
  std::thread checkpointer_;        // set by Init, joined by the destructor
};

SqliteStore::~SqliteStore() {
  if (writer_.joinable()) {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    work_cv_.SignalAll();
    delay_cv_.SignalAll();
    retry_cv_.SignalAll();
    writer_.join();  // the writer drains the queue before it returns
  }
  if (checkpointer_.joinable()) {
    {
      MutexLock lock(&checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.SignalAll();
    checkpointer_.join();
  }
  // Closing the last connection checkpoints what is left.
  // Statements are finalized before their connections close (members are destroyed in reverse
  // order of declaration).
}

Status SqliteStore::Init() {
  const std::string& path = options_.path;
  VIGIL_ASSIGN_OR_RETURN(write_db_, OpenConnection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                                   options_.busy_timeout_ms));
  // SQLite falls back to read-only when the file is not writable; say so now rather than at the
  // first commit.
  if (sqlite3_db_readonly(write_db_.get(), "main") == 1) {
    return PermissionDenied("store '" + path + "': the file is not writable");
  }
  VIGIL_RETURN_IF_ERROR(SetUpDatabase(write_db_.get(), options_));
  sqlite3* w = write_db_.get();
  VIGIL_ASSIGN_OR_RETURN(begin_, Prepare(w, path, "BEGIN IMMEDIATE"));
  // ON CONFLICT DO NOTHING rather than INSERT OR IGNORE: only a repeated id, idempotency key or
  // sequence is skipped (changes() == 0); any other failure is an error that rolls the batch
  // back.
  VIGIL_ASSIGN_OR_RETURN(
      insert_, Prepare(w, path,
                       std::string("INSERT INTO transactions (") + kColumns +
                           ") VALUES (?1, ?18, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                           "?13, ?14, ?15, ?16, ?17) ON CONFLICT DO NOTHING"));
  VIGIL_ASSIGN_OR_RETURN(commit_, Prepare(w, path, "COMMIT"));
  VIGIL_ASSIGN_OR_RETURN(rollback_, Prepare(w, path, "ROLLBACK"));

  VIGIL_ASSIGN_OR_RETURN(read_db_,
                         OpenConnection(path, SQLITE_OPEN_READONLY, options_.busy_timeout_ms));
  VIGIL_ASSIGN_OR_RETURN(get_, Prepare(read_db_.get(), path,
                                       std::string("SELECT ") + kColumns +
                                           " FROM transactions WHERE transaction_id = ?1"));
  VIGIL_ASSIGN_OR_RETURN(find_by_id_,
                         Prepare(read_db_.get(), path,
                                 "SELECT reply_json FROM transactions WHERE transaction_id = ?1"));
  VIGIL_ASSIGN_OR_RETURN(find_by_key_,
                         Prepare(read_db_.get(), path,
                                 "SELECT reply_json, request_fingerprint FROM transactions "
                                 "WHERE idempotency_key = ?1"));
  VIGIL_ASSIGN_OR_RETURN(last_sequence_, Prepare(read_db_.get(), path,
                                                 "SELECT COALESCE(MAX(sequence), 0) FROM "
                                                 "transactions"));
  VIGIL_ASSIGN_OR_RETURN(
      scan_page_, Prepare(read_db_.get(), path,
                          std::string("SELECT ") + kColumns +
                              " FROM transactions WHERE sequence > ?1 ORDER BY sequence LIMIT ?2"));

  VIGIL_ASSIGN_OR_RETURN(probe_db_,
                         OpenConnection(path, SQLITE_OPEN_READWRITE, options_.busy_timeout_ms));
  sqlite3* p = probe_db_.get();
  VIGIL_RETURN_IF_ERROR(SetSynchronous(p, path));
  VIGIL_ASSIGN_OR_RETURN(probe_begin_, Prepare(p, path, "BEGIN IMMEDIATE"));
  VIGIL_ASSIGN_OR_RETURN(
      probe_write_,
      Prepare(p, path, "INSERT OR REPLACE INTO store_probe (id, checked_at_us) VALUES (1, ?1)"));
  VIGIL_ASSIGN_OR_RETURN(probe_commit_, Prepare(p, path, "COMMIT"));
  VIGIL_ASSIGN_OR_RETURN(probe_rollback_, Prepare(p, path, "ROLLBACK"));

  VIGIL_ASSIGN_OR_RETURN(checkpoint_db_,
                         OpenConnection(path, SQLITE_OPEN_READWRITE, options_.busy_timeout_ms));
  VIGIL_RETURN_IF_ERROR(SetSynchronous(checkpoint_db_.get(), path));
  // Replaces SQLite's automatic checkpoint on the connections that commit.
  sqlite3_wal_hook(w, &SqliteStore::OnWalCommit, this);
  sqlite3_wal_hook(p, &SqliteStore::OnWalCommit, this);

  writer_ = std::thread([this] { WriterLoop(); });
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
  return Status::Ok();
}

int SqliteStore::OnWalCommit(void* store, sqlite3* db, const char* schema, int pages) {
  auto* self = static_cast<SqliteStore*>(store);
  self->wal_pages_.store(pages, std::memory_order_relaxed);
  if (pages >= kCheckpointPages) {
    {
      MutexLock lock(&self->checkpoint_mu_);
      self->checkpoint_wanted_ = true;
    }
    self->checkpoint_cv_.Signal();
  }
  return SQLITE_OK;
}

void SqliteStore::CheckpointLoop() {
  BecomeBackgroundThread("vigil-checkpoint");
  for (;;) {
    {
      MutexLock lock(&checkpoint_mu_);
      while (!checkpoint_stop_ && !checkpoint_wanted_) checkpoint_cv_.Wait(&checkpoint_mu_);
      if (checkpoint_stop_) return;
      checkpoint_wanted_ = false;
    }
    // PASSIVE: copies what was committed when it began, never blocks the writer or readers. A
    // failure (a full disk, say) leaves the frames in the log, which stays valid; a later commit
    // past the threshold tries again.
    MutexLock lock(&checkpoint_run_mu_);
    (void)sqlite3_wal_checkpoint_v2(checkpoint_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                    nullptr, nullptr);
  }
}

void SqliteStore::CatchUpCheckpoint() {
  // The log starts over only once every frame is copied, which a passive copy running beside
  // a busy writer never catches up with. So past kCheckpointPages * 4 the writer, between two
  // of its transactions, waits for the checkpointer's round and copies the few frames left.
  if (wal_pages_.load(std::memory_order_relaxed) < kCheckpointPages * 4) return;
  MutexLock lock(&checkpoint_run_mu_);
  int log = 0, copied = 0;
  if (sqlite3_wal_checkpoint_v2(write_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log,
                                &copied) == SQLITE_OK &&
      log == copied) {
    wal_pages_.store(0, std::memory_order_relaxed);  // the next commit starts the log over
  }
}

void SqliteStore::AppendAll(std::vector<Write> writes) {
  if (writes.empty()) return;
  backlog_.fetch_add(writes.size(), std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    for (Write& w : writes) queue_.push_back(std::move(w));
    enqueued_ += writes.size();
  }
  work_cv_.Signal();
}

void SqliteStore::WriterLoop() {
  BecomeBackgroundThread("vigil-index");
  MutexLock lock(&mu_);
  for (;;) {
    while (!stopping_ && queue_.empty()) work_cv_.Wait(&mu_);
    if (queue_.empty()) return;  // stopping, and everything queued is done
    // A wait on delay_cv_, not on work_cv_: every Append would wake a waiting writer. Flush and
    // shutdown signal it, so that they do not wait for the delay (a plain sleep made them).
    const auto until = std::chrono::steady_clock::now() + options_.commit_delay;
    while (options_.commit_delay.count() > 0 && !stopping_ && !hurry_ &&
           queue_.size() < options_.max_batch) {
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      (void)delay_cv_.WaitFor(&mu_, left);
    }
    DrainQueue();
  }
}

namespace {
// True on a thread inside DrainQueue (where the `done` callbacks run).
thread_local bool t_draining = false;
}  // namespace

void SqliteStore::DrainQueue() {
  t_draining = true;
  std::vector<Pending> batch;
  std::vector<Status> results;
  std::vector<std::shared_ptr<const TransactionRecord>> batch_records;
  while (!queue_.empty()) {
    const uint64_t first_ticket = completed_ + 1;
    const size_t n = std::min(queue_.size(), options_.max_batch);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    mu_.Unlock();
    Status batch_status = CommitBatch(batch, &results);
    if (!batch_status.ok() && options_.retry_after.count() > 0) {
      mu_.Lock();
      if (!stopping_) {
        // Kept, in order, and tried again: the index stays a prefix of what was queued. A Flush
        // waiting for these records learns of the failure now.
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
        batch.clear();
        results.clear();
        for (auto it = flush_waiters_.begin(); it != flush_waiters_.end();) {
          FlushWaiter* w = *it;
          if (first_ticket > w->target) {
            ++it;
            continue;
          }
          if (w->status.ok()) w->status = batch_status;
          w->finished = true;
          it = flush_waiters_.erase(it);
        }
        done_cv_.SignalAll();
        if (!retrying_) {
          Log(LogLevel::kError, "index: a write failed; retrying until it succeeds",
              {{"error", batch_status.message()}});
        }
        retrying_ = true;
        (void)retry_cv_.WaitFor(&mu_, options_.retry_after);
        continue;
      }
      mu_.Unlock();
    }
    if (batch_status.ok() && retrying_.exchange(false)) {
      Log(LogLevel::kInfo, "index: writes succeed again");
    }
    int64_t ok =
        std::count_if(results.begin(), results.end(), [](const Status& s) { return s.ok(); });
    committed_.fetch_add(ok, std::memory_order_relaxed);
    if (batch_status.ok()) commits_.fetch_add(1, std::memory_order_relaxed);
    backlog_.fetch_sub(batch.size(), std::memory_order_relaxed);
    // Outside the lock: a callback may call Append or Get.
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(results[i]);
    }
    if (options_.after_batch) {
      batch_records.clear();
      for (const Pending& p : batch) batch_records.push_back(p.record);
      options_.after_batch(batch_records, results);
    }
    batch.clear();
    results.clear();
    CatchUpCheckpoint();
    mu_.Lock();
    completed_ += n;
    for (auto it = flush_waiters_.begin(); it != flush_waiters_.end();) {
      FlushWaiter* w = *it;
      bool overlaps = first_ticket <= w->target && completed_ > w->start;
      if (!batch_status.ok() && overlaps && w->status.ok()) w->status = batch_status;
      if (completed_ >= w->target) {
        w->finished = true;
        it = flush_waiters_.erase(it);
      } else {
        ++it;
      }
    }
    done_cv_.SignalAll();
  }
  t_draining = false;
}

Status SqliteStore::StepDone(sqlite3* db, sqlite3_stmt* stmt, std::string_view what) {
  int rc = sqlite3_step(stmt);
  Status s = rc == SQLITE_DONE ? Status::Ok() : SqliteError(db, options_.path, what);
  sqlite3_reset(stmt);
  return s;
}

Status SqliteStore::CommitBatch(std::vector<Pending>& batch, std::vector<Status>* results) {
  sqlite3* db = write_db_.get();
  results->assign(batch.size(), Status::Ok());
  Status failure = StepDone(db, begin_.get(), "cannot begin a write transaction");
  for (size_t i = 0; failure.ok() && i < batch.size(); ++i) {
    const TransactionRecord& r = *batch[i].record;
    if (r.transaction_id.empty()) {
      (*results)[i] = InvalidArgument("transaction_id is empty");
      continue;
    }
    BindRecord(insert_.get(), r);
    failure = StepDone(db, insert_.get(), "cannot record a transaction");
    if (!failure.ok()) failure = failure.WithContext("transaction '" + r.transaction_id + "'");
    sqlite3_clear_bindings(insert_.get());
    if (failure.ok() && sqlite3_changes(db) == 0) {
      (*results)[i] = AlreadyExists(
          r.idempotency_key.empty()
              ? "transaction '" + r.transaction_id + "' is already recorded"
              : "transaction '" + r.transaction_id + "' or idempotency key '" +
                    r.idempotency_key + "' is already recorded");
    }
  }
  if (failure.ok()) failure = StepDone(db, commit_.get(), "cannot commit");
  if (failure.ok()) return Status::Ok();
  // SQLite may have rolled back already (e.g. on SQLITE_FULL); otherwise undo the whole batch.
  if (sqlite3_get_autocommit(db) == 0) (void)StepDone(db, rollback_.get(), "cannot roll back");
  results->assign(batch.size(), failure);
  return failure;
}

StatusOr<std::optional<TransactionRecord>> SqliteStore::Get(std::string_view transaction_id) {
  MutexLock lock(&read_mu_);
  sqlite3_stmt* stmt = get_.get();
  ResetOnExit reset(stmt);
  sqlite3_bind_text(stmt, 1, transaction_id.data(), static_cast<int>(transaction_id.size()),
                    SQLITE_STATIC);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return std::optional<TransactionRecord>(ReadRecord(stmt));
  if (rc == SQLITE_DONE) return std::optional<TransactionRecord>();
  return SqliteError(read_db_.get(), options_.path,
                     "cannot read transaction '" + std::string(transaction_id) + "'");
}

StatusOr<std::optional<std::string>> SqliteStore::FindReplyById(
    std::string_view transaction_id) {
  MutexLock lock(&read_mu_);
  sqlite3_stmt* stmt = find_by_id_.get();
  ResetOnExit reset(stmt);
  sqlite3_bind_text(stmt, 1, transaction_id.data(), static_cast<int>(transaction_id.size()),
                    SQLITE_STATIC);
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return std::optional<std::string>(ColumnText(stmt, 0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return SqliteError(read_db_.get(), options_.path, "cannot look up a transaction id");
}

StatusOr<std::optional<Store::KeyedReply>> SqliteStore::FindReplyByKey(
    std::string_view idempotency_key) {
  MutexLock lock(&read_mu_);
  sqlite3_stmt* stmt = find_by_key_.get();
  ResetOnExit reset(stmt);
  sqlite3_bind_text(stmt, 1, idempotency_key.data(), static_cast<int>(idempotency_key.size()),
                    SQLITE_STATIC);
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    return std::optional<Store::KeyedReply>(
        Store::KeyedReply{ColumnText(stmt, 0), static_cast<uint64_t>(sqlite3_column_int64(stmt, 1))});
  }
  if (rc == SQLITE_DONE) return std::optional<Store::KeyedReply>();
  return SqliteError(read_db_.get(), options_.path, "cannot look up an idempotency key");
}

Status SqliteStore::Scan(const std::function<void(const TransactionRecord&)>& fn) {
  std::vector<TransactionRecord> page;
  int64_t after = 0;
  for (;;) {
    page.clear();
    {
      MutexLock lock(&read_mu_);
      sqlite3_stmt* stmt = scan_page_.get();
      ResetOnExit reset(stmt);
      sqlite3_bind_int64(stmt, 1, after);
      sqlite3_bind_int(stmt, 2, kScanPageRows);
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) page.push_back(ReadRecord(stmt));
      if (rc != SQLITE_DONE) return SqliteError(read_db_.get(), options_.path, "cannot scan");
    }
    // Sequences are assigned in commit order, so paging by sequence misses nothing.
    for (const TransactionRecord& r : page) fn(r);
    if (page.size() < static_cast<size_t>(kScanPageRows)) return Status::Ok();
    after = page.back().sequence;
  }
}

Status SqliteStore::Flush() {
  if (t_draining) {
    return Internal("Store::Flush called from a done callback would wait for itself");
  }
  MutexLock lock(&mu_);
  if (completed_ >= enqueued_) return Status::Ok();
  FlushWaiter waiter;
  waiter.start = completed_;
  waiter.target = enqueued_;
  flush_waiters_.push_back(&waiter);
  hurry_ = true;
  delay_cv_.Signal();
  while (!waiter.finished) done_cv_.Wait(&mu_);
  hurry_ = !flush_waiters_.empty();
  return waiter.status;
}

StatusOr<int64_t> SqliteStore::LastSequence() {
  MutexLock lock(&read_mu_);
  sqlite3_stmt* stmt = last_sequence_.get();
  ResetOnExit reset(stmt);
  if (sqlite3_step(stmt) != SQLITE_ROW) {
    return SqliteError(read_db_.get(), options_.path, "cannot read the last sequence");
  }
  return sqlite3_column_int64(stmt, 0);
}

StatusOr<int64_t> SqliteStore::DeleteAfter(int64_t sequence) {
  VIGIL_RETURN_IF_ERROR(Flush());
  // The probe connection: the writer's belongs to the writer thread, and it is idle now.
  MutexLock lock(&probe_mu_);
  sqlite3* db = probe_db_.get();
  const std::string sql = "DELETE FROM transactions WHERE sequence > " + std::to_string(sequence);
  VIGIL_RETURN_IF_ERROR(Exec(db, options_.path, sql.c_str()));
  return static_cast<int64_t>(sqlite3_changes(db));
}

StatusOr<int64_t> SqliteStore::DeleteBefore(int64_t sequence, int64_t max_rows) {
  // The probe connection: its own write transaction, which the writer's busy timeout waits for.
  MutexLock lock(&probe_mu_);
  sqlite3* db = probe_db_.get();
  // `sequence` is the rowid: the oldest rows are the first of the B-tree.
  const std::string sql =
      "DELETE FROM transactions WHERE sequence IN (SELECT sequence FROM transactions WHERE "
      "sequence < " + std::to_string(sequence) + " ORDER BY sequence LIMIT " +
      std::to_string(max_rows) + ")";
  VIGIL_RETURN_IF_ERROR(Exec(db, options_.path, sql.c_str()));
  return static_cast<int64_t>(sqlite3_changes(db));
}

Status SqliteStore::CheckWritable() {
  MutexLock lock(&probe_mu_);
  sqlite3* db = probe_db_.get();
  Status s = StepDone(db, probe_begin_.get(), "not writable");
  if (s.ok()) {
    sqlite3_bind_int64(probe_write_.get(), 1, NowMicros());
    s = StepDone(db, probe_write_.get(), "not writable");
  }
  if (s.ok()) s = StepDone(db, probe_commit_.get(), "not writable");
  if (!s.ok() && sqlite3_get_autocommit(db) == 0) {
    (void)StepDone(db, probe_rollback_.get(), "cannot roll back");
  }
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<SqliteIndex>> SqliteIndex::Open(const SqliteOptions& options) {
  if (options.max_batch < 1) return InvalidArgument("store: max_batch must be at least 1");
  if (options.commit_delay.count() < 0) {
    return InvalidArgument("store: commit_delay must not be negative");
  }
  if (options.busy_timeout_ms < 0) return InvalidArgument("store: busy_timeout_ms is negative");
  VIGIL_RETURN_IF_ERROR(CheckLocation(options.path));
  auto store = std::make_unique<SqliteStore>(options);
  VIGIL_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<SqliteIndex>(std::move(store));
}

}  // namespace vigil
