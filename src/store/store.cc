#include "vigil/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/mutex.h"
#include "journal/journal.h"
#include "store/record_codec.h"
#include "store/sqlite_store.h"

namespace vigil {
namespace {

// A failed index write is tried again after this long.
constexpr std::chrono::milliseconds kIndexRetry{200};
// Retention deletes index rows in transactions of at most this many.
constexpr int64_t kRetainChunk = 10000;
// Records copied per journal write when an older store's index is copied into a new journal.
constexpr size_t kMigrateChunk = 4096;
// In the data folder while an older store's index is copied into the journal: until it is gone
// the journal holds a prefix of the index because the copy is unfinished, not because a power
// loss took the journal's tail, and Open resumes the copy instead of cutting the index back.
constexpr const char* kMigratingFile = "MIGRATING";

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status CheckFolder(const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return InvalidArgument("store: the data folder is empty");
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) return InvalidArgument("store: folder '" + dir + "' does not exist");
  if (!fs::is_directory(st)) return InvalidArgument("store: '" + dir + "' is not a folder");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return PermissionDenied("store: folder '" + dir + "' is not writable");
  }
  return Status::Ok();
}

// Creates (`create`) or removes the file `name` in `dir`, durably (the folder is fsynced).
Status SetMarker(const std::string& dir, const char* name, bool create) {
  const std::string path = dir + "/" + name;
  if (create) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable("store: cannot create '" + path + "'");
    ::close(fd);
  } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Unavailable("store: cannot remove '" + path + "'");
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = dir_fd >= 0 && ::fsync(dir_fd) == 0;
  if (dir_fd >= 0) ::close(dir_fd);
  if (!synced) return Unavailable("store: cannot sync folder '" + dir + "'");
  return Status::Ok();
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
// Keyed by a view of the record's own id or key: the map holds the record, whose strings never
// change.
using RecordMap = std::unordered_map<std::string_view, std::shared_ptr<const TransactionRecord>,
                                     StringHash, std::equal_to<>>;

// Maps `name` (a view into *r) to `r`, replacing a record already there under it (the latest
// wins) along with its key, which views the record it replaces.
void Pend(RecordMap& map, std::string_view name, const std::shared_ptr<const TransactionRecord>& r) {
  auto [it, fresh] = map.try_emplace(name, r);
  if (fresh) return;
  map.erase(it);
  map.emplace(name, r);
}

// The Store: the journal as the commit point, the SQLite index behind it (vigil/store.h).
// Thread-safe: the records not yet indexed are guarded by pending_mu_; the journal and the
// index are thread-safe themselves.
class JournaledStore final : public Store {
 public:
  explicit JournaledStore(const StoreOptions& options) : options_(options) {}
  ~JournaledStore() override { (void)Flush(); }

  Status Init();

  void AppendAll(std::vector<Write> writes, const WriteOptions& options) override;
  StatusOr<std::optional<TransactionRecord>> Get(std::string_view transaction_id) override;
  StatusOr<std::optional<std::string>> FindReplyById(std::string_view transaction_id) override;
  StatusOr<std::optional<KeyedReply>> FindReplyByKey(std::string_view idempotency_key) override;
  StatusOr<std::unique_ptr<Cursor>> Follow(int64_t from) override;
  int64_t last_sequence() const override {
    return static_cast<int64_t>(journal_->next_offset()) - 1;
  }
  int64_t first_sequence() const override {
    return static_cast<int64_t>(journal_->first_offset());
  }
  StatusOr<int64_t> Retain(int64_t cutoff_us, int64_t keep_from) override;
  int64_t dropped_before_us() const override {
    return journal_->first_offset() > 1 ? journal_->first_segment_time_us() : 0;
  }
  size_t backlog() const override { return backlog_.load(std::memory_order_relaxed); }
  Status Flush() override;
  Status CheckWritable() override { return index_->CheckWritable(); }
  int64_t committed() const override { return committed_.load(std::memory_order_relaxed); }
  int64_t commits() const override { return commits_.load(std::memory_order_relaxed); }

 private:
  // Copies the records of a store that predates the journal (an index and no journal) into it,
  // those after sequence `journaled` (the journal holds the others: an interrupted copy).
  Status Migrate(int64_t journaled);
  // Holds records in memory and hands them to the index; Indexed forgets them once written.
  void Index(const std::vector<std::shared_ptr<const TransactionRecord>>& records);
  void Indexed(const std::vector<std::shared_ptr<const TransactionRecord>>& records,
               const std::vector<Status>& results);

  const StoreOptions options_;
  std::unique_ptr<Journal> journal_;

  // Held from a journal append to the hand-off of its records to the index, so that the index
  // gets them in journal order: it then always holds a prefix of the journal, which Init's
  // LastSequence relies on (out of order, a crash could leave records indexed after a gap that
  // is never filled).
  Mutex append_mu_;

