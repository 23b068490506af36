#include "vigil/engine.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <thread>
#include <unordered_map>

#include "core/background_thread.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mutex.h"
#include "core/seen_filter.h"
#include "core/transaction_json.h"
#include "engine/prediction_json.h"
#include "engine/snapshot.h"
#include "monitor/metrics.h"
#include "vigil/features.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

// The filter of ids and keys seen forgets a generation once retention has dropped every record
// committed up to this long after its newest item was added (scoring and committing a record
// take far less), so that it never forgets an id the store still holds.
constexpr int64_t kSeenForgetMarginUs = int64_t{3600} * 1000000;
constexpr size_t kMaxModelNameLength = 128;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

std::string Folder(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// A model's version: the first 12 hex digits of the FNV-1a hash of its file's bytes.
std::string ContentVersion(std::string_view bytes) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(Fnv1a64(bytes)));
  return std::string(buf, 12);
}

bool ValidModelName(std::string_view name) {
  if (name.empty() || name.size() > kMaxModelNameLength) return false;
  const auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  };
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), ok);
}

// Keys share the seen filter with ids; their namespace keeps a key from looking like an id to it.
uint64_t IdHash(std::string_view id) { return SeenFilter::Hash(id); }
uint64_t KeyHash(std::string_view key) { return SeenFilter::Hash(key, "\x01k:"); }

// The seen filter for a retention: generations of a sixteenth of it, so that memory holds about
// 1/16 more than the window; with everything kept (0), generations only roll when full.
SeenFilterOptions SeenOptions(std::chrono::seconds retain) {
  SeenFilterOptions o;
  o.span_us = retain.count() * 1000000 / 16;
  return o;
}

// Forgets what retention has dropped from `store` (see kSeenForgetMarginUs).
void ForgetDropped(const Store& store, SeenFilter& seen) {
  const int64_t dropped_before = store.dropped_before_us();
  if (dropped_before > 0) seen.ForgetBefore(dropped_before - kSeenForgetMarginUs);
}

TransactionView ViewOf(const Transaction& tx) {
  return {IdKey(tx.transaction_id), tx.timestamp, tx.customer_key, tx.terminal_key, tx.amount};
}

size_t NumFeatures() { return Features(FeatureSet::kAll).size(); }

}  // namespace

Prediction Predict(const Scorer& scorer, std::span<const float> features, int explain_top_k) {
  ScoreResult r = scorer.Score(features, explain_top_k);
  Prediction p;
  p.score = r.score;
  p.decision = r.decision;
  p.anomaly_score = r.anomaly_score;
  p.reasons = std::move(r.reasons);
  p.algorithm = scorer.model().algo;
  return p;
}

// Applies a committed record to an online state: what start-up replay and the snapshotter do,
// with the values the live engine used (the keys are IdKey of the ids it recorded).
void Apply(const TransactionRecord& rec, FeatureEngine& features, SeenFilter& seen) {
  features.Insert({IdKey(rec.transaction_id), rec.timestamp, IdKey(rec.customer_id),
                   IdKey(rec.terminal_id), rec.amount});
  seen.Add(IdHash(rec.transaction_id), rec.recorded_at_us);
  if (!rec.idempotency_key.empty()) seen.Add(KeyHash(rec.idempotency_key), rec.recorded_at_us);
}

// Loads the newest usable snapshot of `dir` into `features` and `seen`; returns the sequence it
// holds the state through, or 0 with both left empty when there is none usable (none written,
// all damaged, written for another label delay, or ahead of the store, whose tail a power loss
// took).
int64_t LoadState(const std::string& dir, int64_t last_sequence, FeatureEngine& features,
                  SeenFilter& seen) {
  auto snap = LoadNewestSnapshot(dir);
  if (!snap.ok() || !snap->has_value()) return 0;
  const Snapshot& s = **snap;
  Status st = s.sections.size() == 2 ? features.Load(s.sections[0])
                                     : InvalidArgument("not an engine snapshot");
  if (st.ok()) st = seen.Load(s.sections[1]);
  if (st.ok() && s.through > last_sequence) {
    st = InvalidArgument("it holds records up to " + std::to_string(s.through) +
                         " and the store only up to " + std::to_string(last_sequence));
  }
  if (!st.ok()) {
    Log(LogLevel::kWarn, "snapshot not used; replaying the whole journal",
        {{"through", s.through}, {"error", st.message()}});
    (void)features.Load({});  // leaves it empty
    seen.Clear();
    return 0;
  }
  return s.through;
}

