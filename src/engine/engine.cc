#include "vigil/engine.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <thread>
#include <unordered_map>

#include "core/background_thread.h"
#include "core/bloom_filter.h"
#include "core/file_util.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mutex.h"
#include "core/transaction_json.h"
#include "engine/prediction_json.h"
#include "engine/snapshot.h"
#include "monitor/metrics.h"
#include "vigil/features.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

// Replies kept in memory for replays (two entries per reply with an Idempotency-Key); older
// ones are read from the store. About 1 KB each.
constexpr size_t kRecentReplies = 50000;
// The filter of ids and keys seen: 32 MiB, 1% false positives (store lookups for nothing) at
// 28 million transactions; more past that, never a wrong answer.
constexpr size_t kSeenFilterBits = size_t{1} << 28;
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

// Keys share the Bloom filter with ids; the tag keeps a key from looking like an id to it.
std::string KeyTag(std::string_view key) {
  std::string tagged = "\x01k:";
  tagged += key;
  return tagged;
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
void Apply(const TransactionRecord& rec, FeatureEngine& features, BloomFilter& seen) {
  features.Insert({IdKey(rec.transaction_id), rec.timestamp, IdKey(rec.customer_id),
                   IdKey(rec.terminal_id), rec.amount});
  seen.Add(rec.transaction_id);
  if (!rec.idempotency_key.empty()) seen.Add(KeyTag(rec.idempotency_key));
}

// Loads the newest usable snapshot of `dir` into `features` and `seen`; returns the sequence it
// holds the state through, or 0 with both left empty when there is none usable (none written,
// all damaged, written for another label delay, or ahead of the store, whose tail a power loss
// took).
int64_t LoadState(const std::string& dir, int64_t last_sequence, FeatureEngine& features,
                  BloomFilter& seen) {
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
    seen = BloomFilter(seen.bits());
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
  Snapshotter(Store* store, std::string dir, FeatureSet set, FeatureOptions options,
              int64_t every, std::chrono::seconds interval, std::chrono::seconds retain)
      : store_(store),
        dir_(std::move(dir)),
        features_(std::make_unique<FeatureEngine>(set, options)),
        every_(every),
        interval_(interval),
        retain_(retain) {}
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
  BloomFilter seen_{kSeenFilterBits};
  int64_t through_ = 0;
  std::unique_ptr<Store::Cursor> cursor_;
  const int64_t every_;
  const std::chrono::seconds interval_;
  const std::chrono::seconds retain_;
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
  // long the engine runs. `recent_*` keep the last kRecentReplies replies and every one whose
  // record is not committed yet (--record async), which the store could not find. `seen` holds
  // every id and key accepted, so that a new one (nearly every transaction) skips the store.
  struct Remembered {
    std::shared_ptr<const std::string> reply;
    uint64_t fingerprint = 0;  // of the request, for a key
    bool committed = false;
  };
  // A transaction being scored, and the callers waiting for its outcome: the first is its own.
  struct Flight {
    std::string transaction_id, key;
    uint64_t fingerprint = 0;
    std::vector<Done> waiters;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using ReplyMap = std::unordered_map<std::string, Remembered, StringHash, std::equal_to<>>;
  using FlightMap =
      std::unordered_map<std::string, std::shared_ptr<Flight>, StringHash, std::equal_to<>>;
  Mutex idem_mu;
  ReplyMap recent_ids GUARDED_BY(idem_mu), recent_keys GUARDED_BY(idem_mu);
  std::deque<std::pair<ReplyMap*, std::string>> recent_order GUARDED_BY(idem_mu);
  FlightMap flights_by_id GUARDED_BY(idem_mu), flights_by_key GUARDED_BY(idem_mu);
  BloomFilter seen GUARDED_BY(idem_mu){kSeenFilterBits};

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
    for (Decision d : {Decision::kApprove, Decision::kReview, Decision::kDecline}) {
      m->predictions[static_cast<size_t>(d)] = &metrics.GetCounter(
          "vigil_predictions_total", "Predictions by model and decision",
          {{"model", m->info.name}, {"decision", std::string(DecisionName(d))}});
    }
    return std::shared_ptr<const LoadedModel>(std::move(m));
  }

  // Remembers a reply; then forgets the oldest committed ones beyond kRecentReplies.
  void Remember(const Flight& f, const std::shared_ptr<const std::string>& reply, bool committed)
      REQUIRES(idem_mu) {
    for (auto [map, key] : {std::pair{&recent_ids, &f.transaction_id},
                            std::pair{&recent_keys, &f.key}}) {
      if (key->empty()) continue;
      if (map->try_emplace(*key, Remembered{reply, f.fingerprint, committed}).second) {
        recent_order.emplace_back(map, *key);
      }
    }
    while (recent_order.size() > kRecentReplies) {
      auto& [map, key] = recent_order.front();
      auto it = map->find(std::string_view(key));
      if (it != map->end() && !it->second.committed) break;  // the store cannot find it yet
      if (it != map->end()) map->erase(it);
      recent_order.pop_front();
    }
  }

  // Ends a flight: gives every waiter the outcome (the first its own, the rest as replays) and,
  // with `remember`, keeps the reply for later repeats.
  void Finish(const std::shared_ptr<Flight>& f, const Status& status,
              const std::shared_ptr<const std::string>& reply, bool replay, bool remember,
              bool committed) {
    std::vector<Done> waiters;
    {
      MutexLock lock(&idem_mu);
      if (remember) Remember(*f, reply, committed);
      auto it = flights_by_id.find(std::string_view(f->transaction_id));
      if (it != flights_by_id.end() && it->second == f) flights_by_id.erase(it);
      if (!f->key.empty()) {
        auto k = flights_by_key.find(std::string_view(f->key));
        if (k != flights_by_key.end() && k->second == f) flights_by_key.erase(k);
      }
      waiters = std::move(f->waiters);
    }
    for (size_t i = 0; i < waiters.size(); ++i) {
      ScoreOutcome o;
      o.status = status;
      o.replay = i > 0 || replay;
      if (status.ok()) o.reply = reply;
      waiters[i](std::move(o));
    }
  }

  // --record async: the record of a reply already given is committed, so the store answers for
  // it now and memory may forget it.
  void MarkCommitted(const Flight& f) {
    MutexLock lock(&idem_mu);
    for (auto [map, key] : {std::pair{&recent_ids, &f.transaction_id},
                            std::pair{&recent_keys, &f.key}}) {
      auto it = map->find(std::string_view(*key));
      if (it != map->end()) it->second.committed = true;
    }
  }

  // --record async: a reply already given whose record failed: forget it, so that the store
  // (which has nothing) is the truth and a retry is scored anew.
  void Forget(const Flight& f) {
    MutexLock lock(&idem_mu);
    for (auto [map, key] : {std::pair{&recent_ids, &f.transaction_id},
                            std::pair{&recent_keys, &f.key}}) {
      if (!key->empty()) map->erase(std::string(*key));
    }
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
};

void Engine::Impl::ScoreOne(Transaction tx, std::string key, Done done,
                            std::vector<Store::Write>* writes) {
  const Clock::time_point start = Clock::now();
  if (stopping.load(std::memory_order_relaxed)) {
    return done({Unavailable("the engine is stopping"), false, nullptr});
  }
  const uint64_t fingerprint = key.empty() ? 0 : Fnv1a64(tx.json);
  auto key_reused = [&key] {
    return AlreadyExists("Idempotency-Key '" + key +
                         "' was already used for another transaction; use a new key for a new "
                         "request");
  };

  std::shared_ptr<const std::string> replay;
  std::shared_ptr<Flight> flight;
  bool refused = false;  // the key was used for another transaction
  bool maybe_seen_id = false, maybe_seen_key = false;
  {
    MutexLock lock(&idem_mu);
    if (!key.empty()) {
      auto it = recent_keys.find(std::string_view(key));
      if (it != recent_keys.end()) {
        refused = it->second.fingerprint != fingerprint;
        if (!refused) replay = it->second.reply;
      }
    }
    if (!replay && !refused) {
      auto it = recent_ids.find(std::string_view(tx.transaction_id));
      if (it != recent_ids.end()) replay = it->second.reply;
    }
    if (!replay && !refused) {
      if (!key.empty()) {
        auto f = flights_by_key.find(std::string_view(key));
        if (f != flights_by_key.end()) {
          refused = f->second->fingerprint != fingerprint;
          if (!refused) {
            f->second->waiters.push_back(std::move(done));
            return;
          }
        }
      }
    }
    if (!replay && !refused) {
      auto f = flights_by_id.find(std::string_view(tx.transaction_id));
      if (f != flights_by_id.end()) {
        f->second->waiters.push_back(std::move(done));
        return;
      }
      flight = std::make_shared<Flight>();
      flight->transaction_id = tx.transaction_id;
      flight->key = key;
      flight->fingerprint = fingerprint;
      flight->waiters.push_back(std::move(done));
      flights_by_id.emplace(tx.transaction_id, flight);
      if (!key.empty()) flights_by_key.emplace(key, flight);
      maybe_seen_id = seen.MayContain(tx.transaction_id);
      seen.Add(tx.transaction_id);
      if (!key.empty()) {
        const std::string tagged = KeyTag(key);
        maybe_seen_key = seen.MayContain(tagged);
        seen.Add(tagged);
      }
    }
  }
  // `done` outside the lock: a front end's reply may write to a socket.
  // NOLINTBEGIN(bugprone-use-after-move): `done` was moved only where neither is set.
  if (refused) return done({key_reused(), false, nullptr});
  if (replay) return done({Status::Ok(), true, std::move(replay)});
  // NOLINTEND(bugprone-use-after-move)

  // Not in memory, but perhaps a repeat of something older: the store has every committed
  // reply. (A false positive of `seen` costs one lookup that finds nothing.)
  if (maybe_seen_key) {
    auto stored = store->FindReplyByKey(key);
    if (!stored.ok()) {
      Log(LogLevel::kError, "idempotency lookup failed", {{"error", stored.status().message()}});
      return Finish(flight, Unavailable("the store could not be read; retry"), nullptr, false,
                    false, false);
    }
    if (stored->has_value()) {
      if ((*stored)->request_fingerprint != fingerprint) {
        return Finish(flight, key_reused(), nullptr, false, false, false);
      }
      return Finish(flight, Status::Ok(),
                    std::make_shared<const std::string>(std::move((*stored)->reply_json)), true,
                    true, true);
    }
  }
  if (maybe_seen_id) {
    auto stored = store->FindReplyById(tx.transaction_id);
    if (!stored.ok()) {
      Log(LogLevel::kError, "idempotency lookup failed", {{"error", stored.status().message()}});
      return Finish(flight, Unavailable("the store could not be read; retry"), nullptr, false,
                    false, false);
    }
    if (stored->has_value()) {
      return Finish(flight, Status::Ok(), std::make_shared<const std::string>(std::move(**stored)),
                    true, true, true);
    }
  }

  // New: count it, score it, record it.
  const std::shared_ptr<const LoadedModel> m = CurrentModel();
  const TransactionView view = ViewOf(tx);
  TransactionRecord rec;
  rec.features.resize(NumFeatures());
  {
    MutexLock lock(&features_mu);
    features->Update(view, rec.features);
  }
  Prediction p = Predict(*m->scorer, rec.features, options.explain_top_k);
  p.transaction_id = tx.transaction_id;
  p.model_name = m->info.name;
  p.model_version = m->info.version;
  p.latency_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  auto reply = std::make_shared<const std::string>(RenderPrediction(p));
  score_hist->Observe(p.score);
  m->predictions[static_cast<size_t>(p.decision)]->Add();

  rec.transaction_id = std::move(tx.transaction_id);
  rec.customer_id = std::move(tx.customer_id);
  rec.terminal_id = std::move(tx.terminal_id);
  rec.amount = tx.amount;
  rec.timestamp = tx.timestamp;
  rec.transaction_json = std::move(tx.json);
  rec.score = p.score;
  rec.decision = DecisionName(p.decision);
  rec.anomaly_score = p.anomaly_score;
  rec.model_name = m->info.name;
  rec.model_version = m->info.version;
  rec.reply_json = *reply;
  rec.latency_us = p.latency_us;
  rec.recorded_at_us = NowMicros();
  rec.idempotency_key = std::move(key);
  rec.request_fingerprint = fingerprint;

  if (options.record == RecordMode::kAsync) {
    Finish(flight, Status::Ok(), reply, false, true, /*committed=*/false);
    return Append(std::move(rec),
                  [this, flight, view](const Status& s) {
                    if (s.ok()) return MarkCommitted(*flight);
                    // Given but not recorded: a crash would have lost it too. Take it out of
                    // the features and of memory, so that state and store agree.
                    Uncount(view);
                    Forget(*flight);
                    Log(LogLevel::kError, "record lost (--record async)",
                        {{"transaction_id", flight->transaction_id}, {"error", s.message()}});
                  },
                  writes);
  }
  Append(std::move(rec),
         [this, flight, view, reply](const Status& s) {
           if (s.ok()) return Finish(flight, Status::Ok(), reply, false, true, true);
           Uncount(view);  // before anyone is told, so a retry finds the state without it
           Log(LogLevel::kError, "store commit failed",
               {{"transaction_id", flight->transaction_id}, {"error", s.message()}});
           Finish(flight,
                  Unavailable("the transaction could not be recorded, so it was not counted; "
                              "retry"),
                  nullptr, false, false, false);
         },
         writes);
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() { Stop(); }

StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  if (options.snapshot_every_records < 1) {
    return InvalidArgument("snapshot_every_records must be at least 1");
  }
  if (options.retain.count() < 0) return InvalidArgument("retain must not be negative");
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
    BloomFilter* seen = &raw->seen;
    raw->startup.snapshot_through =
        LoadState(snapshots, raw->store->last_sequence(), *features, *seen);
    VIGIL_RETURN_IF_ERROR(raw->store->Scan(raw->startup.snapshot_through + 1,
                                           [&](const TransactionRecord& rec) {
                                             Apply(rec, *features, *seen);
                                             ++raw->startup.replayed;
                                           }));
  }
  raw->startup.seconds = std::chrono::duration<double>(Clock::now() - replay_start).count();
  impl->snapshotter = std::make_unique<Snapshotter>(
      raw->store.get(), snapshots, FeatureSet::kAll, first->scorer->engine_options(),
      options.snapshot_every_records, options.snapshot_interval, options.retain);
  impl->snapshotter->Start(raw->startup.snapshot_through);

  impl->score_hist = &impl->metrics.GetHistogram(
      "vigil_score", "Fraud scores returned",
      {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99});
  impl->metrics.AddGauge("vigil_store_backlog",
                         "Records committed to the journal and not yet indexed",
                         [raw] { return static_cast<double>(raw->store->backlog()); });
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
  std::vector<Store::Write> writes;
  writes.reserve(txs.size());
  for (size_t i = 0; i < txs.size(); ++i) {
    impl_->ScoreOne(std::move(txs[i]), {},
                    [state, i](ScoreOutcome o) {
                      std::vector<ScoreOutcome> all;
                      {
                        MutexLock lock(&state->mu);
                        state->outcomes[i] = std::move(o);
                        if (--state->remaining > 0) return;
                        all = std::move(state->outcomes);
                      }
                      state->done(std::move(all));
                    },
                    &writes);
  }
  if (writes.empty()) return;
  impl_->store->AppendAll(std::move(writes), impl_->write_options);
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
    std::atomic<size_t> next{0};
    auto work = [&] {
      constexpr size_t kChunk = 1024;
      for (size_t lo; (lo = next.fetch_add(kChunk)) < rows;) {
        for (size_t i = lo; i < std::min(rows, lo + kChunk); ++i) {
          results[i] = Predict(scorer, std::span<const float>(m.row(block + i), m.cols()),
                               options.explain_top_k);
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (size_t i = 0; i < rows; ++i) sink(block + i, results[i]);
    if (options.progress) options.progress(0.5 + 0.5 * static_cast<double>(block + rows) / n);
  }
  return Status::Ok();
}

}  // namespace vigil