  Mutex pending_mu_;
  RecordMap pending_ids_ GUARDED_BY(pending_mu_);
  RecordMap pending_keys_ GUARDED_BY(pending_mu_);
  std::atomic<size_t> backlog_{0};
  std::atomic<int64_t> committed_{0};
  std::atomic<int64_t> commits_{0};

  // Records appended with Durability::kPowerLoss whose callbacks have not run yet; Flush waits
  // for them (they call into the store's owner).
  Mutex syncs_mu_;
  CondVar syncs_cv_;
  int64_t syncs_outstanding_ GUARDED_BY(syncs_mu_) = 0;

  // Destroyed first: its writer drains its queue, whose callbacks use pending_*.
  std::unique_ptr<SqliteIndex> index_;
};

Status JournaledStore::Init() {
  VIGIL_RETURN_IF_ERROR(CheckFolder(options_.dir));
  JournalOptions jo;
  jo.dir = options_.dir + "/journal";
  jo.segment_bytes = options_.segment_bytes;
  auto journal = Journal::Open(jo);
  if (!journal.ok()) return journal.status().WithContext("store '" + options_.dir + "'");
  journal_ = std::move(*journal);
  SqliteOptions so;
  so.path = options_.dir + "/vigil.db";
  so.commit_delay = options_.index_delay;
  so.busy_timeout_ms = options_.busy_timeout_ms;
  so.retry_after = kIndexRetry;
  so.after_batch = [this](const auto& records, const auto& results) { Indexed(records, results); };
  VIGIL_ASSIGN_OR_RETURN(index_, SqliteIndex::Open(so));

  VIGIL_ASSIGN_OR_RETURN(const int64_t indexed, index_->LastSequence());
  const auto journaled = static_cast<int64_t>(journal_->next_offset()) - 1;
  std::error_code ec;
  if ((journaled == 0 && indexed > 0) ||
      std::filesystem::exists(options_.dir + "/" + kMigratingFile, ec)) {
    return Migrate(journaled);
  }
  if (indexed > journaled) {
    // The index outlived the journal's tail (a power loss): the journal is the truth.
    VIGIL_ASSIGN_OR_RETURN(const int64_t deleted, index_->DeleteAfter(journaled));
    Log(LogLevel::kWarn, "store: the index held records the journal lost; removed them",
        {{"records", deleted}, {"after_sequence", journaled}});
    return Status::Ok();
  }
  if (indexed == journaled) return Status::Ok();
  // The journal holds records the index lacks (a crash before the indexer wrote them).
  VIGIL_ASSIGN_OR_RETURN(auto cursor, Follow(indexed + 1));
  std::vector<std::shared_ptr<const TransactionRecord>> batch;
  int64_t count = 0;
  for (;;) {
    auto rec = std::make_shared<TransactionRecord>();
    VIGIL_ASSIGN_OR_RETURN(const bool more, cursor->Next(rec.get()));
    if (!more) break;
    batch.push_back(std::move(rec));
    ++count;
    if (batch.size() >= kMigrateChunk) {
      Index(batch);
      batch.clear();
    }
  }
  Index(batch);
  Log(LogLevel::kInfo, "store: indexing the records the index lacks",
      {{"records", count}, {"from_sequence", indexed + 1}});
  return Status::Ok();
}

Status JournaledStore::Migrate(int64_t journaled) {
  // Durable before the first record is copied, removed once the copy is synced.
  VIGIL_RETURN_IF_ERROR(SetMarker(options_.dir, kMigratingFile, /*create=*/true));
  int64_t copied = journaled;
  Status failure = Status::Ok();
  std::vector<std::string> payloads;
  auto flush = [&]() -> Status {
    if (payloads.empty()) return Status::Ok();
    std::vector<std::string_view> views(payloads.begin(), payloads.end());
    auto first = journal_->Append(views);
    if (!first.ok()) return first.status();
    payloads.clear();
    return Status::Ok();
  };
  Status s = index_->Scan([&](const TransactionRecord& r) {
    if (!failure.ok() || r.sequence <= journaled) return;
    // Offsets are assigned 1, 2, ...: they equal the index's sequences only when those have no
    // gap, which a store that never deleted a row has.
    if (r.sequence != copied + 1) {
      failure = InvalidArgument("store '" + options_.dir + "': the index's sequence " +
                                std::to_string(r.sequence) + " follows " +
                                std::to_string(copied) + "; cannot copy it into a journal");
      return;
    }
    payloads.emplace_back();
    EncodeRecord(r, &payloads.back());
    ++copied;
    if (payloads.size() >= kMigrateChunk) failure = flush();
  });
  VIGIL_RETURN_IF_ERROR(s);
  VIGIL_RETURN_IF_ERROR(failure);
  VIGIL_RETURN_IF_ERROR(flush());
  VIGIL_RETURN_IF_ERROR(journal_->Sync());
  VIGIL_RETURN_IF_ERROR(SetMarker(options_.dir, kMigratingFile, /*create=*/false));
  Log(LogLevel::kInfo, "store: copied the records of an older store into its new journal",
      {{"records", copied - journaled}, {"resumed_after", journaled}});
  return Status::Ok();
}