// A Snapshotter keeps a replica of the online state built from committed records only, on its
// own thread, and saves it every `every` records or `interval` (and once more when stopped), so
// that writing a snapshot never pauses scoring. The replica costs a second copy of the feature
// state and an Insert per record. Once a minute it also applies the retention (`retain`; 0:
// keep everything), which never drops what the newest snapshot does not hold. Thread-safe.
class Snapshotter {
 public:
  // `retained` is called (on the snapshotter's thread) after each retention pass.
  Snapshotter(Store* store, std::string dir, FeatureSet set, FeatureOptions options,
              int64_t every, std::chrono::seconds interval, std::chrono::seconds retain,
              std::function<void()> retained)
      : store_(store),
        dir_(std::move(dir)),
        features_(std::make_unique<FeatureEngine>(set, options)),
        seen_(SeenOptions(retain)),
        every_(every),
        interval_(interval),
        retain_(retain),
        retained_(std::move(retained)) {}
  ~Snapshotter() { Stop(); }
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  // Starts the thread, which loads the newest snapshot into the replica (as the engine did for
  // itself) and then follows the store after it. `written` is the snapshot the engine loaded.
  void Start(int64_t written) {
    written_.store(written);
    thread_ = std::thread([this] { Loop(); });
  }
  // Catches up with the store, writes a last snapshot when there is anything new, and stops.
  void Stop() {
    {
      MutexLock lock(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    if (thread_.joinable()) thread_.join();
  }
  // The sequence the newest snapshot written holds the state through.
  int64_t written_through() const { return written_.load(); }

 private:
  void Loop() {
    BecomeBackgroundThread("vigil-snapshot");
    through_ = LoadState(dir_, store_->last_sequence(), *features_, seen_);
    auto cursor = store_->Follow(through_ + 1);
    if (!cursor.ok()) {
      Log(LogLevel::kError, "snapshotter: cannot read the journal; no snapshots",
          {{"error", cursor.status().message()}});
      return;
    }
    cursor_ = std::move(*cursor);
    auto last_write = Clock::now();
    auto last_retain = Clock::now() - kRetainEvery;
    for (;;) {
      bool stop;
      {
        MutexLock lock(&mu_);
        if (!stop_) (void)cv_.WaitFor(&mu_, kPoll);
        stop = stop_;
      }
      TransactionRecord rec;
      for (;;) {
        auto more = cursor_->Next(&rec);
        if (!more.ok()) {
          Log(LogLevel::kError, "snapshotter: cannot read the journal",
              {{"error", more.status().message()}});
          break;
        }
        if (!*more) break;
        Apply(rec, *features_, seen_);
        through_ = rec.sequence;
      }
      const int64_t written = written_.load();
      if (through_ > written && (stop || through_ - written >= every_ ||
                                 Clock::now() - last_write >= interval_)) {
        Write();
        last_write = Clock::now();
      }
      if (stop) return;
      if (retain_.count() > 0 && Clock::now() - last_retain >= kRetainEvery) {
        last_retain = Clock::now();
        const int64_t cutoff = NowMicros() - retain_.count() * 1000000;
        auto dropped = store_->Retain(cutoff, written_.load() + 1);
        if (!dropped.ok()) {
          Log(LogLevel::kError, "retention failed", {{"error", dropped.status().message()}});
        }
        ForgetDropped(*store_, seen_);
        retained_();
      }
    }
  }

  void Write() {
    const auto start = Clock::now();
    Snapshot s;
    s.through = through_;
    s.sections.resize(2);
    features_->Save(&s.sections[0]);
    seen_.Save(&s.sections[1]);
    const size_t bytes = s.sections[0].size() + s.sections[1].size();
    if (Status st = WriteSnapshot(dir_, s); !st.ok()) {
      Log(LogLevel::kError, "snapshot not written", {{"error", st.message()}});
      return;
    }
    written_.store(through_);
    Log(LogLevel::kInfo, "snapshot written",
        {{"through", through_},
         {"bytes", bytes},
         {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
                    .count()}});
  }

  static constexpr std::chrono::seconds kPoll{1};
  static constexpr std::chrono::seconds kRetainEvery{60};
  Store* const store_;
  const std::string dir_;
  // The replica: the snapshotter's thread only (Start before it runs).
  std::unique_ptr<FeatureEngine> features_;
  SeenFilter seen_;
  int64_t through_ = 0;
  std::unique_ptr<Store::Cursor> cursor_;
  const int64_t every_;
  const std::chrono::seconds interval_;
  const std::chrono::seconds retain_;
  const std::function<void()> retained_;
  std::atomic<int64_t> written_{0};

  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// A model compiled for serving, with the name and version predictions carry.
struct LoadedModel {
  std::unique_ptr<Scorer> scorer;
  std::string path;
  ModelInfo info;
  std::string bytes;  // the file's, kept only for a RowPredictor (EngineOptions::predictor)
  std::array<Counter*, 3> predictions{};  // vigil_predictions_total{model, decision}, by Decision
};

struct Engine::Impl {
  EngineOptions options;
  std::string models_dir;
  std::unique_ptr<Store> store;
  MetricsRegistry metrics;
  Histogram* score_hist = nullptr;

  mutable Mutex model_mu;
  std::shared_ptr<const LoadedModel> model GUARDED_BY(model_mu);
  Mutex reload_mu;  // one reload at a time

  // The online feature state: one engine, updated under its lock (about a microsecond).
  mutable Mutex features_mu;
  std::unique_ptr<FeatureEngine> features GUARDED_BY(features_mu);

  // Idempotency. A transaction id and an Idempotency-Key are looked for in separate
  // namespaces: among the recent replies in memory, then among the transactions being scored
  // (a repeat waits for the first's outcome), then in the store: memory stays bounded however
  // long the engine runs. `recent_*` keep the last options.recent_replies and every one whose
  // record is not committed yet (--record async), which the store could not find. `seen` holds
  // every id and key accepted whose record retention has not dropped, so that a new one (nearly
  // every transaction) skips the store.
  //
  // An Entry is one transaction accepted for scoring: while in flight, who waits for its
  // outcome; once it has its reply, what a repeat is given. One allocation holds it all, and the
  // maps key it by views of its own id and key, which never change. Under idem_mu: `first`,
  // `waiters` and `pinned` once it is in a map; `reply` is set before it is remembered and
  // never changed after.
  struct Entry {
    explicit Entry(Impl* e) : engine(e) {}
    Impl* const engine;
    std::string transaction_id, key;
    uint64_t fingerprint = 0;  // of the request, for a key
    TransactionView view;      // to take it back out of the features if its record fails
    Done first;                // its own caller
    std::vector<Done> waiters;  // repeats that came while it was in flight
    std::string reply;          // set before it is remembered; never changed after
    int scored_by = -1;         // ScoreOutcome::scored_by
    // Remembered while its record is not committed (--record async): the store could not answer
    // for it, so memory must keep it. Cleared once committed, or once forgotten.
    bool pinned = false;
    // Keeps the entry alive while the store holds only a plain pointer to it (the commit
    // callback: a lambda capturing a shared_ptr would cost a std::function allocation).
    std::shared_ptr<Entry> self;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using EntryMap = std::unordered_map<std::string_view, std::shared_ptr<Entry>, StringHash,
                                      std::equal_to<>>;
  Mutex idem_mu;
  EntryMap recent_ids GUARDED_BY(idem_mu), recent_keys GUARDED_BY(idem_mu);
  std::deque<std::shared_ptr<Entry>> recent_order GUARDED_BY(idem_mu);
  EntryMap flights_by_id GUARDED_BY(idem_mu), flights_by_key GUARDED_BY(idem_mu);
  SeenFilter seen GUARDED_BY(idem_mu);

  std::atomic<bool> stopping{false};
  WriteOptions write_options;
  std::unique_ptr<Snapshotter> snapshotter;
  StartupInfo startup;
  // Records waiting for the end of their burst (EngineOptions::after_burst).
  Mutex burst_mu;
  std::vector<Store::Write> burst GUARDED_BY(burst_mu);
  bool burst_scheduled GUARDED_BY(burst_mu) = false;

  std::shared_ptr<const LoadedModel> CurrentModel() const EXCLUDES(model_mu) {
    MutexLock lock(&model_mu);
    return model;
  }

  // Reads, compiles and names a model file. Errors carry the details (for the log and the CLI).
  StatusOr<std::shared_ptr<const LoadedModel>> LoadModelFile(const std::string& path) {
    VIGIL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, options.max_model_bytes));
    VIGIL_ASSIGN_OR_RETURN(ModelFile file, ParseModel(bytes, path));
    auto m = std::make_shared<LoadedModel>();
    auto scorer =
        Scorer::Create(std::move(file), options.kernel,
                       options.exact_reasons ? ReasonsMethod::kExact : ReasonsMethod::kFast);
    if (!scorer.ok()) return scorer.status().WithContext("model file '" + path + "'");
    m->scorer = std::move(*scorer);
    m->path = path;
    m->info.name = Stem(path);
    m->info.version = ContentVersion(bytes);
    m->info.algorithm = m->scorer->model().algo;
    m->info.reasons_method = std::string(m->scorer->reasons_method());
    m->info.kernel = m->scorer->forest().kernel();
    if (options.predictor) m->bytes = std::move(bytes);
    for (Decision d : {Decision::kApprove, Decision::kReview, Decision::kDecline}) {
      m->predictions[static_cast<size_t>(d)] = &metrics.GetCounter(
          "vigil_predictions_total", "Predictions by model and decision",
          {{"model", m->info.name}, {"decision", std::string(DecisionName(d))}});
    }
    return std::shared_ptr<const LoadedModel>(std::move(m));
  }

  // The reply of an entry, shared with it (no copy).
  static std::shared_ptr<const std::string> ReplyOf(const std::shared_ptr<Entry>& e) {
    return {e, &e->reply};
  }

  // Erases `e` from `map` under `name` if it is there.
  static void EraseIfOwn(EntryMap& map, std::string_view name, const Entry* e) {
    if (name.empty()) return;
    auto it = map.find(name);
    if (it != map.end() && it->second.get() == e) map.erase(it);
  }

  // Remembers an entry's reply; then forgets the oldest committed ones beyond
  // options.recent_replies.
  void Remember(const std::shared_ptr<Entry>& e) REQUIRES(idem_mu) {
    bool added = recent_ids.try_emplace(e->transaction_id, e).second;
    if (!e->key.empty()) added = recent_keys.try_emplace(e->key, e).second || added;
    if (added) recent_order.push_back(e);
    while (recent_order.size() > options.recent_replies) {
      const Entry* old = recent_order.front().get();
      if (old->pinned) break;  // the store cannot find it yet
      EraseIfOwn(recent_ids, old->transaction_id, old);
      EraseIfOwn(recent_keys, old->key, old);
      recent_order.pop_front();
    }
  }

  // Ends a flight: gives every waiter the outcome (the first its own, the rest as replays) and,
  // with `remember`, keeps the reply (e->reply, set by the caller) for later repeats.
  void Finish(const std::shared_ptr<Entry>& e, const Status& status, bool replay, bool remember,
              bool committed) {
    Done first;
    std::vector<Done> waiters;
    {
      MutexLock lock(&idem_mu);
      e->pinned = remember && !committed;
      if (remember) Remember(e);
      EraseIfOwn(flights_by_id, e->transaction_id, e.get());
      EraseIfOwn(flights_by_key, e->key, e.get());
      first = std::move(e->first);
      waiters = std::move(e->waiters);
    }
    const std::shared_ptr<const std::string> reply = status.ok() ? ReplyOf(e) : nullptr;
    first({status, replay, reply, replay ? -1 : e->scored_by});
    for (Done& w : waiters) w({status, true, reply, -1});
  }

  // --record async: the record of a reply already given is committed, so the store answers for
  // it now and memory may forget it.
  void MarkCommitted(Entry& e) {
    MutexLock lock(&idem_mu);
    e.pinned = false;
  }

  // --record async: a reply already given whose record failed: forget it, so that the store
  // (which has nothing) is the truth and a retry is scored anew.
  void Forget(Entry& e) {
    MutexLock lock(&idem_mu);
    EraseIfOwn(recent_ids, e.transaction_id, &e);
    EraseIfOwn(recent_keys, e.key, &e);
    e.pinned = false;  // nothing to keep: its place in recent_order may go
  }

  // What the store calls once the record of `e` is committed (or not).
  void Committed(Entry* raw, const Status& s) {
    const std::shared_ptr<Entry> e = std::move(raw->self);
    if (options.record == RecordMode::kAsync) {
      if (s.ok()) return MarkCommitted(*e);
      // Given but not recorded: a crash would have lost it too. Take it out of the features
      // and of memory, so that state and store agree.
      Uncount(e->view);
      Forget(*e);
      Log(LogLevel::kError, "record lost (--record async)",
          {{"transaction_id", e->transaction_id}, {"error", s.message()}});
      return;
    }
    if (s.ok()) return Finish(e, Status::Ok(), false, true, true);
    Uncount(e->view);  // before anyone is told, so a retry finds the state without it
    Log(LogLevel::kError, "store commit failed",
        {{"transaction_id", e->transaction_id}, {"error", s.message()}});
    Finish(e,
           Unavailable("the transaction could not be recorded, so it was not counted; retry"),
           false, false, false);
  }

  void Append(TransactionRecord rec, std::function<void(const Status&)> on_commit,
              std::vector<Store::Write>* writes) {
    if (writes != nullptr) {
      writes->push_back({std::move(rec), std::move(on_commit)});
      return;
    }
    if (!options.after_burst) {
      return store->Append(std::move(rec), write_options, std::move(on_commit));
    }
    bool schedule;
    {
      MutexLock lock(&burst_mu);
      burst.push_back({std::move(rec), std::move(on_commit)});
      schedule = !burst_scheduled;
      burst_scheduled = true;
    }
    if (schedule) options.after_burst([this] { CommitBurst(); });
  }

  // The records of the burst, in one store write (whichever I/O thread's burst ends first takes
  // the other's records along).
  void CommitBurst() EXCLUDES(burst_mu) {
    std::vector<Store::Write> writes;
    {
      MutexLock lock(&burst_mu);
      writes.swap(burst);
      burst_scheduled = false;
    }
    store->AppendAll(std::move(writes), write_options);
  }

  // Undoes the online features of a transaction whose record was not committed.
  void Uncount(const TransactionView& view) {
    MutexLock lock(&features_mu);
    features->Remove(view);
  }

  void ScoreOne(Transaction tx, std::string key, Done done, std::vector<Store::Write>* writes);
  // The three steps of a score. Admit: a repeat, a refusal or a failed lookup is answered (null);
  // a new transaction is in flight (its entry). Count: its features, counted in the online state.
  // Conclude: its prediction rendered, recorded (into `writes`, or at once) and given.
  std::shared_ptr<Entry> Admit(const Transaction& tx, std::string key, Done& done);
  TransactionRecord Count(Entry& entry, const Transaction& tx);
  void Conclude(std::shared_ptr<Entry> entry, Transaction tx, TransactionRecord rec, Prediction p,
                const LoadedModel& m, Clock::time_point start, std::vector<Store::Write>* writes);
};

void Engine::Impl::ScoreOne(Transaction tx, std::string key, Done done,
                            std::vector<Store::Write>* writes) {
  const Clock::time_point start = Clock::now();
  std::shared_ptr<Entry> entry = Admit(tx, std::move(key), done);
  if (entry == nullptr) return;
  const std::shared_ptr<const LoadedModel> m = CurrentModel();
  TransactionRecord rec = Count(*entry, tx);
  Prediction p = Predict(*m->scorer, rec.features, options.explain_top_k);
  Conclude(std::move(entry), std::move(tx), std::move(rec), std::move(p), *m, start, writes);
}

std::shared_ptr<Engine::Impl::Entry> Engine::Impl::Admit(const Transaction& tx, std::string key,
                                                         Done& done) {
  if (stopping.load(std::memory_order_relaxed)) {
    done({Unavailable("the engine is stopping"), false, nullptr});
    return nullptr;
  }
  const uint64_t fingerprint = key.empty() ? 0 : Fnv1a64(tx.json);
  const uint64_t id_hash = IdHash(tx.transaction_id);
  const uint64_t key_hash = key.empty() ? 0 : KeyHash(key);
  const int64_t now_us = NowMicros();
  auto key_reused = [&key] {
    return AlreadyExists("Idempotency-Key '" + key +
                         "' was already used for another transaction; use a new key for a new "
                         "request");
  };

  std::shared_ptr<Entry> replay;  // remembered: its reply
  std::shared_ptr<Entry> entry;   // new: in flight
  bool refused = false;           // the key was used for another transaction
  bool maybe_seen_id = false, maybe_seen_key = false;
  {
    MutexLock lock(&idem_mu);
    if (!key.empty()) {
      auto it = recent_keys.find(std::string_view(key));
      if (it != recent_keys.end()) {
        refused = it->second->fingerprint != fingerprint;
        if (!refused) replay = it->second;
      }
    }
    if (!replay && !refused) {
      auto it = recent_ids.find(std::string_view(tx.transaction_id));
      if (it != recent_ids.end()) replay = it->second;
    }
    if (!replay && !refused) {
      if (!key.empty()) {
        auto f = flights_by_key.find(std::string_view(key));
        if (f != flights_by_key.end()) {
          refused = f->second->fingerprint != fingerprint;
          if (!refused) {
            f->second->waiters.push_back(std::move(done));
            return nullptr;
          }
        }
      }
    }
    if (!replay && !refused) {
      auto f = flights_by_id.find(std::string_view(tx.transaction_id));
      if (f != flights_by_id.end()) {
        f->second->waiters.push_back(std::move(done));
        return nullptr;
      }
      entry = std::make_shared<Entry>(this);
      entry->transaction_id = tx.transaction_id;
      entry->key = key;
      entry->fingerprint = fingerprint;
      entry->first = std::move(done);
      flights_by_id.emplace(entry->transaction_id, entry);
      if (!key.empty()) flights_by_key.emplace(entry->key, entry);
      maybe_seen_id = seen.MayContain(id_hash);
      seen.Add(id_hash, now_us);
      if (!key.empty()) {
        maybe_seen_key = seen.MayContain(key_hash);
        seen.Add(key_hash, now_us);
      }
    }
  }
  // `done` outside the lock: a front end's reply may write to a socket.
  // NOLINTBEGIN(bugprone-use-after-move): `done` was moved only where neither is set.
  if (refused) {
    done({key_reused(), false, nullptr});
    return nullptr;
  }
  if (replay) {
    done({Status::Ok(), true, ReplyOf(replay)});
    return nullptr;
  }
  // NOLINTEND(bugprone-use-after-move)

  // Not in memory, but perhaps a repeat of something older: the store has every committed
  // reply. (A false positive of `seen` costs one lookup that finds nothing.)
  if (maybe_seen_key) {
    auto stored = store->FindReplyByKey(key);
    if (!stored.ok()) {
      Log(LogLevel::kError, "idempotency lookup failed", {{"error", stored.status().message()}});
      Finish(entry, Unavailable("the store could not be read; retry"), false, false, false);
      return nullptr;
    }
    if (stored->has_value()) {
      if ((*stored)->request_fingerprint != fingerprint) {
        Finish(entry, key_reused(), false, false, false);
        return nullptr;
      }
      entry->reply = std::move((*stored)->reply_json);
      Finish(entry, Status::Ok(), true, true, true);
      return nullptr;
    }
  }
  if (maybe_seen_id) {
    auto stored = store->FindReplyById(tx.transaction_id);
    if (!stored.ok()) {
      Log(LogLevel::kError, "idempotency lookup failed", {{"error", stored.status().message()}});
      Finish(entry, Unavailable("the store could not be read; retry"), false, false, false);
      return nullptr;
    }
    if (stored->has_value()) {
      entry->reply = std::move(**stored);
      Finish(entry, Status::Ok(), true, true, true);
      return nullptr;
    }
  }
  return entry;
}

TransactionRecord Engine::Impl::Count(Entry& entry, const Transaction& tx) {
  entry.view = ViewOf(tx);
  TransactionRecord rec;
  rec.features.resize(NumFeatures());
  MutexLock lock(&features_mu);
  features->Update(entry.view, rec.features);
  return rec;
}

void Engine::Impl::Conclude(std::shared_ptr<Entry> entry, Transaction tx, TransactionRecord rec,
                            Prediction p, const LoadedModel& m, Clock::time_point start,
                            std::vector<Store::Write>* writes) {
  p.transaction_id = tx.transaction_id;
  p.model_name = m.info.name;
  p.model_version = m.info.version;
  p.latency_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  entry->reply = RenderPrediction(p);
  score_hist->Observe(p.score);
  m.predictions[static_cast<size_t>(p.decision)]->Add();

  rec.transaction_id = std::move(tx.transaction_id);
  rec.customer_id = std::move(tx.customer_id);
  rec.terminal_id = std::move(tx.terminal_id);
  rec.amount = tx.amount;
  rec.timestamp = tx.timestamp;
  rec.transaction_json = std::move(tx.json);
  rec.score = p.score;
  rec.decision = DecisionName(p.decision);
  rec.anomaly_score = p.anomaly_score;
  rec.model_name = m.info.name;
  rec.model_version = m.info.version;
  rec.reply_json = entry->reply;
  rec.latency_us = p.latency_us;
  rec.recorded_at_us = NowMicros();  // after Admit's now: the seen filter's time is no later
  rec.idempotency_key = entry->key;
  rec.request_fingerprint = entry->fingerprint;

  // --record async answers now; sync once the record is committed (Committed).
  if (options.record == RecordMode::kAsync) Finish(entry, Status::Ok(), false, true, false);
  Entry* raw = entry.get();
  raw->self = std::move(entry);
  Append(std::move(rec), [raw](const Status& s) { raw->engine->Committed(raw, s); }, writes);
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() { Stop(); }

StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  if (options.snapshot_every_records < 1) {
    return InvalidArgument("snapshot_every_records must be at least 1");
  }
  if (options.retain.count() < 0) return InvalidArgument("retain must not be negative");
  if (options.recent_replies < 1) return InvalidArgument("recent_replies must be at least 1");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->models_dir = options.models_dir.empty() ? Folder(options.model_path) : options.models_dir;
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<const LoadedModel> first,
                         impl->LoadModelFile(options.model_path));
  StoreOptions so;
  so.dir = options.data_dir;
  so.busy_timeout_ms = options.store_busy_timeout_ms;
  VIGIL_ASSIGN_OR_RETURN(impl->store, Store::Open(so));
  impl->write_options.durability = options.durability;
  {
    MutexLock lock(&impl->model_mu);
    impl->model = first;
  }
  {
    MutexLock lock(&impl->features_mu);
    impl->features =
        std::make_unique<FeatureEngine>(FeatureSet::kAll, first->scorer->engine_options());
  }

  // Rebuild the online state: the newest snapshot, then the records after it (repeats find
  // their replies in the store).
  Impl* raw = impl.get();
  const auto replay_start = Clock::now();
  const std::string snapshots = options.data_dir + "/snapshots";
  {
    MutexLock features_lock(&raw->features_mu);  // uncontended: nothing else runs yet
    MutexLock idem_lock(&raw->idem_mu);
    // The scan calls back with the locks held here, which the analysis cannot see through.
    FeatureEngine* features = raw->features.get();
    raw->seen = SeenFilter(SeenOptions(options.retain));
    SeenFilter* seen = &raw->seen;
    raw->startup.snapshot_through =
        LoadState(snapshots, raw->store->last_sequence(), *features, *seen);
    VIGIL_RETURN_IF_ERROR(raw->store->Scan(raw->startup.snapshot_through + 1,
                                           [&](const TransactionRecord& rec) {
                                             Apply(rec, *features, *seen);
                                             ++raw->startup.replayed;
                                           }));
    ForgetDropped(*raw->store, *seen);
  }
  raw->startup.seconds = std::chrono::duration<double>(Clock::now() - replay_start).count();
  impl->snapshotter = std::make_unique<Snapshotter>(
      raw->store.get(), snapshots, FeatureSet::kAll, first->scorer->engine_options(),
      options.snapshot_every_records, options.snapshot_interval, options.retain, [raw] {
        MutexLock lock(&raw->idem_mu);
        ForgetDropped(*raw->store, raw->seen);
      });
  impl->snapshotter->Start(raw->startup.snapshot_through);

  impl->score_hist = &impl->metrics.GetHistogram(
      "vigil_score", "Fraud scores returned",
      {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99});
  impl->metrics.AddGauge("vigil_store_backlog",
                         "Records committed to the journal and not yet indexed",
                         [raw] { return static_cast<double>(raw->store->backlog()); });
  impl->metrics.AddGauge("vigil_recent_replies", "Replies held in memory for repeats",
                         [raw] {
                           MutexLock lock(&raw->idem_mu);
                           return static_cast<double>(raw->recent_order.size());
                         });
  impl->metrics.AddGauge("vigil_seen_filter_bytes",
                         "Memory of the filter of transaction ids and keys seen",
                         [raw] {
                           MutexLock lock(&raw->idem_mu);
                           return static_cast<double>(raw->seen.bytes());
                         });
  impl->metrics.AddGauge("vigil_seen_filter_items",
                         "Ids and keys the seen filter holds (those retention has not dropped)",
                         [raw] {
                           MutexLock lock(&raw->idem_mu);
                           return static_cast<double>(raw->seen.items());
                         });
  impl->metrics.AddGauge("vigil_store_committed_records", "Records committed since start",
                         [raw] { return static_cast<double>(raw->store->committed()); });
  impl->metrics.AddGauge("vigil_store_commits", "Journal writes since start (committed_records / commits: records per write)",
                         [raw] { return static_cast<double>(raw->store->commits()); });
  Log(LogLevel::kInfo, "engine ready",
      {{"model", first->info.name},
       {"version", first->info.version},
       {"snapshot_through", raw->startup.snapshot_through},
       {"replayed", raw->startup.replayed},
       {"startup_s", raw->startup.seconds},
       {"record", options.record == RecordMode::kSync ? "sync" : "async"},
       {"reasons", first->info.reasons_method},
       {"kernel", KernelName(first->info.kernel)}});
  return std::make_unique<Engine>(std::move(impl));
}

void Engine::Score(Transaction tx, std::string idempotency_key, Done done) {
  impl_->ScoreOne(std::move(tx), std::move(idempotency_key), std::move(done), nullptr);
}

void Engine::ScoreBatch(std::vector<Transaction> txs,
                        std::function<void(std::vector<ScoreOutcome>)> done) {
  if (txs.empty()) return done({});
  struct BatchState {
    Mutex mu;
    std::vector<ScoreOutcome> outcomes GUARDED_BY(mu);
    size_t remaining GUARDED_BY(mu) = 0;
    std::function<void(std::vector<ScoreOutcome>)> done;
  };
  auto state = std::make_shared<BatchState>();
  {
    MutexLock lock(&state->mu);
    state->outcomes.resize(txs.size());
    state->remaining = txs.size();
  }
  state->done = std::move(done);
  Impl& d = *impl_;
  // Every feature row first, in order (a burst from one card sees itself), then the model on
  // the new ones together, then their records in one write.
  struct New {
    std::shared_ptr<Impl::Entry> entry;
    size_t index;
    TransactionRecord rec;
  };
  std::vector<New> fresh;
  fresh.reserve(txs.size());
  const Clock::time_point start = Clock::now();
  const std::shared_ptr<const LoadedModel> m = d.CurrentModel();
  for (size_t i = 0; i < txs.size(); ++i) {
    Done one = [state, i](ScoreOutcome o) {
      std::vector<ScoreOutcome> all;
      {
        MutexLock lock(&state->mu);
        state->outcomes[i] = std::move(o);
        if (--state->remaining > 0) return;
        all = std::move(state->outcomes);
      }
      state->done(std::move(all));
    };
    std::shared_ptr<Impl::Entry> entry = d.Admit(txs[i], {}, one);
    if (entry == nullptr) continue;
    TransactionRecord rec = d.Count(*entry, txs[i]);
    fresh.push_back({std::move(entry), i, std::move(rec)});
  }
  if (fresh.empty()) return;
  const size_t cols = NumFeatures();
  std::vector<float> rows(fresh.size() * cols);
  for (size_t k = 0; k < fresh.size(); ++k) {
    std::copy(fresh[k].rec.features.begin(), fresh[k].rec.features.end(), rows.begin() + k * cols);
  }
  std::vector<Prediction> predictions(fresh.size());
  int scored_by = -1;
  Status ran = Status::Ok();
  if (d.options.predictor != nullptr) {
    ran = d.options.predictor->Predict({*m->scorer, m->info, m->bytes}, rows, fresh.size(),
                                       d.options.explain_top_k, predictions, &scored_by);
  } else {
    PredictRows(*m->scorer, rows, fresh.size(), d.options.explain_top_k, 1, predictions);
  }
  if (!ran.ok()) {
    Log(LogLevel::kError, "the model could not be run on a batch",
        {{"transactions", static_cast<int64_t>(fresh.size())}, {"error", ran.message()}});
    for (New& n : fresh) {
      d.Uncount(n.entry->view);  // before anyone is told, so a retry finds the state without it
      d.Finish(n.entry,
               Unavailable("the model could not be run (" + ran.message() +
                           "), so the transaction was not counted; retry"),
               false, false, false);
    }
    return;
  }
  std::vector<Store::Write> writes;
  writes.reserve(fresh.size());
  for (size_t k = 0; k < fresh.size(); ++k) {
    fresh[k].entry->scored_by = scored_by;
    d.Conclude(std::move(fresh[k].entry), std::move(txs[fresh[k].index]), std::move(fresh[k].rec),
               std::move(predictions[k]), *m, start, &writes);
  }
  d.store->AppendAll(std::move(writes), d.write_options);
}

StatusOr<ModelInfo> Engine::Reload(std::string_view name) {
  Impl& d = *impl_;
  MutexLock reload_lock(&d.reload_mu);
  std::string path;
  std::string shown(name);
  if (name.empty()) {
    path = d.CurrentModel()->path;
    shown = d.CurrentModel()->info.name;
  } else {
    std::string_view stem = name;
    if (stem.size() > 6 && stem.substr(stem.size() - 6) == ".model") stem.remove_suffix(6);
    if (!ValidModelName(stem) || stem.find("..") != std::string_view::npos) {
      return InvalidArgument(
          "a model is named by letters, digits, '.', '_' and '-' (at most 128, starting with a "
          "letter or digit), e.g. \"gbdt\" for gbdt.model in the models folder");
    }
    shown = std::string(stem);
    path = d.models_dir + "/" + shown + ".model";
  }
  auto& failed = d.metrics.GetCounter("vigil_model_reloads_total", "Model reloads by result",
                                      {{"result", "failed"}});
  auto loaded = d.LoadModelFile(path);
  if (!loaded.ok()) {
    failed.Add();
    Log(LogLevel::kError, "reload failed", {{"model", shown}, {"error", loaded.status().message()}});
    switch (loaded.status().code()) {
      case StatusCode::kNotFound:
        return NotFound("model '" + shown + "' is not in the models folder");
      case StatusCode::kResourceExhausted:  // a limit of the file, not of the caller: 400
        return InvalidArgument("model '" + shown + "' is larger than the limit of " +
                               std::to_string(d.options.max_model_bytes) + " bytes");
      case StatusCode::kPermissionDenied:
        return PermissionDenied("model '" + shown + "' cannot be read by the server");
      case StatusCode::kUnavailable:
        return Unavailable("model '" + shown + "' could not be read; retry");
      default:
        return InvalidArgument("model '" + shown +
                               "' is not a regular file holding a valid Vigil model (the server "
                               "log has the details)");
    }
  }
  if ((*loaded)->scorer->engine_options().label_delay_days !=
      d.CurrentModel()->scorer->engine_options().label_delay_days) {
    failed.Add();
    return InvalidArgument("model '" + shown +
                           "' has another label delay than the serving feature state");
  }
  {
    MutexLock lock(&d.model_mu);
    d.model = std::move(*loaded);
  }
  d.metrics.GetCounter("vigil_model_reloads_total", "Model reloads by result", {{"result", "ok"}})
      .Add();
  const ModelInfo info = d.CurrentModel()->info;
  Log(LogLevel::kInfo, "model reloaded",
      {{"model", info.name},
       {"version", info.version},
       {"reasons", info.reasons_method},
       {"kernel", KernelName(info.kernel)}});
  return info;
}

ModelInfo Engine::model() const { return impl_->CurrentModel()->info; }

StatusOr<std::optional<TransactionDetail>> Engine::Find(std::string_view transaction_id) {
  auto rec = impl_->store->Get(transaction_id);
  if (!rec.ok()) {
    Log(LogLevel::kError, "store read failed", {{"error", rec.status().message()}});
    return Unavailable("the store could not be read; retry");
  }
  if (!rec->has_value()) return std::optional<TransactionDetail>();
  TransactionDetail d;
  d.record = std::move(**rec);
  if (d.record.features.size() == NumFeatures()) d.feature_names = FeatureNames(FeatureSet::kAll);
  return std::optional<TransactionDetail>(std::move(d));
}

Status Engine::AddLabel(std::string_view transaction_id, bool fraud) {
  MutexLock lock(&impl_->features_mu);
  Status s = impl_->features->AddLabel(IdKey(transaction_id), fraud);
  if (!s.ok()) {
    return NotFound("transaction '" + std::string(transaction_id) +
                    "' is unknown to the online features or older than their windows");
  }
  return s;
}

void Engine::PeekFeatures(const Transaction& tx, std::span<float> out) const {
  MutexLock lock(&impl_->features_mu);
  impl_->features->Compute(ViewOf(tx), out);
}

Status Engine::Ready() {
  if (impl_->stopping.load()) return Unavailable("stopping");
  Status s = impl_->store->CheckWritable();
  if (!s.ok()) {
    Log(LogLevel::kWarn, "store not writable", {{"error", s.message()}});
    return Unavailable("the store does not take writes");
  }
  return s;
}

Status Engine::Flush() {
  impl_->CommitBurst();
  return impl_->store->Flush();
}

void Engine::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  impl_->CommitBurst();  // a burst whose task the stopped front end will not run
  Status s = impl_->store->Flush();
  if (!s.ok()) Log(LogLevel::kError, "store flush failed", {{"error", s.message()}});
  // A last snapshot: the next start replays nothing.
  if (impl_->snapshotter) impl_->snapshotter->Stop();
}