void JournaledStore::Indexed(
    const std::vector<std::shared_ptr<const TransactionRecord>>& records,
    const std::vector<Status>& results) {
  for (size_t i = 0; i < records.size(); ++i) {
    if (!results[i].ok()) {
      // Not a repeat the engine let through (it checks first) nor a failed write (the index
      // retries those): a bug. The journal keeps it.
      Log(LogLevel::kError, "store: a record was not indexed",
          {{"transaction_id", records[i]->transaction_id}, {"error", results[i].message()}});
    }
  }
  {
    // One lock per batch: the indexer runs at a lower priority, and a lock it holds is one the
    // threads that serve requests may wait for.
    MutexLock lock(&pending_mu_);
    for (const auto& r : records) {
      auto it = pending_ids_.find(std::string_view(r->transaction_id));
      if (it != pending_ids_.end() && it->second == r) pending_ids_.erase(it);
      if (r->idempotency_key.empty()) continue;
      auto k = pending_keys_.find(std::string_view(r->idempotency_key));
      if (k != pending_keys_.end() && k->second == r) pending_keys_.erase(k);
    }
  }
  backlog_.fetch_sub(records.size(), std::memory_order_relaxed);
}

void JournaledStore::Index(const std::vector<std::shared_ptr<const TransactionRecord>>& records) {
  if (records.empty()) return;
  std::vector<SqliteIndex::Write> writes;
  writes.reserve(records.size());
  {
    MutexLock lock(&pending_mu_);
    for (const auto& r : records) {
      Pend(pending_ids_, r->transaction_id, r);
      if (!r->idempotency_key.empty()) Pend(pending_keys_, r->idempotency_key, r);
    }
  }
  backlog_.fetch_add(records.size(), std::memory_order_relaxed);
  for (const auto& r : records) writes.push_back({r, nullptr});  // see Indexed
  index_->AppendAll(std::move(writes));
}

void JournaledStore::AppendAll(std::vector<Write> writes, const WriteOptions& options) {
  if (writes.empty()) return;
  const int64_t now = NowMicros();
  std::vector<std::function<void(const Status&)>> dones;
  std::vector<std::shared_ptr<TransactionRecord>> records;
  std::string payloads;  // the records' encodings, one after another
  std::vector<size_t> ends;
  dones.reserve(writes.size());
  records.reserve(writes.size());
  ends.reserve(writes.size());
  for (Write& w : writes) {
    if (w.record.transaction_id.empty()) {
      if (w.done) w.done(InvalidArgument("transaction_id is empty"));
      continue;
    }
    if (w.record.recorded_at_us == 0) w.record.recorded_at_us = now;
    EncodeRecord(w.record, &payloads);
    ends.push_back(payloads.size());
    records.push_back(std::make_shared<TransactionRecord>(std::move(w.record)));
    dones.push_back(std::move(w.done));
  }
  if (records.empty()) return;
  auto fail = [&](const Status& s) {
    for (auto& done : dones) {
      if (done) done(s);
    }
  };
  if (backlog() >= options_.max_index_backlog) {
    return fail(Unavailable("store: the index is " + std::to_string(backlog()) +
                            " records behind the journal"));
  }
  std::vector<std::string_view> views;
  views.reserve(ends.size());
  for (size_t i = 0; i < ends.size(); ++i) {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    views.emplace_back(payloads.data() + begin, ends[i] - begin);
  }
  std::vector<std::shared_ptr<const TransactionRecord>> indexed;
  indexed.reserve(records.size());
  ReleasableMutexLock append_lock(&append_mu_);
  auto first = journal_->Append(views, now);
  if (!first.ok()) {
    append_lock.Release();
    return fail(first.status());
  }
  committed_.fetch_add(static_cast<int64_t>(records.size()), std::memory_order_relaxed);
  commits_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i]->sequence = static_cast<int64_t>(*first + i);
    indexed.push_back(std::move(records[i]));
  }
  Index(indexed);
  append_lock.Release();
  if (options.durability == Durability::kProcessCrash) return fail(Status::Ok());
  {
    MutexLock lock(&syncs_mu_);
    ++syncs_outstanding_;
  }
  // Computed before the call: the lambda's capture moves `dones`, and function arguments are
  // evaluated in no set order (GCC built the lambda first, asking for offset *first - 1).
  const uint64_t last = *first + dones.size() - 1;
  journal_->AfterSync(last, [this, dones = std::move(dones)](const Status& s) {
    for (const auto& done : dones) {
      if (done) done(s);
    }
    MutexLock lock(&syncs_mu_);
    if (--syncs_outstanding_ == 0) syncs_cv_.SignalAll();
  });
}

StatusOr<std::optional<TransactionRecord>> JournaledStore::Get(std::string_view transaction_id) {
  {
    MutexLock lock(&pending_mu_);
    auto it = pending_ids_.find(transaction_id);
    if (it != pending_ids_.end()) return std::optional<TransactionRecord>(*it->second);
  }
  // A record leaves pending_* only once the index has it.
  return index_->Get(transaction_id);
}

StatusOr<std::optional<std::string>> JournaledStore::FindReplyById(
    std::string_view transaction_id) {
  {
    MutexLock lock(&pending_mu_);
    auto it = pending_ids_.find(transaction_id);
    if (it != pending_ids_.end()) return std::optional<std::string>(it->second->reply_json);
  }
  return index_->FindReplyById(transaction_id);
}

StatusOr<std::optional<Store::KeyedReply>> JournaledStore::FindReplyByKey(
    std::string_view idempotency_key) {
  {
    MutexLock lock(&pending_mu_);
    auto it = pending_keys_.find(idempotency_key);
    if (it != pending_keys_.end()) {
      return std::optional<KeyedReply>(
          KeyedReply{it->second->reply_json, it->second->request_fingerprint});
    }
  }
  return index_->FindReplyByKey(idempotency_key);
}

// A Store::Cursor over a journal Reader, decoding each record.
class JournalCursor final : public Store::Cursor {
 public:
  explicit JournalCursor(std::unique_ptr<Journal::Reader> reader) : reader_(std::move(reader)) {}
  StatusOr<bool> Next(TransactionRecord* rec) override {
    JournalEntry e;
    for (;;) {
      VIGIL_ASSIGN_OR_RETURN(const bool more, reader_->Next(&e));
      if (!more) return false;
      if (Status s = DecodeRecord(e.payload, rec); !s.ok()) {
        Log(LogLevel::kError, "store: a journal record could not be decoded; skipped",
            {{"offset", e.offset}, {"error", s.message()}});
        continue;
      }
      rec->sequence = static_cast<int64_t>(e.offset);
      return true;
    }
  }

 private:
  std::unique_ptr<Journal::Reader> reader_;
};

StatusOr<std::unique_ptr<Store::Cursor>> JournaledStore::Follow(int64_t from) {
  VIGIL_ASSIGN_OR_RETURN(auto reader,
                         journal_->Read(static_cast<uint64_t>(std::max<int64_t>(from, 1))));
  return std::unique_ptr<Cursor>(std::make_unique<JournalCursor>(std::move(reader)));
}

StatusOr<int64_t> JournaledStore::Retain(int64_t cutoff_us, int64_t keep_from) {
  const auto before = static_cast<int64_t>(journal_->first_offset());
  VIGIL_RETURN_IF_ERROR(
      journal_->DropOlderThan(cutoff_us, static_cast<uint64_t>(std::max<int64_t>(keep_from, 0)))
          .status());
  const auto first = static_cast<int64_t>(journal_->first_offset());
  int64_t deleted = 0;
  for (;;) {
    VIGIL_ASSIGN_OR_RETURN(const int64_t n, index_->DeleteBefore(first, kRetainChunk));
    deleted += n;
    if (n < kRetainChunk) break;
  }
  if (first > before || deleted > 0) {
    Log(LogLevel::kInfo, "store: retention dropped old records",
        {{"journal_records", first - before}, {"index_rows", deleted}, {"first_kept", first}});
  }
  return first - before;
}

Status JournaledStore::Flush() {
  {
    MutexLock lock(&syncs_mu_);
    while (syncs_outstanding_ > 0) syncs_cv_.Wait(&syncs_mu_);
  }
  return index_ ? index_->Flush() : Status::Ok();
}

}  // namespace

Store::~Store() = default;

Status Store::Scan(int64_t from, const std::function<void(const TransactionRecord&)>& fn) {
  VIGIL_ASSIGN_OR_RETURN(auto cursor, Follow(from));
  TransactionRecord rec;
  for (;;) {
    VIGIL_ASSIGN_OR_RETURN(const bool more, cursor->Next(&rec));
    if (!more) return Status::Ok();
    fn(rec);
  }
}

void Store::Append(TransactionRecord record, const WriteOptions& options,
                   std::function<void(const Status&)> done) {
  std::vector<Write> one;
  one.push_back(Write{std::move(record), std::move(done)});
  AppendAll(std::move(one), options);
}

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  // The embedded backend; PostgreSQL will be chosen by a postgresql:// location.
  auto store = std::make_unique<JournaledStore>(options);
  VIGIL_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vigil