StartupInfo Engine::startup() const { return impl_->startup; }
int64_t Engine::snapshot_through() const {
  return impl_->snapshotter ? impl_->snapshotter->written_through() : 0;
}

int64_t Engine::committed() const { return impl_->store->committed(); }
size_t Engine::backlog() const { return impl_->store->backlog(); }
MetricsRegistry& Engine::metrics() { return impl_->metrics; }

void PredictRows(const Scorer& scorer, std::span<const float> features, size_t rows,
                 int explain_top_k, int threads, std::span<Prediction> out) {
  const size_t cols = rows == 0 ? 0 : features.size() / rows;
  constexpr size_t kChunk = 256;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t lo; (lo = next.fetch_add(kChunk)) < rows;) {
      for (size_t i = lo; i < std::min(rows, lo + kChunk); ++i) {
        out[i] = Predict(scorer, features.subspan(i * cols, cols), explain_top_k);
      }
    }
  };
  // No more threads than chunks.
  const int useful =
      static_cast<int>(std::min<size_t>(std::max(threads, 1), (rows + kChunk - 1) / kChunk));
  std::vector<std::thread> pool;
  for (int t = 1; t < useful; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

Status ScoreDataset(const Scorer& scorer, const Dataset& data, const BatchScoreOptions& options,
                    const std::function<void(size_t row, const Prediction&)>& sink) {
  if (options.threads < 0) return InvalidArgument("threads cannot be negative");
  // Features from the online engine, state replayed in time order; labels, where the data has
  // them, reach it only after the model's delay, as analyst feedback would.
  auto feature_progress = [&](double f) {
    if (options.progress) options.progress(0.5 * f);
  };
  const FeatureMatrix m =
      ComputeFeatures(data, scorer.engine_set(), scorer.engine_options(), feature_progress);
  const size_t n = m.rows;
  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Blocks of rows: threads score a block, then it goes to the sink in order, so memory stays
  // bounded and the output does not depend on the thread count.
  constexpr size_t kBlock = 1 << 16;
  std::vector<Prediction> results(std::min(n, kBlock));
  for (size_t block = 0; block < n; block += kBlock) {
    const size_t rows = std::min(kBlock, n - block);
    PredictRows(scorer, std::span<const float>(m.row(block), rows * m.cols()), rows,
                options.explain_top_k, threads, results);
    for (size_t i = 0; i < rows; ++i) sink(block + i, results[i]);
    if (options.progress) options.progress(0.5 + 0.5 * static_cast<double>(block + rows) / n);
  }
  return Status::Ok();
}

}  // namespace vigil
